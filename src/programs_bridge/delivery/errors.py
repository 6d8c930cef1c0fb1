"""The distinct ways a delivery can end badly, so the pipeline can report each one precisely.

Every error carries a stable ``code`` (safe to filter on in CloudWatch and documented in
``docs/delivery.md``) and says whether retrying can help.  Only *transient* failures are retryable:
a refused or reset connection, a timeout, a server that vanished mid-transfer, a size check that came
up short.  Host-key and authentication failures are never retried: retrying a wrong host key is how
man-in-the-middle prompts get clicked through, and retrying bad credentials locks accounts.

Messages name hosts, ports, remote paths, key fingerprints and counts; never credentials, and never
anything from the file's content (it holds student data).
"""

from __future__ import annotations

from typing import ClassVar


class DeliveryError(Exception):
    """Base class: something stopped programs.txt from reaching the SFTP server."""

    code: ClassVar[str] = "delivery_failed"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        #: How many connection attempts were made before this error was final (set by the retry loop).
        self.attempts = 1


class DeliveryConfigError(DeliveryError):
    """The feed's delivery settings or secret are unusable (bad known_hosts line, unreadable key, ...).

    Raised before any network traffic; fixing the configuration is the only remedy.
    """

    code = "delivery_config"


class HostKeyRejected(DeliveryError):
    """The server offered a host key that is not pinned for this feed; no credential was sent.

    ``fingerprint`` is the offered key's SHA256 fingerprint (public information), printed so an
    operator can compare it with the one Illuminate publishes and pin it.
    """

    code = "host_key_rejected"

    def __init__(self, host: str, port: int, key_type: str, fingerprint: str) -> None:
        super().__init__(
            f"host key for [{host}]:{port} is not pinned: the server offered {key_type} {fingerprint}; "
            "verify this fingerprint with the server's operator before adding it to the feed's known_hosts"
        )
        self.host = host
        self.port = port
        self.key_type = key_type
        self.fingerprint = fingerprint


class AuthenticationFailed(DeliveryError):
    """The server refused the feed's credentials (wrong key, wrong password, wrong user)."""

    code = "auth_failed"


class ConnectionFailed(DeliveryError):
    """The network or the server went away: refused, reset, timed out, or dropped mid-transfer."""

    code = "connection_failed"
    retryable = True


class TransferIncomplete(DeliveryError):
    """The uploaded file's remote size differs from the local size; the upload is retried."""

    code = "size_mismatch"
    retryable = True


class RemoteDirectoryMissing(DeliveryError):
    """The configured remote directory does not exist (or is not a directory) on the server."""

    code = "remote_dir_missing"


class RemotePermissionDenied(DeliveryError):
    """The server refused to let this user create, list or remove a file where we deliver."""

    code = "remote_permission_denied"


class RenameRefused(DeliveryError):
    """The server would not rename the uploaded temporary file over ``programs.txt``.

    Some servers forbid renames; for those, turn the temporary-name step off (``--no-temp-rename`` /
    ``use_temp_rename=False``).  The temporary file is removed and the final name left untouched.
    """

    code = "rename_refused"


class RemoteOperationFailed(DeliveryError):
    """The server answered an SFTP request with a failure we have no more specific name for."""

    code = "remote_failure"
