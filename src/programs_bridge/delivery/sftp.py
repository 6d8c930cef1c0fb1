"""The paramiko adapter: put one local file on an SFTP server, atomically, verified, with retries.

One delivery attempt is: TCP connect (own timeout) -> SSH handshake (banner and key-exchange
timeouts) -> compare the server's host key with the feed's pins, and stop *before authenticating*
if it is not one of them -> authenticate (auth timeout) -> open the SFTP channel (channel timeout;
every later request has an I/O timeout) -> check the remote directory -> remove temporary files that
earlier failed deliveries left -> upload to a temporary name with pipelined writes -> compare the
remote size with the local size -> rename over the final name.  Any failure removes the temporary
file when the connection still allows it, so the final name only ever holds a complete file.

Transient failures are retried by :func:`.retry.call_with_retries`; everything else raises the
specific :mod:`.errors` type at once.  paramiko is imported inside the functions, so code that
imports this package but never delivers (most of the pipeline's Lambdas) does not load it.
"""

from __future__ import annotations

import errno
import logging
import socket
import stat
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, TypeGuard, cast

from programs_bridge.delivery.credentials import SftpCredentials
from programs_bridge.delivery.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    DeliveryConfigError,
    DeliveryError,
    RemoteDirectoryMissing,
    RemoteOperationFailed,
    RemotePermissionDenied,
    RenameRefused,
    TransferIncomplete,
)
from programs_bridge.delivery.hostkeys import (
    PinnedKey,
    check_offered_key,
    parse_known_hosts,
    pins_for,
    preferred_algorithms,
)
from programs_bridge.delivery.keys import load_private_key
from programs_bridge.delivery.remote_names import is_temp_of, remote_path, temp_name
from programs_bridge.delivery.retry import RetryPolicy, call_with_retries

if TYPE_CHECKING:
    from paramiko import PKey, SFTPClient, Transport
    from paramiko.message import Message

log = logging.getLogger(__name__)

#: ``progress(bytes_acknowledged_by_server, total_bytes)``, called as write acknowledgements arrive.
Progress = Callable[[int, int], None]

#: Legacy algorithms a security review rejects.  paramiko 5 has already dropped some of them; listing
#: them keeps older paramiko releases (>= 3.4, which pyproject allows) equally strict.  "ssh-rsa" here
#: means SHA-1 RSA *signatures*; RSA keys still work with rsa-sha2-256/512.
DISABLED_ALGORITHMS: dict[str, list[str]] = {
    "ciphers": ["3des-cbc", "aes128-cbc", "aes192-cbc", "aes256-cbc", "blowfish-cbc"],
    "macs": ["hmac-sha1", "hmac-sha1-96", "hmac-md5", "hmac-md5-96"],
    "keys": ["ssh-rsa", "ssh-dss"],
    "pubkeys": ["ssh-rsa", "ssh-dss"],
    "kex": ["diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1", "diffie-hellman-group-exchange-sha1"],
}

