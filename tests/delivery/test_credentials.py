"""Credentials: validated without echoing values, read from Secrets Manager (moto server), keys in memory."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from programs_bridge.delivery.credentials import SftpCredentials, load_credentials, parse_credentials
from programs_bridge.delivery.errors import DeliveryConfigError
from programs_bridge.delivery.keys import load_private_key
from programs_bridge.local.moto_server import MotoServer
from support.sshd import KeyPair, generate_key


def test_secret_values_never_appear_in_repr_or_validation_errors() -> None:
    credentials = parse_credentials({"username": "district-7", "password": "hunter2-correct-horse"})
    assert "hunter2" not in repr(credentials) and "hunter2" not in str(credentials)
    with pytest.raises(DeliveryConfigError) as caught:
        parse_credentials({"username": "district-7", "password": 12345678, "passwd": "hunter2-typo"})
    message = str(caught.value)
    assert "password" in message and "passwd" in message
    assert "12345678" not in message and "hunter2" not in message


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ({"username": "u"}, "needs a private_key or a password"),
        ({"username": "u", "password": "p", "passphrase": "x"}, "passphrase but no private_key"),
        ({"username": "", "password": "p"}, "username"),
        ("not an object", "secret"),
    ],
)
def test_unusable_secrets_say_what_is_wrong(secret: object, problem: str) -> None:
    with pytest.raises(DeliveryConfigError, match=problem):
        parse_credentials(secret)


@pytest.mark.parametrize(
    ("kind", "pem"), [("ed25519", False), ("ecdsa", False), ("ecdsa", True), ("rsa", False), ("rsa", True)]
)
def test_encrypted_keys_of_each_type_and_format_load_in_memory(tmp_path: Path, kind: str, pem: bool) -> None:
    pair = generate_key(tmp_path, kind, passphrase="correct horse", pem=pem)
    key = load_private_key(pair.private_text, "correct horse")
    expected = subprocess.run(["ssh-keygen", "-lf", f"{pair.private_path}.pub"], capture_output=True, text=True)
    assert key.fingerprint == expected.stdout.split()[1]
    with pytest.raises(DeliveryConfigError, match="wrong passphrase"):
        load_private_key(pair.private_text, "wrong horse")
    with pytest.raises(DeliveryConfigError, match="needs a passphrase"):
        load_private_key(pair.private_text, None)


def test_garbage_is_not_a_key() -> None:
    with pytest.raises(DeliveryConfigError, match="not an OpenSSH or PEM private key"):
        load_private_key("-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n-----END OPENSSH PRIVATE KEY-----")


def _store_secret(value: dict[str, str]) -> str:
    name = f"programs-bridge/sftp/{uuid.uuid4().hex}"  # unique: Powertools caches by name
    boto3.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(value))
    return name


def test_credentials_come_from_secrets_manager(aws: MotoServer, tmp_path: Path) -> None:
    pair: KeyPair = generate_key(tmp_path, "ed25519", passphrase="correct horse")
    name = _store_secret({"username": "district-7", "private_key": pair.private_text, "passphrase": pair.passphrase})
    credentials = load_credentials(name)
    assert credentials.username == "district-7"
    assert isinstance(credentials, SftpCredentials) and credentials.private_key is not None
    assert credentials.private_key.get_secret_value() == pair.private_text


def test_a_missing_secret_is_a_configuration_error(aws: MotoServer) -> None:
    with pytest.raises(DeliveryConfigError, match="cannot read the SFTP secret 'programs-bridge/none'"):
        load_credentials("programs-bridge/none")


def test_a_secret_that_is_not_json_is_a_configuration_error(aws: MotoServer) -> None:
    name = f"programs-bridge/sftp/{uuid.uuid4().hex}"
    boto3.client("secretsmanager").create_secret(Name=name, SecretString="username=district-7")
    with pytest.raises(DeliveryConfigError, match="not a JSON object"):
        load_credentials(name)


def test_importing_the_package_does_not_load_paramiko() -> None:
    """Lambdas that import the pipeline but never deliver must not pay paramiko's import time."""
    code = "import sys, programs_bridge.delivery, programs_bridge.cli.deliver; print('paramiko' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_pkcs8_pem_ed25519_key_loads_although_paramiko_reads_only_openssh_ed25519() -> None:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"correct horse"),
    )
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    key = load_private_key(pem.decode(), "correct horse")
    assert f"{key.get_name()} {key.get_base64()}" == public.decode()
