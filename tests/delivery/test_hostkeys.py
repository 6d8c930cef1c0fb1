"""Host key pinning as pure functions: which lines pin which host, and what a mismatch reports."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
from pathlib import Path

import pytest

from programs_bridge.delivery.errors import DeliveryConfigError, HostKeyRejected
from programs_bridge.delivery.hostkeys import (
    check_offered_key,
    parse_known_hosts,
    pins_for,
    preferred_algorithms,
)
from support.sshd import generate_key


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str, Path]]:
    """kind -> (key type, base64 blob, public key file) for real keys made by ssh-keygen."""
    directory = tmp_path_factory.mktemp("host-keys")
    made = {}
    for kind in ("ed25519", "ecdsa", "rsa"):
        pair = generate_key(directory, kind)
        key_type, encoded = pair.public_line.split()[:2]
        made[kind] = (key_type, encoded, pair.private_path.with_name(pair.private_path.name + ".pub"))
    return made


def _hashed(host: str, salt: bytes) -> str:
    digest = hmac.new(salt, host.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def test_a_pin_applies_to_the_host_and_port_it_names(keys: dict[str, tuple[str, str, Path]]) -> None:
    key_type, encoded, _ = keys["ed25519"]
    pins = parse_known_hosts(f"sftp.example.org {key_type} {encoded}\n[sftp.example.org]:2222 {key_type} {encoded}")
    assert len(pins_for(pins, "sftp.example.org", 22)) == 1
    assert len(pins_for(pins, "SFTP.example.org", 2222)) == 1
    with pytest.raises(DeliveryConfigError, match=r"no pinned host key for \[sftp.example.org\]:2200"):
        pins_for(pins, "sftp.example.org", 2200)
    with pytest.raises(DeliveryConfigError, match=r"no pinned host key for other\.example\.org"):
        pins_for(pins, "other.example.org", 22)


def test_hashed_wildcard_and_negated_host_patterns(keys: dict[str, tuple[str, str, Path]]) -> None:
    key_type, encoded, _ = keys["ed25519"]
    text = "\n".join(
        [
            "# a comment, then a blank line",
            "",
            f"{_hashed('[sftp.example.org]:2222', b'0123456789abcdefghij')} {key_type} {encoded}",
            f"*.illuminate.example,!bad.illuminate.example {key_type} {encoded}",
        ]
    )
    pins = parse_known_hosts(text)
    assert pins_for(pins, "sftp.example.org", 2222)
    assert pins_for(pins, "eu.illuminate.example", 22)
    for host, port in (("sftp.example.org", 22), ("bad.illuminate.example", 22)):
        with pytest.raises(DeliveryConfigError):
            pins_for(pins, host, port)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("host ssh-ed25519", "expected 'host key-type base64-key'"),
        ("host ssh-dss AAAAB3NzaC1kc3MAAACBAP", "unsupported key type 'ssh-dss'"),
        ("host ssh-ed25519 not*base64", "not valid base64"),
        ("@cert-authority *.example ssh-ed25519 AAAA", "markers"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIom user@laptop", r"public key \(\.pub\) line"),
    ],
)
def test_malformed_known_hosts_lines_are_configuration_errors(line: str, problem: str) -> None:
    with pytest.raises(DeliveryConfigError, match=rf"line 2: .*{problem}"):
        parse_known_hosts(["# pins", line])


def test_a_key_whose_data_is_another_type_is_refused(keys: dict[str, tuple[str, str, Path]]) -> None:
    _, rsa_blob, _ = keys["rsa"]
    with pytest.raises(DeliveryConfigError, match="not a ssh-ed25519 key"):
        parse_known_hosts(f"host ssh-ed25519 {rsa_blob}")


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
def test_an_unpinned_key_is_rejected_with_the_fingerprint_ssh_keygen_prints(
    keys: dict[str, tuple[str, str, Path]], kind: str
) -> None:
    pinned_type, pinned, _ = keys["ed25519" if kind != "ed25519" else "ecdsa"]
    offered_type, offered, public_file = keys[kind]
    pins = parse_known_hosts(f"[sftp.example.org]:2222 {pinned_type} {pinned}")
    expected = subprocess.run(["ssh-keygen", "-lf", str(public_file)], capture_output=True, text=True, check=True)
    with pytest.raises(HostKeyRejected) as caught:
        check_offered_key(pins, "sftp.example.org", 2222, offered_type, base64.b64decode(offered))
    assert caught.value.fingerprint == expected.stdout.split()[1]
    assert caught.value.fingerprint in str(caught.value)
    assert not caught.value.retryable


def test_the_pinned_key_itself_is_accepted(keys: dict[str, tuple[str, str, Path]]) -> None:
    key_type, encoded, _ = keys["rsa"]
    pins = parse_known_hosts(f"h {key_type} {encoded}")
    check_offered_key(pins, "h", 22, key_type, base64.b64decode(encoded))


def test_pinned_rsa_keys_are_negotiated_with_sha2_signatures_only(keys: dict[str, tuple[str, str, Path]]) -> None:
    key_type, encoded, _ = keys["rsa"]
    pins = parse_known_hosts(f"h {key_type} {encoded}")
    available = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"]
    assert preferred_algorithms(pins, available) == [
        "rsa-sha2-512",
        "rsa-sha2-256",
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
    ]
    assert "ssh-rsa" not in preferred_algorithms(pins, available)