#: SFTP write size every server must accept (draft-ietf-secsh-filexfer-02 asks for >= 32768).
BASE_WRITE_SIZE = 32768
#: Largest write we send even if the server allows more (OpenSSH's sftp-server allows 255 KiB).
MAX_WRITE_SIZE = 255 * 1024
#: Bytes of writes in flight.  More than the 2 MiB channel window OpenSSH grants, so the window, not
#: our acknowledgement handling, is what paces the upload on long round trips.
IN_FLIGHT_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed for each phase; none of them is ever unbounded."""

    connect: float = 10.0
    banner: float = 15.0
    handshake: float = 30.0
    auth: float = 30.0
    channel: float = 15.0
    #: Any single wait on the server once the SFTP session is open (a write acknowledgement, a stat).
    io: float = 60.0


@dataclass(frozen=True, slots=True)
class SftpTarget:
    """Where one feed's file goes.  ``known_hosts`` holds the pinned host key line(s): a tuple of lines,
    or one string with a line per key."""

    host: str
    known_hosts: tuple[str, ...] | str
    port: int = 22
    remote_dir: str = "."
    remote_name: str = "programs.txt"
    #: Upload to a temporary name and rename; turn off only for servers that refuse renames.
    use_temp_rename: bool = True
    timeouts: Timeouts = field(default_factory=Timeouts)


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """What was delivered, for the ledger and the run report."""

    remote_path: str
    size: int
    attempts: int
    stale_temps_removed: int


class _SftpWire(Protocol):
    """The request/response primitives of :class:`paramiko.SFTPClient` that pipelined writes need.

    ``putfo`` pipelines too, but it drains *every* outstanding request whenever more than 100 are
    queued (so the pipe empties once per cycle on long round trips) and it drops the status of
    pipelined writes; keeping our own bounded window of requests avoids both.
    """

    def _async_request(self, fileobj: object, t: int, *args: object) -> int: ...

    def _read_response(self, waitfor: int | None = None) -> tuple[int | None, Message | None]: ...

    def _request(self, t: int, *args: object) -> tuple[int, Message]: ...


def deliver(
    local_file: Path,
    target: SftpTarget,
    credentials: SftpCredentials,
    *,
    retry: RetryPolicy | None = None,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReceipt:
    """Deliver ``local_file`` to ``target`` as ``target.remote_name``; raise a :class:`DeliveryError`.

    Configuration problems (no pin for the host, an unreadable key) are raised before connecting.
    """
    pins = pins_for(parse_known_hosts(target.known_hosts), target.host, target.port)
    key = (
        load_private_key(
            credentials.private_key.get_secret_value(),
            credentials.passphrase.get_secret_value() if credentials.passphrase else None,
        )
        if credentials.private_key is not None
        else None
    )
    try:
        size = local_file.stat().st_size
    except OSError as exc:
        raise DeliveryConfigError(f"cannot read the file to deliver: {exc.strerror}") from None
    final = remote_path(target.remote_dir, target.remote_name)

    def attempt(number: int) -> DeliveryReceipt:
        log.info("delivery attempt", extra={"attempt": number, "host": target.host, "port": target.port})
        removed = _deliver_once(local_file, size, target, pins, credentials, key, progress)
        return DeliveryReceipt(final, size, number, removed)

    receipt = call_with_retries(attempt, retry or RetryPolicy(), sleep=sleep)
    log.info("delivered", extra={"bytes": size, "attempts": receipt.attempts, "host": target.host})
    return receipt


def _deliver_once(
    local_file: Path,
    size: int,
    target: SftpTarget,
    pins: list[PinnedKey],
    credentials: SftpCredentials,
    key: PKey | None,
    progress: Progress | None,
) -> int:
    """One connection's worth of delivery; returns how many stale temporary files it removed."""
    final = remote_path(target.remote_dir, target.remote_name)
    with _session(target, pins, credentials, key) as sftp:
        _require_directory(sftp, target.remote_dir)
        removed = _remove_stale_temps(sftp, target)
        if not target.use_temp_rename:
            _upload(sftp, local_file, final, size, progress)
            return removed
        temp = remote_path(target.remote_dir, temp_name(target.remote_name))
        _upload(sftp, local_file, temp, size, progress)
        try:
            _publish(sftp, temp, final)
        except BaseException:
            _remove_quietly(sftp, temp)
            raise
        return removed


def _is_sftp_status(exc: BaseException) -> TypeGuard[OSError]:
    """paramiko reports an SFTP status reply as ``IOError`` with errno ENOENT, EACCES or none (Python
    turns the first two into FileNotFoundError and PermissionError); socket failures are other
    ``OSError`` subclasses or carry other errno values.  The one ambiguity, a bare "Socket is closed",
    is settled in :func:`_session`, which knows whether the connection is still up."""
    return (
        isinstance(exc, OSError)
        and not isinstance(exc, (ConnectionError, TimeoutError))
        and exc.errno in (None, errno.ENOENT, errno.EACCES)
    )


def _translate(exc: BaseException, action: str, missing: type[DeliveryError]) -> DeliveryError:
    """Map a paramiko/socket exception raised while doing ``action`` to our error types."""
    from paramiko import AuthenticationException
    from paramiko.sftp import SFTPError

    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, AuthenticationException):
        return AuthenticationFailed(f"{action}: the server refused authentication")
    if _is_sftp_status(exc):
        reason = exc.strerror or (str(exc.args[0]) if exc.args else "failure")
        if exc.errno == errno.ENOENT:
            return missing(f"{action}: no such file or directory")
        if exc.errno == errno.EACCES:
            return RemotePermissionDenied(f"{action}: permission denied by the server")
        return RemoteOperationFailed(f"{action}: the server said {reason!r}")
    if isinstance(exc, SFTPError):
        return RemoteOperationFailed(f"{action}: SFTP protocol error ({exc})")
    detail = str(exc) or type(exc).__name__
    return ConnectionFailed(f"{action}: connection failed ({detail})")


@contextmanager
def _translating(action: str, missing: type[DeliveryError] = RemoteOperationFailed) -> Iterator[None]:
    from paramiko import SSHException
    from paramiko.sftp import SFTPError

    try:
        yield
    except (OSError, EOFError, SSHException, SFTPError) as exc:
        raise _translate(exc, action, missing) from exc


