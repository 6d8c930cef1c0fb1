"""The paramiko adapter: put one local file on an SFTP server, atomically, verified, with retries.

One delivery attempt is: TCP connect (own timeout) -> SSH handshake (banner and key-exchange
timeouts) -> compare the server's host key with the feed's pins, and stop *before authenticating*
if it is not one of them -> authenticate (auth timeout) -> open the SFTP channel (channel timeout;
every later request has an I/O timeout) -> check the remote directory -> remove temporary files that
earlier failed deliveries left -> upload to a temporary name with pipelined writes -> compare the
remote size with the local size -> rename over the final name.  Any failure removes the temporary
file when the connection still allows it, so the final name only ever holds a complete file.

Time: every phase's timeout, and each single wait on the server, is cut to the delivery's deadline when
it has one (:mod:`.budget`), and each attempt has a watchdog thread that closes the connection when a
wait is overdue, which ends the waits paramiko has no timeout for.  A wait that timed out ends the
attempt at once: nothing more is sent on that connection (a cleanup request would only wait again) and
the transport is closed without a goodbye, so a stalled server costs one I/O timeout per attempt.

Transient failures are retried by :func:`.retry.call_with_retries`; everything else raises the
specific :mod:`.errors` type at once.  paramiko is imported inside the functions, so code that
imports this package but never delivers (most of the pipeline's Lambdas) does not load it.
"""

from __future__ import annotations

import errno
import logging
import math
import socket
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Protocol, TypeGuard, cast

