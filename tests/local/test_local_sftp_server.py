"""The demo's embedded SFTP server, seen from paramiko (the project's SFTP client) and from our delivery adapter.

Every connection pins the host key the server published; nothing is auto-accepted.
"""

from __future__ import annotations

import io
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from programs_bridge.delivery import AuthenticationFailed, SftpCredentials, SftpTarget, deliver
from programs_bridge.local.sftp_server import LocalSftp, local_sftp


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


@pytest.fixture
def server(root: Path) -> Iterator[LocalSftp]:
    with local_sftp(root) as running:
        yield running


def new_ed25519_pem() -> str:
    """A key the server has never seen (OpenSSH format, like the one it hands out)."""
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()


def paramiko_key(pem: str) -> paramiko.Ed25519Key:
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem))


@contextmanager
def connected(
    server: LocalSftp,
    *,
    pem: str | None = None,
    password: str | None = None,
    username: str | None = None,
    known_hosts_line: str | None = None,
) -> Iterator[paramiko.SSHClient]:
    """A paramiko client that trusts only the pinned host key (RejectPolicy for anything else)."""
    client = paramiko.SSHClient()
    entry = paramiko.hostkeys.HostKeyEntry.from_line(known_hosts_line or server.known_hosts_line)
    assert entry is not None and entry.key is not None
    client.get_host_keys().add(entry.hostnames[0], entry.key.get_name(), entry.key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    if pem is None and password is None:
        pem = server.client_key_pem
    try:
        client.connect(
            server.host,
            server.port,
            username or server.username,
            password=password,
            pkey=paramiko_key(pem) if pem else None,
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
        yield client
    finally:
        client.close()


@contextmanager
def sftp_session(server: LocalSftp) -> Iterator[paramiko.SFTPClient]:
    with connected(server) as client:
        sftp = client.open_sftp()
        try:
            yield sftp
        finally:
            sftp.close()


def test_it_listens_on_loopback_and_publishes_a_pinnable_host_key(server: LocalSftp) -> None:
    assert server.host == "127.0.0.1"
    assert server.known_hosts_line.startswith(f"[127.0.0.1]:{server.port} ssh-ed25519 AAAA")
    assert server.client_key_pem.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert server.client_key_pem not in repr(server)


def test_a_large_upload_is_renamed_listed_and_stated(server: LocalSftp, root: Path, tmp_path: Path) -> None:
    content = os.urandom(20 * 1024 * 1024 + 4321)
    local = tmp_path / "big.bin"
    local.write_bytes(content)
    with sftp_session(server) as sftp:
        sftp.mkdir("/incoming")
        sftp.put(str(local), "/incoming/programs.txt.part")  # paramiko pipelines these writes
        (root / "incoming" / "programs.txt").write_bytes(b"yesterday's file")
        sftp.posix_rename("/incoming/programs.txt.part", "/incoming/programs.txt")
        assert sftp.listdir("/incoming") == ["programs.txt"]
        assert sftp.stat("/incoming/programs.txt").st_size == len(content)
        sftp.rename("/incoming/programs.txt", "/incoming/sent.txt")
        assert sftp.listdir("/incoming") == ["sent.txt"]
        assert sftp.normalize(".") == "/"
    assert (root / "incoming" / "sent.txt").read_bytes() == content


def test_removing_a_file_removes_it_from_the_served_folder(server: LocalSftp, root: Path) -> None:
    (root / "old.txt").write_text("old")
    with sftp_session(server) as sftp:
        sftp.remove("old.txt")
        assert sftp.listdir(".") == []
    assert not (root / "old.txt").exists()


def test_a_key_the_server_did_not_issue_is_refused(server: LocalSftp) -> None:
    with pytest.raises(paramiko.AuthenticationException), connected(server, pem=new_ed25519_pem()):
        pass


def test_the_right_key_for_another_user_is_refused(server: LocalSftp) -> None:
    with pytest.raises(paramiko.AuthenticationException), connected(server, username="someone-else"):
        pass


def test_passwords_are_refused_unless_one_was_asked_for(server: LocalSftp, root: Path) -> None:
    with pytest.raises(paramiko.AuthenticationException), connected(server, password="guess"):
        pass
    with local_sftp(root, password="demo-secret") as with_password:
        with connected(with_password, password="demo-secret") as client:
            assert client.open_sftp().listdir(".") == []
        with pytest.raises(paramiko.AuthenticationException), connected(with_password, password="wrong"):
            pass


def test_a_different_pinned_host_key_makes_paramiko_refuse_the_server(server: LocalSftp) -> None:
    impostor = paramiko_key(new_ed25519_pem()).get_base64()
    wrong_pin = f"[127.0.0.1]:{server.port} ssh-ed25519 {impostor}"
    with pytest.raises(paramiko.BadHostKeyException), connected(server, known_hosts_line=wrong_pin):
        pass


def test_each_start_has_a_new_host_key_and_client_key(root: Path) -> None:
    with local_sftp(root) as first, local_sftp(root) as second:
        assert first.port != second.port
        assert first.known_hosts_line.split()[2] != second.known_hosts_line.split()[2]
        assert first.client_key_pem != second.client_key_pem


def test_clients_cannot_reach_outside_the_served_folder(server: LocalSftp, root: Path) -> None:
    outside = root.parent / "outside.txt"
    outside.write_text("not for the client")
    with sftp_session(server) as sftp:
        for path in ("../outside.txt", "/../outside.txt", str(outside)):
            with pytest.raises(FileNotFoundError):
                sftp.stat(path)
        with sftp.open("../../escape.txt", "w") as remote:
            remote.write("stays inside")
        # A link the client makes to a path outside points inside the served folder instead.
        sftp.symlink("../outside.txt", "link")
        with pytest.raises(FileNotFoundError):
            sftp.open("link").read()
    assert (root / "escape.txt").read_text() == "stays inside"
    assert not (root.parent / "escape.txt").exists()
    assert (root / "link").resolve().is_relative_to(root)


def test_only_the_sftp_subsystem_is_served(server: LocalSftp) -> None:
    with connected(server) as client:
        transport = client.get_transport()
        assert transport is not None
        for request in ("exec", "shell", "subsystem"):
            channel = transport.open_session()
            with pytest.raises(paramiko.SSHException):
                if request == "exec":
                    channel.exec_command("cat /etc/hostname")
                elif request == "shell":
                    channel.invoke_shell()
                else:
                    channel.invoke_subsystem("netconf")
        with pytest.raises(paramiko.ChannelException):
            transport.open_channel("direct-tcpip", ("127.0.0.1", server.port), ("127.0.0.1", 40000))
        assert client.open_sftp().listdir(".") == []


def test_on_exit_clients_are_disconnected_the_thread_ends_and_the_port_is_free(root: Path) -> None:
    with local_sftp(root) as running, connected(running) as client:
        transport = client.get_transport()
        assert transport is not None and transport.is_active()
        thread_name = f"local-sftp-{running.port}"
        assert thread_name in {thread.name for thread in threading.enumerate()}
        with local_sftp(root):
            pass  # an inner server stopping must not disturb this one
        assert client.open_sftp().listdir(".") == []
    transport.join(10)
    assert not transport.is_active()
    assert thread_name not in {thread.name for thread in threading.enumerate()}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((running.host, running.port), timeout=5).close()
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind((running.host, running.port))
        again.listen()


def test_a_missing_root_fails_before_anything_listens(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), local_sftp(tmp_path / "absent"):
        pass


def test_our_delivery_adapter_delivers_and_replaces_programs_txt(server: LocalSftp, root: Path, tmp_path: Path) -> None:
    target = SftpTarget(host=server.host, port=server.port, known_hosts=(server.known_hosts_line,))
    credentials = SftpCredentials.model_validate({"username": server.username, "private_key": server.client_key_pem})
    local = tmp_path / "programs.txt"
    for night in range(2):
        content = os.urandom(3 * 1024 * 1024 + 777 * night)
        local.write_bytes(content)
        receipt = deliver(local, target, credentials)
        assert receipt.size == len(content)
        assert (root / "programs.txt").read_bytes() == content
        assert sorted(path.name for path in root.iterdir()) == ["programs.txt"]


def test_our_delivery_adapter_logs_in_with_a_password_when_that_is_all_it_has(root: Path, tmp_path: Path) -> None:
    local = tmp_path / "programs.txt"
    local.write_bytes(b"Student_ID\tProgram_Code\n")
    with local_sftp(root, password="demo-secret") as running:
        target = SftpTarget(host=running.host, port=running.port, known_hosts=(running.known_hosts_line,))

        def with_password(password: str) -> SftpCredentials:
            return SftpCredentials.model_validate({"username": running.username, "password": password})

        with pytest.raises(AuthenticationFailed):
            deliver(local, target, with_password("nope"))
        assert not (root / "programs.txt").exists()
        deliver(local, target, with_password("demo-secret"))
    assert (root / "programs.txt").read_bytes() == local.read_bytes()
