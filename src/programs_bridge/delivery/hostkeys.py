"""Host key pinning from known_hosts lines: pure functions, no paramiko, no files.

The expected host keys are part of a feed's configuration (a string or a list of OpenSSH
``known_hosts`` lines), not whatever happens to be in ``~/.ssh``.  A key the server offers is accepted
only if its type and exact public blob equal a pinned key whose host pattern matches the host and
port we dialled; everything else is rejected *before* authentication, with the offered key's SHA256
fingerprint (the same string ``ssh-keygen -lf`` prints) so an operator can verify and pin it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from programs_bridge.delivery.errors import DeliveryConfigError, HostKeyRejected

#: Host key algorithms to offer for each pinned key type.  RSA keys are only ever verified with
#: SHA-2 signatures: "ssh-rsa" (SHA-1) signatures are refused by current servers and by us.
ALGORITHMS_FOR_KEY_TYPE: dict[str, tuple[str, ...]] = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
}


@dataclass(frozen=True, slots=True)
class PinnedKey:
    """One known_hosts line: which hosts it covers and the public key it pins."""

    patterns: tuple[str, ...]
    key_type: str
    blob: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)


def fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob: ``SHA256:`` + unpadded base64."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")
    return f"SHA256:{digest}"


def parse_known_hosts(text: str | Iterable[str]) -> list[PinnedKey]:
    """Parse known_hosts content (one string, or lines); comments and blank lines are skipped.

    ``@cert-authority`` and ``@revoked`` lines are refused rather than half-supported: a pin list
    must mean exactly what it says.
    """
    lines = text.splitlines() if isinstance(text, str) else list(text)
    pins = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            raise DeliveryConfigError(f"known_hosts line {number}: markers such as @cert-authority are not supported")
        fields = line.split()
        if len(fields) < 3:
            raise DeliveryConfigError(f"known_hosts line {number}: expected 'host key-type base64-key'")
        hosts, key_type, encoded = fields[:3]
        if hosts in ALGORITHMS_FOR_KEY_TYPE:
            raise DeliveryConfigError(
                f"known_hosts line {number}: this is a public key (.pub) line; a known_hosts line starts with "
                "the host name, as ssh-keyscan prints it"
            )
        if key_type not in ALGORITHMS_FOR_KEY_TYPE:
            raise DeliveryConfigError(f"known_hosts line {number}: unsupported key type {key_type[:40]!r}")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise DeliveryConfigError(f"known_hosts line {number}: the key is not valid base64") from None
        if _blob_key_type(blob) != key_type:
            raise DeliveryConfigError(f"known_hosts line {number}: the key data is not a {key_type} key")
        pins.append(PinnedKey(tuple(hosts.split(",")), key_type, blob))
    return pins


def _blob_key_type(blob: bytes) -> str | None:
    """The type name an SSH public key blob starts with (a uint32 length, then the name)."""
    if len(blob) < 4:
        return None
    length = int.from_bytes(blob[:4], "big")
    try:
        return blob[4 : 4 + length].decode("ascii")
    except UnicodeDecodeError:
        return None


def host_token(host: str, port: int) -> str:
    """How known_hosts names a host: bare on port 22, ``[host]:port`` otherwise."""
    return host if port == 22 else f"[{host}]:{port}"


def _pattern_matches(pattern: str, token: str) -> bool:
    if pattern.startswith("|1|"):  # hashed: |1|base64(salt)|base64(HMAC-SHA1(salt, host))
        try:
            _, _, salt, digest = pattern.split("|")
            expected = base64.b64decode(digest)
            actual = hmac.new(base64.b64decode(salt), token.encode(), hashlib.sha1).digest()
        except (ValueError, binascii.Error):
            return False
        return hmac.compare_digest(expected, actual)
    # OpenSSH wildcards are only * and ?; brackets are literal ([host]:port), so no fnmatch.
    regex = re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, token.lower()) is not None


def _covers(pin: PinnedKey, token: str) -> bool:
    positive = [p for p in pin.patterns if not p.startswith("!")]
    negative = [p[1:] for p in pin.patterns if p.startswith("!")]
    if any(_pattern_matches(p, token) for p in negative):
        return False
    return any(_pattern_matches(p, token) for p in positive)


def pins_for(pins: Sequence[PinnedKey], host: str, port: int) -> list[PinnedKey]:
    """The pinned keys that apply to ``host``:``port``; none at all is a configuration error.

    Refusing to connect without a pin is what makes "no auto-accept, ever" true.
    """
    token = host_token(host, port)
    matching = [pin for pin in pins if _covers(pin, token)]
    if not matching:
        raise DeliveryConfigError(
            f"no pinned host key for {token}: add the server's known_hosts line to the feed's configuration"
        )
    return matching


def preferred_algorithms(pins: Sequence[PinnedKey], available: Sequence[str]) -> list[str]:
    """Host key algorithms to offer: the pinned types first, so a server with several host keys
    shows us the one we pinned, then the rest, so a server that only has another type still
    reaches :func:`check_offered_key` and we can report its fingerprint."""
    first = [alg for pin in pins for alg in ALGORITHMS_FOR_KEY_TYPE[pin.key_type] if alg in available]
    ordered = list(dict.fromkeys(first))
    return ordered + [alg for alg in available if alg not in ordered]


def check_offered_key(pins: Sequence[PinnedKey], host: str, port: int, key_type: str, blob: bytes) -> None:
    """Accept the server's key only if it equals a pinned one; otherwise raise :class:`HostKeyRejected`."""
    if any(pin.key_type == key_type and hmac.compare_digest(pin.blob, blob) for pin in pins):
        return
    raise HostKeyRejected(host, port, key_type, fingerprint(blob))