from programs_bridge.delivery.budget import Budget, Clock, seconds
from programs_bridge.delivery.credentials import SftpCredentials
from programs_bridge.delivery.errors import (
    PHASES,
    AuthenticationFailed,
    ConnectionFailed,
    DeliveryConfigError,
    DeliveryError,
    RemoteDirectoryMissing,
    RemoteOperationFailed,
    RemotePermissionDenied,
    RenameRefused,
    TimeBudgetExceeded,
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
from programs_bridge.delivery.paramiko_log import keep_paramiko_to_reasons
from programs_bridge.delivery.remote_names import is_temp_of, remote_path, temp_name
from programs_bridge.delivery.retry import RetryPolicy, call_with_retries

if TYPE_CHECKING:
    from paramiko import Channel, PKey, SFTPClient, Transport
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
    """Seconds allowed for each phase of one attempt; none of them is ever unbounded.

    Each must be a positive, finite number of seconds (``ValueError`` otherwise, naming it).  Under a time
    budget each is also cut to the time left.  A feed's configuration sets them as ``[sftp.timeouts]``;
    :meth:`from_mapping` builds them from such a table, and the class works as a pydantic field as is
    (unknown names are refused there too).
    """

    #: Tells pydantic, when this class is a model's field, to refuse unknown names (a misspelt timeout).
    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    #: Resolving the host name and opening the TCP connection.
    connect: float = 10.0
    #: The server's SSH banner (the first line it sends).
    banner: float = 15.0
    #: The whole SSH handshake (banner and key exchange).
    handshake: float = 30.0
    #: Each authentication method (key, then password).
    auth: float = 30.0
    #: Opening the SFTP channel and its version exchange.
    channel: float = 15.0
    #: Any single wait on the server once the SFTP session is open (a write acknowledgement, a stat).
    io: float = 60.0

    def __post_init__(self) -> None:
        problems = [problem for name in TIMEOUT_NAMES if (problem := _timeout_problem(name, getattr(self, name)))]
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> Timeouts:
        """Build from plain numbers, e.g. ``{"connect": 5, "io": 30}``; the others keep their defaults.

        Raises ``ValueError`` naming every unknown name and every value that is not a positive number.
        """
        problems: list[str] = []
        for name, value in values.items():
            if name not in TIMEOUT_NAMES:
                problems.append(f"unknown timeout {name!r} (known: {', '.join(TIMEOUT_NAMES)})")
            elif problem := _timeout_problem(name, value):
                problems.append(problem)
        if problems:
            raise ValueError("; ".join(problems))
        return cls(**{name: float(cast(float, value)) for name, value in values.items()})


#: The settings of :class:`Timeouts`, in the order of an attempt.
TIMEOUT_NAMES = ("connect", "banner", "handshake", "auth", "channel", "io")


def _timeout_problem(name: str, value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
        return f"timeout {name!r} must be a positive number of seconds, not {value!r}"
    return None


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
    deadline: float | None = None,
    clock: Clock = time.monotonic,
) -> DeliveryReceipt:
    """Deliver ``local_file`` to ``target`` as ``target.remote_name``; raise a :class:`DeliveryError`.

    ``deadline`` is a reading of ``clock`` (by default :func:`time.monotonic`) by which the delivery must be
    over: it then returns or raises by ``deadline +`` :data:`.budget.DEADLINE_SLACK`, and running out of
    time raises :class:`TimeBudgetExceeded`.  ``None`` (the default) sets no deadline.  ``clock`` must
    advance in real time when a deadline is set (the attempt's watchdog waits in real time).

    Configuration problems (no pin for the host, an unreadable key) are raised before connecting.
    """
    budget = Budget(deadline, clock)
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
    where = f"[{target.host}]:{target.port}"
    login = _Login(target, pins, credentials, key)
    keep_paramiko_to_reasons()

    def attempt(number: int) -> DeliveryReceipt:
        log.info("delivery attempt", extra={"attempt": number, "host": target.host, "port": target.port})
        timekeeper = _Attempt(budget, target.timeouts, where, number, size)
        removed = _deliver_once(timekeeper, login, local_file, progress)
        return DeliveryReceipt(final, size, number, removed)

    receipt = call_with_retries(attempt, retry or RetryPolicy(), sleep=sleep, budget=budget, where=where)
    log.info("delivered", extra={"bytes": size, "attempts": receipt.attempts, "host": target.host})
    return receipt


#: A wait that ends this close to the deadline (or after it) ran out of budget rather than of its own limit.
_OVERDUE = 0.05


class _Watchdog:
    """Closes the connection when the current wait is overdue: the bound on what no timeout covers.

    paramiko has waits without a timeout (a channel request's reply, writing to a full TCP buffer); closing
    the transport ends them all at once.  One daemon thread per attempt, stopped when the attempt ends.
    """

    def __init__(self, clock: Clock, on_fire: Callable[[], None]) -> None:
        self._clock = clock
        self._on_fire = on_fire
        self._wake = threading.Condition()
        self._alarm = math.inf
        self._stopped = False
        self.fired = False
        self._thread = threading.Thread(target=self._run, name="sftp-watchdog", daemon=True)
        self._thread.start()

    def arm(self, at: float) -> None:
        with self._wake:
            earlier = at < self._alarm
            self._alarm = at
            if earlier:  # a later alarm is picked up when the current one comes due
                self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(2.0)

    def _run(self) -> None:
        with self._wake:
            while not self._stopped:
                now = self._clock()
                if now >= self._alarm:
                    self.fired = True
                    break
                self._wake.wait(min(self._alarm - now, 1.0))
        if self.fired:
            self._on_fire()


class _Attempt:
    """One attempt's timekeeping: its phase, timeouts cut to the budget, the watchdog, and whether the
    connection may still carry a request (never after a wait on it timed out or failed)."""

    def __init__(self, budget: Budget, timeouts: Timeouts, where: str, number: int, size: int) -> None:
        self.budget = budget
        self.timeouts = timeouts
        self.where = where
        self.number = number
        self.size = size
        self.acknowledged = 0
        self.phase = "connect"
        self.limit = timeouts.connect
        self.sock: socket.socket | None = None
        self.transport: Transport | None = None
        self.channel: Channel | None = None
        #: A wait timed out or the connection failed: the channel's state is unknown, send nothing more.
        self.broken = False
        self._watchdog = _Watchdog(budget.clock, self._cut)

    def enter(self, phase: str, limit: float) -> float:
        """Begin ``phase``, whose own limit is ``limit`` s: the timeout to use, cut to the time left."""
        self.phase, self.limit = phase, limit
        if self.budget.remaining() <= 0:
            raise self.out_of_time()
        self._watchdog.arm(self.budget.alarm(limit))
        return self.budget.clip(limit)

    def wait(self, phase: str | None = None) -> None:
        """Before each SFTP request or wait: checks the deadline, and sets the clipped io timeout."""
        timeout = self.enter(phase or self.phase, self.timeouts.io)
        if self.channel is not None:
            self.channel.settimeout(timeout)

    @contextmanager
    def translating(self, action: str, missing: type[DeliveryError] = RemoteOperationFailed) -> Iterator[None]:
        """:func:`_translating`, and a failure that is not the server's answer marks the connection broken."""
        try:
            with _translating(action, missing):
                yield
        except DeliveryError as exc:
            if not _is_sftp_status(exc.__cause__):
                self.broken = True
            raise

    def usable(self) -> bool:
        """May a (cleanup) request still be sent?  Not on a broken, closed or out-of-time connection."""
        channel = self.channel
        return (
            not self.broken
            and self.transport is not None
            and self.transport.is_active()
            and channel is not None
            and not channel.closed
            and self.budget.remaining() > 0
        )

    def out_of_time(self) -> TimeBudgetExceeded:
        detail = ""
        if self.phase == "upload" and self.size:
            detail = f"the server had acknowledged {self.acknowledged:,} of {self.size:,} bytes"
        return TimeBudgetExceeded(self.where, self.phase, self.budget.allowed, attempts=self.number, detail=detail)

    def explain(self, exc: DeliveryError) -> DeliveryError:
        """The error to report for ``exc``: a connection failure at the deadline is the budget running out,
        and one the watchdog caused is a phase that overran its limit.  A refused login is never relabelled:
        ``_authenticate`` already turns a lost connection or an auth time-out into ConnectionFailed, so an
        AuthenticationFailed here is the server's answer, which no retry must repeat."""
        if not isinstance(exc, ConnectionFailed | RemoteOperationFailed):
            return exc
        if self.budget.remaining() <= _OVERDUE:
            return self.out_of_time()
        if self._watchdog.fired:
            return ConnectionFailed(
                f"{PHASES.get(self.phase, self.phase)} on {self.where}: no answer within {seconds(self.limit)}, "
                "so the connection was closed"
            )
        return exc

    def finish(self) -> None:
        self._watchdog.stop()
        self._cut()

    def _cut(self) -> None:
        """Close the connection without waiting for anything (safe from the watchdog's thread)."""
        self.broken = True
        if self.transport is not None:
            self.transport.close()
        elif self.sock is not None:
            self.sock.close()


@dataclass(frozen=True, slots=True)
class _Login:
    """What every connection of one delivery needs: where to, the pinned host keys, and who we are."""

    target: SftpTarget
    pins: list[PinnedKey]
    credentials: SftpCredentials
    key: PKey | None


def _deliver_once(attempt: _Attempt, login: _Login, local_file: Path, progress: Progress | None) -> int:
    """One connection's worth of delivery; returns how many stale temporary files it removed."""
    from paramiko import SSHException

    try:
        try:
            return _deliver_on_session(attempt, login, local_file, progress)
        finally:
            attempt.finish()
    except DeliveryError as exc:
        reported = attempt.explain(exc)
        if reported is exc:
            raise
        raise reported from exc
    except (OSError, EOFError, SSHException) as exc:
        # A paramiko call outside _translating met the connection the watchdog had just closed.
        raise attempt.explain(ConnectionFailed(f"connection to {attempt.where} lost ({exc})")) from exc


def _deliver_on_session(attempt: _Attempt, login: _Login, local_file: Path, progress: Progress | None) -> int:
    target = login.target
    final = remote_path(target.remote_dir, target.remote_name)
    with _session(login, attempt) as sftp:
        _require_directory(sftp, attempt, target.remote_dir)
        removed = _remove_stale_temps(sftp, attempt, target)
        if not target.use_temp_rename:
            _upload(sftp, attempt, local_file, final, progress)
            return removed
        temp = remote_path(target.remote_dir, temp_name(target.remote_name))
        _upload(sftp, attempt, local_file, temp, progress)
        try:
            with attempt.translating(f"renaming the upload to {final!r}"):
                _publish(sftp, temp, final, before_request=lambda: attempt.wait("publish"))
        except BaseException:
            _remove_quietly(sftp, attempt, temp)
            raise
        return removed


def _is_sftp_status(exc: BaseException | None) -> TypeGuard[OSError]:
    """paramiko reports an SFTP status reply as ``IOError`` with errno ENOENT, EACCES or none (Python
    turns the first two into FileNotFoundError and PermissionError); socket failures are other
    ``OSError`` subclasses or carry other errno values.  The one ambiguity, a bare "Socket is closed",
    is settled in :func:`_session`, which knows whether the connection is still up."""
    return (
        isinstance(exc, OSError)
        and not isinstance(exc, ConnectionError | TimeoutError)
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


def _resolve(host: str, port: int, timeout: float) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` within ``timeout``: a name lookup can hang far longer than any socket timeout, so it
    runs on a daemon thread (which the resolver's own timeouts end) and is waited for no longer than that."""
    try:
        return list(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST))
    except socket.gaierror:
        pass  # a name, not an address
    found: list[list[tuple[Any, ...]] | OSError] = []

    def lookup() -> None:
        try:
            found.append(list(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))
        except OSError as exc:
            found.append(exc)

    thread = threading.Thread(target=lookup, name="sftp-resolve", daemon=True)
    thread.start()
    thread.join(timeout)
    if not found:
        raise TimeoutError(f"looking up {host!r} took longer than {seconds(timeout)}")
    if isinstance(found[0], OSError):
        raise found[0]
    return found[0]


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection within ``timeout`` seconds in all: the name lookup, then each address in turn
    (``socket.create_connection`` would give every address, and the lookup, a full timeout each)."""
    end = time.monotonic() + timeout
    last: OSError | None = None
    for family, kind, proto, _, address in _resolve(host, port, timeout):
        left = end - time.monotonic()
        if left <= 0:
            break
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return sock
    raise last or TimeoutError(f"no connection within {seconds(timeout)}")


@contextmanager
def _session(login: _Login, attempt: _Attempt) -> Iterator[SFTPClient]:
    """An authenticated SFTP session to a server whose host key is pinned; closed on exit, without waiting.

    Each phase's timeout is cut to the time budget, and the attempt's watchdog closes the connection if a
    phase overruns (the SFTP channel request, for one, has no timeout of its own in paramiko).
    """
    import paramiko

    target, pins = login.target, login.pins
    where = attempt.where
    timeouts = target.timeouts
    connect_timeout = attempt.enter("connect", timeouts.connect)
    with _translating(f"connecting to {where}"):
        sock = _connect(target.host, target.port, connect_timeout)
    attempt.sock = sock
    try:
        transport = paramiko.Transport(sock, disabled_algorithms=DISABLED_ALGORITHMS)
    except BaseException:
        sock.close()
        raise
    attempt.transport = transport
    try:
        handshake = attempt.enter("handshake", timeouts.handshake)
        transport.banner_timeout = attempt.budget.clip(timeouts.banner)
        transport.handshake_timeout = handshake
        offered = [alg for alg in transport.preferred_keys if "-cert-" not in alg]
        transport.get_security_options().key_types = preferred_algorithms(pins, offered)
        with _translating(f"SSH handshake with {where}"):
            transport.start_client(timeout=handshake)
            if not (transport.is_active() and transport.initial_kex_done):
                # start_client returns quietly when its timeout expires mid-negotiation.
                raise ConnectionFailed(f"SSH handshake with {where}: no answer within {seconds(handshake)}")
            server_key = transport.get_remote_server_key()
        check_offered_key(pins, target.host, target.port, server_key.get_name(), server_key.asbytes())
        _authenticate(transport, login.credentials, login.key, attempt)
        opening = attempt.enter("channel", timeouts.channel)
        with _translating(f"opening the SFTP session on {where}"):
            channel = transport.open_session(timeout=opening)
            channel.settimeout(opening)  # the subsystem request's reply waits on the watchdog alone
            channel.invoke_subsystem("sftp")
            client = paramiko.SFTPClient(channel)
        attempt.channel = channel
        try:
            yield client
        except RemoteOperationFailed as exc:
            # A request that failed because the connection died is transient, whatever it looked like.
            if transport.is_active() and not channel.closed:
                raise
            raise ConnectionFailed(f"connection to {where} lost: {exc}") from exc
    finally:
        # Not client.close(): closing the channel politely sends a message and may wait on a dead server.
        attempt.broken = True
        transport.close()


def _authenticate(transport: Transport, credentials: SftpCredentials, key: PKey | None, attempt: _Attempt) -> None:
    """Try the key, then the password (if the secret has them); fail with :class:`AuthenticationFailed`.

    A method that times out, or a connection lost meanwhile, is a :class:`ConnectionFailed` (retried), not
    a refusal.
    """
    from paramiko import BadAuthenticationType

    where = attempt.where
    user = credentials.username
    password = credentials.password
    methods: list[tuple[str, Callable[[], object]]] = []
    if key is not None:
        methods.append((f"{key.get_name()} key", lambda: transport.auth_publickey(user, key)))
    if password is not None:
        methods.append(("password", lambda: transport.auth_password(user, password.get_secret_value(), fallback=False)))
    accepted = ""
    for _name, method in methods:
        transport.auth_timeout = attempt.enter("auth", attempt.timeouts.auth)
        try:
            with _translating(f"authenticating to {where}"):
                method()
        except AuthenticationFailed as exc:
            cause = exc.__cause__
            if isinstance(cause, BadAuthenticationType):
                accepted = f" (it accepts: {', '.join(cause.allowed_types)})"
            if not transport.is_active():
                raise ConnectionFailed(f"authenticating to {where}: the connection was lost") from exc
            if str(cause) == "Authentication timeout.":
                raise ConnectionFailed(
                    f"authenticating to {where}: no answer within {seconds(transport.auth_timeout)}"
                ) from exc
        if transport.is_authenticated():
            return
    tried = " and ".join(name for name, _ in methods)
    raise AuthenticationFailed(f"{where} refused the feed's {tried}{accepted}")


def _require_directory(sftp: SFTPClient, attempt: _Attempt, remote_dir: str) -> None:
    attempt.wait("directory")
    with attempt.translating(f"checking remote directory {remote_dir!r}", missing=RemoteDirectoryMissing):
        attributes = sftp.stat(remote_dir)
    if attributes.st_mode is not None and not stat.S_ISDIR(attributes.st_mode):
        raise RemoteDirectoryMissing(f"remote path {remote_dir!r} is not a directory")


def _remove_stale_temps(sftp: SFTPClient, attempt: _Attempt, target: SftpTarget) -> int:
    """Remove temporary uploads an interrupted delivery of this feed left behind.

    Deliveries of one feed never overlap (the pipeline runs them one at a time), so every such file is
    garbage.  A drop directory that may not be listed just skips the cleanup.
    """
    attempt.wait("cleanup")
    with attempt.translating(f"listing {target.remote_dir!r}"):
        try:
            names = sftp.listdir(target.remote_dir)
        except OSError as exc:
            if _is_sftp_status(exc) and exc.errno == errno.EACCES:
                log.warning("cannot list the remote directory; stale temporary files not cleaned")
                return 0
            raise
    stale = [name for name in names if is_temp_of(name, target.remote_name)]
    for name in stale:
        attempt.wait()
        with attempt.translating(f"removing stale temporary file {name!r}"):
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


def _pipelined_write(
    sftp: SFTPClient, attempt: _Attempt, handle: bytes, source: BinaryIO, progress: Progress | None
) -> None:
    """Send writes back to back, keeping up to :data:`IN_FLIGHT_BYTES` unacknowledged.

    Acknowledgements are read oldest first; an error status raises at once (paramiko's own pipelined
    writes ignore them).  Before every write and every wait for an acknowledgement the deadline is checked
    and the io timeout cut to it, so a server that answers just slowly enough never outlasts the budget.
    """
    from paramiko.sftp import CMD_WRITE, int64

    wire = cast(_SftpWire, sftp)
    attempt.wait("upload")
    request_size = _write_size(sftp)
    window = max(1, IN_FLIGHT_BYTES // request_size)
    in_flight: deque[tuple[int, int]] = deque()
    offset = 0

    def acknowledge_oldest() -> None:
        number, length = in_flight.popleft()
        attempt.wait()
        wire._read_response(number)
        attempt.acknowledged += length
        if progress is not None:
            progress(attempt.acknowledged, attempt.size)

    while chunk := source.read(request_size):
        attempt.wait()  # sending waits too, when the channel's window is full
        in_flight.append((wire._async_request(type(None), CMD_WRITE, handle, int64(offset), chunk), len(chunk)))
        offset += len(chunk)
        if len(in_flight) >= window:
            acknowledge_oldest()
    while in_flight:
        acknowledge_oldest()


def _open_for_writing(sftp: SFTPClient, path: str) -> bytes:
    """Create or truncate ``path``; its SFTP handle.  (Not ``sftp.open``: that file object closes itself
    when garbage-collected, sending a request on whatever state the connection is in, from any thread.)"""
    from paramiko.sftp import CMD_HANDLE, CMD_OPEN, SFTP_FLAG_CREATE, SFTP_FLAG_TRUNC, SFTP_FLAG_WRITE, SFTPError
    from paramiko.sftp_attr import SFTPAttributes

    kind, reply = cast(_SftpWire, sftp)._request(
        CMD_OPEN, path, SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_TRUNC, SFTPAttributes()
    )
    if kind != CMD_HANDLE:
        raise SFTPError("Expected handle")
    return reply.get_binary()


def _close_handle(sftp: SFTPClient, handle: bytes) -> None:
    from paramiko.sftp import CMD_CLOSE

    cast(_SftpWire, sftp)._request(CMD_CLOSE, handle)


def _upload(sftp: SFTPClient, attempt: _Attempt, local_file: Path, path: str, progress: Progress | None) -> None:
    """Write the file to ``path`` and check the server holds exactly ``attempt.size`` bytes there.

    Once the remote file is opened (and so truncated), a failure closes and removes it if the connection
    still allows (with the temporary name off, that is the final name, and no file beats half a file).
    After a timeout or a lost connection nothing more is sent: the next delivery removes the file.
    """
    attempt.wait("upload")
    with attempt.translating(f"creating {path!r}"):
        handle = _open_for_writing(sftp, path)
    handle_open = True
    try:
        with attempt.translating(f"uploading to {path!r}"), local_file.open("rb") as source:
            _pipelined_write(sftp, attempt, handle, source, progress)
        attempt.wait("finish")
        with attempt.translating(f"finishing {path!r}"):
            _close_handle(sftp, handle)
        handle_open = False
        attempt.wait("verify")
        with attempt.translating(f"checking the size of {path!r}"):
            remote_size = sftp.stat(path).st_size
        if remote_size != attempt.size:
            raise TransferIncomplete(f"{path!r} has {remote_size} bytes on the server, expected {attempt.size}")
    except BaseException:
        if handle_open:
            _quietly(attempt, lambda: _close_handle(sftp, handle))
        _remove_quietly(sftp, attempt, path)
        raise


def _publish(sftp: SFTPClient, temp: str, final: str, before_request: Callable[[], None] = lambda: None) -> None:
    """Move the verified upload over the final name.

    ``posix-rename@openssh.com`` replaces the old file atomically.  Servers without the extension
    get SFTP v3's rename, which refuses to overwrite, so an existing file is removed first: the
    final name is briefly absent, never partial.  A server that denies renames raises
    :class:`RenameRefused` (and the caller removes the temporary file).  ``before_request`` runs before
    each request (the attempt's deadline check and io timeout).
    """
    action = f"renaming the upload to {final!r}"
    with _translating(action):
        try:
            before_request()
            sftp.posix_rename(temp, final)
            return
        except OSError as exc:
            if not _is_sftp_status(exc):
                raise
            if exc.errno == errno.EACCES:
                raise RenameRefused(f"{action}: the server refuses renames; turn the temporary name off") from exc
        # posix-rename is not offered: remove, then plain rename.
        try:
            before_request()
            sftp.remove(final)
        except OSError as exc:
            if not (_is_sftp_status(exc) and exc.errno == errno.ENOENT):
                raise
        try:
            before_request()
            sftp.rename(temp, final)
        except OSError as exc:
            if not _is_sftp_status(exc):
                raise
            raise RenameRefused(f"{action}: the server refused the rename ({exc})") from exc


def _quietly(attempt: _Attempt, request: Callable[[], object]) -> bool:
    """Run a best-effort cleanup request if the connection allows; False if it was skipped or failed."""
    from paramiko import SSHException

    if not attempt.usable():
        return False
    try:
        attempt.wait()
        request()
    except (OSError, EOFError, SSHException, DeliveryError) as exc:
        if not _is_sftp_status(exc):
            attempt.broken = True
        return False
    return True


def _remove_quietly(sftp: SFTPClient, attempt: _Attempt, path: str) -> None:
    """Best-effort cleanup after a failure; a dead connection just leaves it for the next attempt.

    Nothing is sent on a connection whose last wait timed out: the request would only wait again.
    """
    if not _quietly(attempt, lambda: sftp.remove(path)):
        log.info("could not remove the unfinished upload now; the next delivery will")
