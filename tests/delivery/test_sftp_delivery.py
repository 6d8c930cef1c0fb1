"""Delivery against a real OpenSSH sshd on 127.0.0.1: what a district would see on its server."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import uuid
from pathlib import Path

import boto3
import pytest

from programs_bridge.delivery import (
    AuthenticationFailed,
    ConnectionFailed,
    DeliveryConfigError,
    HostKeyRejected,
    RemoteDirectoryMissing,
    RenameRefused,
    RetryPolicy,
    SftpCredentials,
    SftpTarget,
    Timeouts,
    deliver,
    load_credentials,
)
from programs_bridge.local.moto_server import MotoServer, free_port
from support.sshd import KeyPair, SshdOptions, SshdServer, generate_key, running_sshd

from .conftest import QUICK_RETRY, MakeTarget, files_on, key_credentials

pytestmark = pytest.mark.sshd


def _connections(server: SshdServer) -> int:
    return server.log_text().count("Connection from 127.0.0.1")


def test_happy_path_delivers_an_identical_file_under_the_final_name_only(
    sshd: SshdServer, make_target: MakeTarget, client_key: KeyPair, programs_txt: Path
) -> None:
    receipt = deliver(programs_txt, make_target(), key_credentials(sshd, client_key))
    assert (sshd.sftp_root / "programs.txt").read_bytes() == programs_txt.read_bytes()
    assert files_on(sshd) == ["programs.txt"]
    assert (receipt.size, receipt.attempts, receipt.stale_temps_removed) == (programs_txt.stat().st_size, 1, 0)
    assert sshd.userauth_requests() > 0  # the counter the host-key test relies on does count


def test_an_existing_programs_txt_is_replaced(
    sshd: SshdServer, make_target: MakeTarget, client_key: KeyPair, programs_txt: Path
) -> None:
    (sshd.sftp_root / "programs.txt").write_text("yesterday's file\n")
    deliver(programs_txt, make_target(), key_credentials(sshd, client_key))
    assert (sshd.sftp_root / "programs.txt").read_bytes() == programs_txt.read_bytes()


def test_remote_directory_and_name_are_per_feed(
    sshd: SshdServer, make_target: MakeTarget, client_key: KeyPair, programs_txt: Path
) -> None:
    incoming = sshd.sftp_root / "incoming"
    incoming.mkdir()
    os.chown(incoming, sshd.sftp_root.stat().st_uid, sshd.sftp_root.stat().st_gid)
    target = make_target(remote_dir=str(incoming), remote_name="programs_district7.txt")
    receipt = deliver(programs_txt, target, key_credentials(sshd, client_key))
    assert receipt.remote_path == f"{incoming}/programs_district7.txt"
    assert (incoming / "programs_district7.txt").read_bytes() == programs_txt.read_bytes()


@pytest.mark.parametrize(("kind", "pem"), [("ed25519", False), ("ecdsa", False), ("rsa", False), ("rsa", True)])
def test_each_client_key_type_authenticates(
    sshd: SshdServer, make_target: MakeTarget, keys_dir: Path, programs_txt: Path, kind: str, pem: bool
) -> None:
    key = generate_key(keys_dir, kind, pem=pem)
    sshd.authorize(key.public_line)
    deliver(programs_txt, make_target(), key_credentials(sshd, key))
    assert (sshd.sftp_root / "programs.txt").read_bytes() == programs_txt.read_bytes()
    algorithms = re.findall(r"userauth_pubkey: authenticated 1 pkalg (\S+)", sshd.log_text())
    assert algorithms and "ssh-rsa" not in algorithms  # RSA signs with rsa-sha2-256/512, never SHA-1


@pytest.mark.parametrize("sshd_options", [SshdOptions(host_key_types=("rsa",))])
def test_an_rsa_host_key_is_verified_with_sha2(
    sshd: SshdServer, make_target: MakeTarget, client_key: KeyPair, programs_txt: Path
) -> None:
    deliver(programs_txt, make_target(), key_credentials(sshd, client_key))
    assert re.search(r"kex: host key algorithm: rsa-sha2-(256|512)", sshd.log_text())


def test_wrong_host_key_aborts_before_any_authentication(
    sshd: SshdServer, make_target: MakeTarget, client_key: KeyPair, keys_dir: Path, programs_txt: Path
) -> None:
    impostor = generate_key(keys_dir, "ed25519")
    pinned_elsewhere = f"[{sshd.host}]:{sshd.port} {' '.join(impostor.public_line.split()[:2])}"
    target = make_target(known_hosts=(pinned_elsewhere,))
    with pytest.raises(HostKeyRejected) as caught:
        deliver(programs_txt, target, key_credentials(sshd, client_key), retry=QUICK_RETRY)
    host_public = f"{sshd.host_keys[0].private_path}.pub"
    real = subprocess.run(["ssh-keygen", "-lf", host_public], capture_output=True, text=True, check=True)
    assert caught.value.fingerprint == real.stdout.split()[1]
    assert real.stdout.split()[1] in str(caught.value)
    assert sshd.userauth_requests() == 0
    assert _connections(sshd) == 1  # and no retry
    assert files_on(sshd) == []


def test_a_server_with_several_host_keys_shows_the_pinned_one(
    keys_dir: Path, client_key: KeyPair, programs_txt: Path
) -> None:
    with running_sshd(SshdOptions(host_key_types=("ed25519", "ecdsa", "rsa"))) as server:
        server.authorize(client_key.public_line)
        ecdsa_only = [line for line in server.known_hosts_lines() if "ecdsa-sha2" in line]
        target = SftpTarget(host=server.host, port=server.port, known_hosts=tuple(ecdsa_only))
        deliver(programs_txt, target, key_credentials(server, client_key))
        assert "kex: host key algorithm: ecdsa-sha2-nistp256" in server.log_text()


def test_no_pin_for_the_host_fails_before_connecting(
    sshd: SshdServer, make_target: MakeTarget, client_key: KeyPair, programs_txt: Path
) -> None:
    other_port = [line.replace(f":{sshd.port} ", ":2222 ") for line in sshd.known_hosts_lines()]
    with pytest.raises(DeliveryConfigError, match="no pinned host key"):
        deliver(programs_txt, make_target(known_hosts=tuple(other_port)), key_credentials(sshd, client_key))
    assert _connections(sshd) == 0


def test_wrong_client_key_is_an_authentication_failure_not_retried(
    sshd: SshdServer, make_target: MakeTarget, keys_dir: Path, programs_txt: Path
) -> None:
    stranger = generate_key(keys_dir, "ed25519")
    with pytest.raises(AuthenticationFailed, match="refused the feed's ssh-ed25519 key") as caught:
        deliver(programs_txt, make_target(), key_credentials(sshd, stranger), retry=QUICK_RETRY)
    assert caught.value.attempts == 1
    assert _connections(sshd) == 1
    assert files_on(sshd) == []


def test_missing_remote_directory_is_reported_not_retried(
    sshd: SshdServer, make_target: MakeTarget, client_key: KeyPair, programs_txt: Path
) -> None:
    with pytest.raises(RemoteDirectoryMissing, match="'outbound/illuminate'") as caught:
        deliver(
            programs_txt,
            make_target(remote_dir="outbound/illuminate"),
            key_credentials(sshd, client_key),
            retry=QUICK_RETRY,
        )
    assert caught.value.attempts == 1
    assert files_on(sshd) == []


def test_server_killed_mid_transfer_then_restarted_the_retry_delivers_a_complete_file(
    sshd: SshdServer, make_target: MakeTarget, client_key: KeyPair, tmp_path: Path
) -> None:
    big = tmp_path / "programs.txt"
    big.write_bytes(os.urandom(24 * 1024 * 1024 + 7))
    seen_during_outage: list[list[str]] = []

    def crash_once(done: int, total: int) -> None:
        if not seen_during_outage and done > total // 3:
            sshd.kill()
            seen_during_outage.append(files_on(sshd))
            sshd.start()

    receipt = deliver(big, make_target(), key_credentials(sshd, client_key), retry=QUICK_RETRY, progress=crash_once)
    [left_by_crash] = seen_during_outage
    assert "programs.txt" not in left_by_crash  # nothing partial ever sat under the final name
    assert any(name.endswith(".part") for name in left_by_crash)
    assert receipt.attempts == 2
    assert receipt.stale_temps_removed == 1  # the crashed attempt's temporary file
    assert (sshd.sftp_root / "programs.txt").read_bytes() == big.read_bytes()
    assert files_on(sshd) == ["programs.txt"]


def test_a_server_that_hangs_mid_transfer_times_out_and_the_retry_delivers(
    sshd: SshdServer, make_target: MakeTarget, client_key: KeyPair, tmp_path: Path
) -> None:
    big = tmp_path / "programs.txt"
    big.write_bytes(os.urandom(24 * 1024 * 1024 + 7))
    frozen: list[bool] = []

    def hang_once(done: int, total: int) -> None:
        if not frozen and done > total // 3:
            sshd.freeze_sessions()
            frozen.append(True)

    target = make_target(timeouts=Timeouts(io=1.0))
    receipt = deliver(big, target, key_credentials(sshd, client_key), retry=QUICK_RETRY, progress=hang_once)
    assert receipt.attempts == 2
    assert (sshd.sftp_root / "programs.txt").read_bytes() == big.read_bytes()


def test_a_server_that_never_sends_its_banner_times_out(client_key: KeyPair, programs_txt: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        target = SftpTarget(
            host="127.0.0.1",
            port=port,
            known_hosts=f"[127.0.0.1]:{port} {client_key.public_line}",
            timeouts=Timeouts(banner=0.5, handshake=0.5),
        )
        credentials = SftpCredentials.model_validate({"username": "u", "private_key": client_key.private_text})
        with pytest.raises(ConnectionFailed, match="SSH handshake") as caught:
            deliver(programs_txt, target, credentials, retry=RetryPolicy(attempts=2), sleep=lambda _: None)
    assert caught.value.attempts == 2


def test_connection_refused_is_retried_then_reported(client_key: KeyPair, programs_txt: Path) -> None:
    port = free_port()  # nothing listens here
    sleeps: list[float] = []
    target = SftpTarget(host="127.0.0.1", port=port, known_hosts=(f"[127.0.0.1]:{port} {client_key.public_line}",))
    credentials = SftpCredentials.model_validate({"username": "u", "private_key": client_key.private_text})
    with pytest.raises(ConnectionFailed, match="connecting to") as caught:
        deliver(programs_txt, target, credentials, retry=RetryPolicy(attempts=3), sleep=sleeps.append)
    assert caught.value.attempts == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize("sshd_options", [SshdOptions(denied_requests=("rename", "posix-rename"))])
def test_rename_refused_leaves_the_old_file_and_no_temporary_file(
    sshd: SshdServer, make_target: MakeTarget, client_key: KeyPair, programs_txt: Path
) -> None:
    (sshd.sftp_root / "programs.txt").write_text("yesterday's file\n")
    with pytest.raises(RenameRefused, match="turn the temporary name off") as caught:
        deliver(programs_txt, make_target(), key_credentials(sshd, client_key), retry=QUICK_RETRY)
    assert caught.value.attempts == 1
    assert files_on(sshd) == ["programs.txt"]
    assert (sshd.sftp_root / "programs.txt").read_text() == "yesterday's file\n"


@pytest.mark.parametrize("sshd_options", [SshdOptions(denied_requests=("rename", "posix-rename"))])
def test_without_the_temporary_name_a_rename_refusing_server_gets_the_file(
    sshd: SshdServer, make_target: MakeTarget, client_key: KeyPair, programs_txt: Path
) -> None:
    deliver(programs_txt, make_target(use_temp_rename=False), key_credentials(sshd, client_key))
    assert (sshd.sftp_root / "programs.txt").read_bytes() == programs_txt.read_bytes()
    assert files_on(sshd) == ["programs.txt"]


def test_stale_temporary_files_from_earlier_failures_are_cleaned(
    sshd: SshdServer, make_target: MakeTarget, client_key: KeyPair, programs_txt: Path
) -> None:
    for name in (".programs.txt.0a1b2c3d4e5f.part", ".programs.txt.99.part", ".other.txt.0a1b.part", "notes.txt"):
        (sshd.sftp_root / name).write_text("left over\n")
    receipt = deliver(programs_txt, make_target(), key_credentials(sshd, client_key))
    assert receipt.stale_temps_removed == 2
    assert files_on(sshd) == [".other.txt.0a1b.part", "notes.txt", "programs.txt"]


@pytest.mark.parametrize("sshd_options", [SshdOptions(password_auth=True)])
def test_password_authentication(sshd: SshdServer, make_target: MakeTarget, programs_txt: Path) -> None:
    assert sshd.password is not None
    good = SftpCredentials.model_validate({"username": sshd.user, "password": sshd.password})
    deliver(programs_txt, make_target(), good)
    assert (sshd.sftp_root / "programs.txt").read_bytes() == programs_txt.read_bytes()
    bad = SftpCredentials.model_validate({"username": sshd.user, "password": sshd.password + "x"})
    with pytest.raises(AuthenticationFailed, match="refused the feed's password"):
        deliver(programs_txt, make_target(), bad, retry=QUICK_RETRY)


def test_credentials_from_secrets_manager_with_a_passphrase_protected_key(
    aws: MotoServer,
    sshd: SshdServer,
    make_target: MakeTarget,
    keys_dir: Path,
    programs_txt: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = generate_key(keys_dir, "ecdsa", passphrase="correct horse battery")
    sshd.authorize(key.public_line)
    name = f"programs-bridge/sftp/{uuid.uuid4().hex}"
    secret = {"username": sshd.user, "private_key": key.private_text, "passphrase": key.passphrase}
    boto3.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(secret))
    # Our loggers and paramiko's, at their most verbose.  (botocore's DEBUG log prints API responses,
    # secrets included: docs/delivery.md says never to enable it in production.)
    caplog.set_level(logging.DEBUG, logger="programs_bridge")
    caplog.set_level(logging.DEBUG, logger="paramiko")
    deliver(programs_txt, make_target(), load_credentials(name))
    assert (sshd.sftp_root / "programs.txt").read_bytes() == programs_txt.read_bytes()
    assert {record.name.split(".")[0] for record in caplog.records} == {"paramiko", "programs_bridge"}
    assert "correct horse" not in caplog.text and "PRIVATE KEY" not in caplog.text