@contextmanager
def _session(
    target: SftpTarget, pins: list[PinnedKey], credentials: SftpCredentials, key: PKey | None
) -> Iterator[SFTPClient]:
    """An authenticated SFTP session to a server whose host key is pinned; closed on exit."""
    import paramiko

    where = f"[{target.host}]:{target.port}"
    timeouts = target.timeouts
    with _translating(f"connecting to {where}"):
        sock = socket.create_connection((target.host, target.port), timeout=timeouts.connect)
    try:
        transport = paramiko.Transport(sock, disabled_algorithms=DISABLED_ALGORITHMS)
    except BaseException:
        sock.close()
        raise
    try:
        transport.banner_timeout = timeouts.banner
        transport.handshake_timeout = timeouts.handshake
        transport.auth_timeout = timeouts.auth
        transport.channel_timeout = timeouts.channel
        offered = [alg for alg in transport.preferred_keys if "-cert-" not in alg]
        transport.get_security_options().key_types = preferred_algorithms(pins, offered)
        with _translating(f"SSH handshake with {where}"):
            transport.start_client(timeout=timeouts.handshake)
        if not (transport.is_active() and transport.initial_kex_done):
            # start_client returns quietly when its timeout expires mid-negotiation.
            raise ConnectionFailed(f"SSH handshake with {where}: no answer within {timeouts.handshake:g} s")
        server_key = transport.get_remote_server_key()
        check_offered_key(pins, target.host, target.port, server_key.get_name(), server_key.asbytes())
        _authenticate(transport, credentials, key, where)
        with _translating(f"opening the SFTP session on {where}"):
            client = paramiko.SFTPClient.from_transport(transport)
            if client is None:
                raise ConnectionFailed(f"opening the SFTP session on {where}: the server refused the channel")
            channel = client.get_channel()
            if channel is not None:
                channel.settimeout(timeouts.io)
        try:
            yield client
        except RemoteOperationFailed as exc:
            # A request that failed because the connection died is transient, whatever it looked like.
            channel = client.get_channel()
            if transport.is_active() and channel is not None and not channel.closed:
                raise
            raise ConnectionFailed(f"connection to {where} lost: {exc}") from exc
    finally:
        transport.close()


def _authenticate(transport: Transport, credentials: SftpCredentials, key: PKey | None, where: str) -> None:
    """Try the key, then the password (if the secret has them); fail with :class:`AuthenticationFailed`."""
    from paramiko import BadAuthenticationType

    user = credentials.username
    password = credentials.password
    methods: list[tuple[str, Callable[[], object]]] = []
    if key is not None:
        methods.append((f"{key.get_name()} key", lambda: transport.auth_publickey(user, key)))
    if password is not None:
        methods.append(("password", lambda: transport.auth_password(user, password.get_secret_value(), fallback=False)))
    accepted = ""
    for _name, method in methods:
        try:
            with _translating(f"authenticating to {where}"):
                method()
        except AuthenticationFailed as exc:
            cause = exc.__cause__
            if isinstance(cause, BadAuthenticationType):
                accepted = f" (it accepts: {', '.join(cause.allowed_types)})"
        if transport.is_authenticated():
            return
    tried = " and ".join(name for name, _ in methods)
    raise AuthenticationFailed(f"{where} refused the feed's {tried}{accepted}")


def _require_directory(sftp: SFTPClient, remote_dir: str) -> None:
    with _translating(f"checking remote directory {remote_dir!r}", missing=RemoteDirectoryMissing):
        attributes = sftp.stat(remote_dir)
    if attributes.st_mode is not None and not stat.S_ISDIR(attributes.st_mode):
        raise RemoteDirectoryMissing(f"remote path {remote_dir!r} is not a directory")


def _remove_stale_temps(sftp: SFTPClient, target: SftpTarget) -> int:
    """Remove temporary uploads an interrupted delivery of this feed left behind.

    Deliveries of one feed never overlap (the pipeline runs them one at a time), so every such file is
    garbage.  A drop directory that may not be listed just skips the cleanup.
    """
    with _translating(f"listing {target.remote_dir!r}"):
        try:
            names = sftp.listdir(target.remote_dir)
        except OSError as exc:
            if _is_sftp_status(exc) and exc.errno == errno.EACCES:
                log.warning("cannot list the remote directory; stale temporary files not cleaned")
                return 0
            raise
    stale = [name for name in names if is_temp_of(name, target.remote_name)]
    for name in stale:
        with _translating(f"removing stale temporary file {name!r}"):
            sftp.remove(remote_path(target.remote_dir, name))
    if stale:
        log.info("removed stale temporary files", extra={"count": len(stale)})
    return len(stale)


