"""``programs-bridge deliver``: what an operator sees when testing a feed's connection by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from programs_bridge.cli.main import main
from support.sshd import KeyPair, SshdOptions, SshdServer, generate_key

pytestmark = pytest.mark.sshd


def _args(server: SshdServer, known_hosts: Path, file: Path, *extra: str) -> list[str]:
    return [
        *("deliver", str(file), "--host", server.host, "--port", str(server.port), "--user", server.user),
        *("--known-hosts", str(known_hosts), *extra),
    ]


@pytest.fixture
def known_hosts(sshd: SshdServer, tmp_path: Path) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text("\n".join(sshd.known_hosts_lines()) + "\n")
    return path


def test_deliver_succeeds_with_exit_0(
    sshd: SshdServer, known_hosts: Path, client_key: KeyPair, programs_txt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(_args(sshd, known_hosts, programs_txt, "--key-file", str(client_key.private_path)))
    assert code == 0
    assert f"delivered {programs_txt.stat().st_size} bytes" in capsys.readouterr().out
    assert (sshd.sftp_root / "programs.txt").read_bytes() == programs_txt.read_bytes()


def test_an_unpinned_host_key_exits_3_with_its_fingerprint_on_one_line(
    sshd: SshdServer,
    tmp_path: Path,
    keys_dir: Path,
    client_key: KeyPair,
    programs_txt: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = generate_key(keys_dir, "ed25519")
    known_hosts = tmp_path / "other_known_hosts"
    known_hosts.write_text(f"[{sshd.host}]:{sshd.port} {other.public_line}\n")
    code = main(_args(sshd, known_hosts, programs_txt, "--key-file", str(client_key.private_path)))
    err = capsys.readouterr().err
    assert code == 3
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "[host_key_rejected]" in err and "SHA256:" in err
    assert sshd.userauth_requests() == 0


@pytest.mark.parametrize("sshd_options", [SshdOptions(password_auth=True)])
def test_password_comes_from_the_named_environment_variable(
    sshd: SshdServer,
    known_hosts: Path,
    programs_txt: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert sshd.password is not None
    monkeypatch.setenv("ILLUMINATE_SFTP_PASSWORD", sshd.password)
    assert main(_args(sshd, known_hosts, programs_txt, "--password-env", "ILLUMINATE_SFTP_PASSWORD")) == 0
    assert (sshd.sftp_root / "programs.txt").exists()


def test_an_encrypted_key_file_takes_its_passphrase_from_the_environment(
    sshd: SshdServer, known_hosts: Path, keys_dir: Path, programs_txt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key(keys_dir, "rsa", passphrase="district passphrase")
    sshd.authorize(key.public_line)
    monkeypatch.setenv("KEY_PASSPHRASE", key.passphrase)
    args = _args(
        sshd, known_hosts, programs_txt, "--key-file", str(key.private_path), "--passphrase-env", "KEY_PASSPHRASE"
    )
    assert main(args) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "give --key-file or --password-env"),
        (("--password-env", "UNSET_VARIABLE_FOR_TEST"), "'UNSET_VARIABLE_FOR_TEST', which is not set"),
        (("--key-file", "/nonexistent/id_ed25519"), "cannot read key file"),
    ],
)
def test_usage_errors_exit_64_without_connecting(
    sshd: SshdServer,
    known_hosts: Path,
    programs_txt: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    message: str,
) -> None:
    assert main(_args(sshd, known_hosts, programs_txt, *extra)) == 64
    assert message in capsys.readouterr().err
    assert "Connection from" not in sshd.log_text()


def test_a_missing_file_is_a_usage_error(
    sshd: SshdServer, known_hosts: Path, client_key: KeyPair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(_args(sshd, known_hosts, tmp_path / "nope.txt", "--key-file", str(client_key.private_path)))
    assert code == 64
    assert "no such file" in capsys.readouterr().err
