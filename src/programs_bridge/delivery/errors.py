"""The distinct ways a delivery can end badly, so the pipeline can report each one precisely.

Every error carries a stable ``code`` (safe to filter on in CloudWatch and documented in
``docs/delivery.md``) and says whether retrying can help.  Only *transient* failures are retryable:
a refused or reset connection, a timeout, a server that vanished mid-transfer, a size check that came
up short, and a delivery that ran out of its time budget (:class:`TimeBudgetExceeded`: a later run gets a
fresh one).  Host-key and authentication failures are never retried: retrying a wrong host key is how
man-in-the-middle prompts get clicked through, and retrying bad credentials locks accounts.

Messages name hosts, ports, remote paths, key fingerprints and counts; never credentials, and never
anything from the file's content (it holds student data).
"""

from __future__ import annotations

from typing import ClassVar

from programs_bridge.delivery.budget import seconds


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


#: What a delivery was doing when its time ran out, in words for the run report (keys are ``phase`` codes).
PHASES: dict[str, str] = {
    "start": "before the first attempt could start",
    "between_attempts": "before another attempt could start",
    "connect": "while connecting",
    "handshake": "during the SSH handshake",
    "auth": "while logging in",
    "channel": "while opening the SFTP session",
    "directory": "while checking the remote directory",
    "cleanup": "while removing temporary files left by earlier deliveries",
    "upload": "while uploading",
    "finish": "while finishing the upload",
    "verify": "while checking the uploaded file's size",
    "publish": "while renaming the upload to its final name",
}


class TimeBudgetExceeded(DeliveryError):
    """The delivery used up the time it was given (the Lambda's remaining time, less the report's share).

    Retryable: the export is still good, and a later run (the queue's retry) gets a fresh budget.  ``phase``
    says what was going on (a key of :data:`PHASES`), ``allowed_seconds`` how long the delivery was given;
    ``attempts`` (set by the retry loop) how many attempts were made, which may be 0 when the budget was too
    small to start one.  The message says all three, in words a data clerk can act on.
    """

    code = "time_budget"
    retryable = True

    def __init__(self, where: str, phase: str, allowed_seconds: float, *, attempts: int, detail: str = "") -> None:
        self.where = where
        self.phase = phase
        self.allowed_seconds = allowed_seconds
        self.detail = detail
        super().__init__(self._message(attempts))
        self.attempts = attempts

    def _message(self, attempts: int) -> str:
        made = "no attempt was made" if attempts == 0 else f"{attempts} attempt(s) made"
        if self.phase == "start":
            advice = (
                "The server was not contacted: the run reached the delivery with too little time left. If this "
                "keeps happening, the function's timeout is too short for this feed"
            )
        else:
            advice = (
                "If this keeps happening, the SFTP server is not answering or is too slow: ask Illuminate whether "
                "it is up and accepting uploads, or check the network between AWS and the server"
            )
        return (
            f"delivery to {self.where} ran out of time {PHASES.get(self.phase, self.phase)}"
            f"{f' ({self.detail})' if self.detail else ''}: it was allowed {seconds(self.allowed_seconds)}, "
            f"{made}. {advice}"
        )

    def __str__(self) -> str:
        # ``attempts`` is final only once the retry loop has set it.
        return self._message(self.attempts)