def _write_size(sftp: SFTPClient) -> int:
    """The largest write the server accepts, from OpenSSH's ``limits@openssh.com`` extension.

    Fewer, larger requests cut paramiko's per-request Python work; servers without the extension get
    the 32 KiB every server must take.
    """
    from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY

    wire = cast(_SftpWire, sftp)
    try:
        kind, reply = wire._request(CMD_EXTENDED, "limits@openssh.com")
    except OSError as exc:
        if _is_sftp_status(exc):
            return BASE_WRITE_SIZE
        raise
    if kind != CMD_EXTENDED_REPLY:
        return BASE_WRITE_SIZE
    reply.get_int64()  # max packet length
    reply.get_int64()  # max read length
    max_write = reply.get_int64()
    return max(BASE_WRITE_SIZE, min(max_write, MAX_WRITE_SIZE)) if max_write else BASE_WRITE_SIZE


def _pipelined_write(sftp: SFTPClient, handle: object, source: BinaryIO, size: int, progress: Progress | None) -> None:
    """Send writes back to back, keeping up to :data:`IN_FLIGHT_BYTES` unacknowledged.

    Acknowledgements are read oldest first; an error status raises at once (paramiko's own pipelined
    writes ignore them).
    """
    from paramiko.sftp import CMD_WRITE, int64

    wire = cast(_SftpWire, sftp)
    request_size = _write_size(sftp)
    window = max(1, IN_FLIGHT_BYTES // request_size)
    in_flight: deque[tuple[int, int]] = deque()
    offset = acknowledged = 0

    def acknowledge_oldest() -> None:
        nonlocal acknowledged
        number, length = in_flight.popleft()
        wire._read_response(number)
        acknowledged += length
        if progress is not None:
            progress(acknowledged, size)

    while chunk := source.read(request_size):
        in_flight.append((wire._async_request(type(None), CMD_WRITE, handle, int64(offset), chunk), len(chunk)))
        offset += len(chunk)
        if len(in_flight) >= window:
            acknowledge_oldest()
    while in_flight:
        acknowledge_oldest()


def _upload(sftp: SFTPClient, local_file: Path, path: str, size: int, progress: Progress | None) -> None:
    """Write the file to ``path`` and check the server holds exactly ``size`` bytes there.

    Once the remote file is opened (and so truncated), any failure removes it if the connection still
    allows: with the temporary name off, that is the final name, and no file beats half a file.
    """
    with _translating(f"creating {path!r}"):
        remote = sftp.open(path, "wb")
    try:
        with _translating(f"uploading to {path!r}"), local_file.open("rb") as source:
            try:
                _pipelined_write(sftp, remote.handle, source, size, progress)
            finally:
                remote.close()
        with _translating(f"checking the size of {path!r}"):
            remote_size = sftp.stat(path).st_size
        if remote_size != size:
            raise TransferIncomplete(f"{path!r} has {remote_size} bytes on the server, expected {size}")
    except BaseException:
        _remove_quietly(sftp, path)
        raise


def _publish(sftp: SFTPClient, temp: str, final: str) -> None:
    """Move the verified upload over the final name.

    ``posix-rename@openssh.com`` replaces the old file atomically.  Servers without the extension
    get SFTP v3's rename, which refuses to overwrite, so an existing file is removed first: the
    final name is briefly absent, never partial.  A server that denies renames raises
    :class:`RenameRefused` (and the caller removes the temporary file).
    """
    action = f"renaming the upload to {final!r}"
    with _translating(action):
        try:
            sftp.posix_rename(temp, final)
            return
        except OSError as exc:
            if not _is_sftp_status(exc):
                raise
            if exc.errno == errno.EACCES:
                raise RenameRefused(f"{action}: the server refuses renames; turn the temporary name off") from exc
        # posix-rename is not offered: remove, then plain rename.
        try:
            sftp.remove(final)
        except OSError as exc:
            if not (_is_sftp_status(exc) and exc.errno == errno.ENOENT):
                raise
        try:
            sftp.rename(temp, final)
        except OSError as exc:
            if not _is_sftp_status(exc):
                raise
            raise RenameRefused(f"{action}: the server refused the rename ({exc})") from exc


def _remove_quietly(sftp: SFTPClient, path: str) -> None:
    """Best-effort cleanup after a failure; a dead connection just leaves it for the next attempt."""
    from paramiko import SSHException

    try:
        sftp.remove(path)
    except (OSError, EOFError, SSHException):
        log.info("could not remove the unfinished upload now; the next delivery will")
