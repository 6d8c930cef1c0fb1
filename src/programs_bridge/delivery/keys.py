"""Turn the private key text from the secret into a paramiko key, entirely in memory.

paramiko's own loaders want a file path (``PKey.from_path``) or a specific key class, and its
Ed25519 class reads only the OpenSSH format.  ``cryptography`` reads every form districts hand us
(OpenSSH, PKCS#1/SEC1 "traditional" PEM, PKCS#8 PEM; encrypted or not), so it parses and decrypts the
key once, and we hand paramiko the resulting key object.  Nothing is ever written to disk.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from programs_bridge.delivery.errors import DeliveryConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
    from cryptography.hazmat.primitives.serialization import SSHPrivateKeyTypes
    from paramiko import PKey


def _decode(text: str, passphrase: str | None) -> PrivateKeyTypes | SSHPrivateKeyTypes:
    """The key object, of whichever type the text holds (cryptography 51 reads OpenSSH key types that PEM
    has no name for, so the two loaders' types differ); ``load_private_key`` refuses all but three."""
    from cryptography.hazmat.primitives import serialization

    data = text.strip().encode() + b"\n"
    password = passphrase.encode() if passphrase else None
    for loader in (serialization.load_ssh_private_key, serialization.load_pem_private_key):
        try:
            return loader(data, password)
        except TypeError:
            # Encrypted without a passphrase, or a passphrase for an unencrypted key.
            needs = "needs a passphrase" if password is None else "is not encrypted but a passphrase was given"
            raise DeliveryConfigError(f"the private key {needs}") from None
        except ValueError:  # not this format, or a wrong passphrase
            continue
    raise DeliveryConfigError(
        "the private key could not be read: wrong passphrase, or not an OpenSSH or PEM private key"
    )


def load_private_key(text: str, passphrase: str | None = None) -> PKey:
    """An ed25519, ECDSA or RSA paramiko key from OpenSSH or PEM text; other types are refused."""
    # Imported here, like paramiko everywhere: a Lambda that never delivers never loads them.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from paramiko import ECDSAKey, Ed25519Key, RSAKey

    key = _decode(text, passphrase)
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise DeliveryConfigError(f"RSA keys must have at least 2048 bits (this one has {key.key_size})")
        return RSAKey(key=key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return ECDSAKey(vals=(key, key.public_key()))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        # paramiko's Ed25519Key only parses OpenSSH text; re-encode (unencrypted, in memory).
        openssh = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        return Ed25519Key(file_obj=io.StringIO(openssh.decode()))
    raise DeliveryConfigError(f"unsupported private key type {type(key).__name__}: use ed25519, ECDSA or RSA")
