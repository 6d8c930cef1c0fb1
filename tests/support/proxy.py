"""A TCP proxy on 127.0.0.1 that tests switch at run time between passing, stalling, dripping, cutting and
refusing: the network failures a Lambda meets on its way to a district's SFTP server, on demand.

Only the standard library (and pytest, for the optional fixture).  It listens on 127.0.0.1 only, on an
ephemeral port, and connects only to the target it was given (a test sshd on 127.0.0.1); nothing reaches
the internet.

Usage::

    from support.proxy import TcpProxy

    with TcpProxy("127.0.0.1", sshd.port) as proxy:      # starts listening at once
        target = SftpTarget(host="127.0.0.1", port=proxy.port, known_hosts=...)
        proxy.stall(UPSTREAM, after_bytes=1_000_000)      # let ~1 MB through towards the server, then hang
        ...
    # leaving the block closes every connection and ends every thread

or, in a test module (the fixture closes every proxy it made at teardown)::

    from support.proxy import tcp_proxy  # noqa: F401  (re-exported as a fixture)

    def test_x(tcp_proxy: ProxyFactory, sshd: SshdServer) -> None:
        proxy = tcp_proxy(sshd.host, sshd.port)

Directions are named from the client's side: :data:`UPSTREAM` is client -> target (what the client sends),
:data:`DOWNSTREAM` is target -> client (the server's answers), :data:`BOTH` is either.

Traffic rules, for the connections already open *and* those accepted later (one rule at a time; each call
replaces the previous rule):

``pass_through()``
    Forward everything, and accept new connections again after :meth:`refuse` (the initial state).  A
    stalled connection resumes, with the bytes it held back.
``stall(direction=BOTH, after_bytes=0)``
    Forward ``after_bytes`` more bytes in ``direction`` (counted over all connections, from this call), then
    nothing more that way.  Connections stay open and new ones are accepted (TCP connects, then silence):
    a hung server.  Stalled bytes are left unread, so the sender's TCP window fills as it would with a
    real hung peer.  The other direction keeps flowing.
``drip(bytes_per_second, direction=DOWNSTREAM, after_bytes=0)``
    After ``after_bytes`` more bytes, forward at most ``bytes_per_second`` in ``direction`` (one shared
    budget for all connections): a server that answers, slowly.

Events:

``cut(after_bytes=0, direction=BOTH)``
    Close every open connection, now or once ``after_bytes`` more bytes have gone ``direction``; exactly
    that many are forwarded first.  One-shot: connections accepted afterwards follow the traffic rule, so a
    client's retry gets through (unless the rule or :meth:`refuse` says otherwise).  Independent of the
    traffic rule (a pending cut survives a rule change).
``refuse()``
    Stop listening: new connections are refused (``ECONNREFUSED``), open ones keep their rule.  Lasts until
    :meth:`pass_through`, which listens again on the same port.

Observing: :meth:`stats` (connections accepted and open, bytes each way, cuts made), and
:meth:`wait_until` to wait (bounded) for a condition on them, e.g. ``proxy.wait_until(lambda s: s.cuts)``.

Threads: one accept thread per proxy and two pump threads per connection, all daemons, all polling with a
short tick so they notice a rule change or :meth:`close` within ~0.05 s.  :meth:`close` (also ``__exit__``
and the fixture's teardown) closes every socket and joins every thread; a proxy nobody closes closes itself
after ``max_lifetime`` seconds (default 600).  A pump also ends when either side closes, even while stalled
(so a client that gives up frees the connection at once).
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import pytest

Direction = Literal["upstream", "downstream", "both"]
UPSTREAM: Direction = "upstream"
DOWNSTREAM: Direction = "downstream"
BOTH: Direction = "both"

HOST = "127.0.0.1"
#: How often threads look at the rule and the stop flag (seconds).
TICK = 0.05
#: Largest read per pump step.
CHUNK = 64 * 1024
#: Bound on joining a thread at close (they all notice the stop flag within a tick).
JOIN_TIMEOUT = 2.0
#: Connecting to the target (loopback: instant, or refused).
CONNECT_TIMEOUT = 5.0

_POLL_ERRORS = select.POLLERR | select.POLLHUP | select.POLLNVAL
_POLL_RDHUP = getattr(select, "POLLRDHUP", 0)  # Linux: the peer closed, even with data still unread


def _directions(direction: Direction) -> frozenset[str]:
    if direction not in (UPSTREAM, DOWNSTREAM, BOTH):
        raise ValueError(f"direction must be {UPSTREAM!r}, {DOWNSTREAM!r} or {BOTH!r}, not {direction!r}")
    return frozenset((UPSTREAM, DOWNSTREAM)) if direction == BOTH else frozenset((direction,))


def _non_negative(name: str, value: float) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, not {value!r}")


@dataclass(frozen=True)
class ProxyStats:
    """A snapshot of what went through the proxy since it started."""

    #: Connections accepted (and connected to the target).
    connections: int
    #: Of those, still open.
    open: int
    #: Bytes forwarded client -> target and target -> client.
    bytes_up: int
    bytes_down: int
    #: Cuts made (each closes every connection open at that moment).
    cuts: int


@dataclass
class _Rule:
    mode: Literal["pass", "stall", "drip"] = "pass"
    directions: frozenset[str] = frozenset()
    #: Bytes still to forward (in ``directions``) before the rule applies.
    grace: int = 0
    rate: float = 0.0
    tokens: float = 0.0
    refilled: float = field(default_factory=time.monotonic)


@dataclass
class _Cut:
    directions: frozenset[str]
    left: int
    #: Pumps holding a reservation against ``left`` (the cut waits for them to forward it).
    outstanding: int = 0


@dataclass
class _Lease:
    """Bytes a pump may read now, reserved against the rule's and the cut's allowances."""

    limit: int
    rule: _Rule | None = None
    rule_part: Literal["grace", "tokens", ""] = ""
    cut: _Cut | None = None


class _Connection:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self._lock = threading.Lock()
        self.closed = False
        self.pumps = 2  # running pump threads; the connection counts as open until both have settled

    def pump_done(self) -> bool:
        """One pump has finished (its bytes counted); True for the last one."""
        with self._lock:
            self.pumps -= 1
            return self.pumps == 0

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the other pump's poll
            sock.close()


class TcpProxy:
    """A switchable TCP proxy from ``127.0.0.1:<port>`` to ``target_host:target_port`` (see the module doc)."""

    def __init__(self, target_host: str, target_port: int, *, max_lifetime: float | None = 600.0) -> None:
        self.target = (target_host, target_port)
        self.host = HOST
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._rule = _Rule()
        self._cut: _Cut | None = None
        self._want_listening = True
        self._listening = False
        self._connections: set[_Connection] = set()
        self._threads: list[threading.Thread] = []
        self._accepted = self._bytes_up = self._bytes_down = self._cuts = 0
        self._expires = None if max_lifetime is None else time.monotonic() + max_lifetime
        self._listener: socket.socket | None = self._bind(0)
        self.port: int = self._listener.getsockname()[1]
        self._listening = True
        self._spawn(self._accept_loop, "proxy-accept")

    # --- the switches ------------------------------------------------------------------------------

    def pass_through(self) -> None:
        """Forward everything and listen (again); stalled connections resume."""
        with self._changed:
            self._rule = _Rule()
            self._want_listening = True
            self._changed.notify_all()
        self._await_listening(True)

    def stall(self, direction: Direction = BOTH, *, after_bytes: int = 0) -> None:
        """After ``after_bytes`` more bytes in ``direction``, forward nothing more that way."""
        _non_negative("after_bytes", after_bytes)
        with self._changed:
            self._rule = _Rule("stall", _directions(direction), after_bytes)
            self._changed.notify_all()

    def drip(self, bytes_per_second: float, direction: Direction = DOWNSTREAM, *, after_bytes: int = 0) -> None:
        """After ``after_bytes`` more bytes in ``direction``, forward at most ``bytes_per_second`` that way."""
        if bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be > 0 (use stall() for nothing at all)")
        _non_negative("after_bytes", after_bytes)
        with self._changed:
            self._rule = _Rule("drip", _directions(direction), after_bytes, rate=bytes_per_second)
            self._changed.notify_all()

    def cut(self, *, after_bytes: int = 0, direction: Direction = BOTH) -> None:
        """Close every open connection now, or once ``after_bytes`` more bytes have gone ``direction``."""
        _non_negative("after_bytes", after_bytes)
        if after_bytes == 0:
            self._cut_now()
            return
        with self._changed:
            self._cut = _Cut(_directions(direction), after_bytes)
            self._changed.notify_all()

    def refuse(self) -> None:
        """Stop listening until :meth:`pass_through`: connecting fails with ECONNREFUSED."""
        with self._changed:
            self._want_listening = False
            self._changed.notify_all()
        self._await_listening(False)

    # --- observing ---------------------------------------------------------------------------------

    def stats(self) -> ProxyStats:
        with self._lock:
            return ProxyStats(self._accepted, len(self._connections), self._bytes_up, self._bytes_down, self._cuts)

    def wait_until(self, condition: Callable[[ProxyStats], object], timeout: float = 10.0) -> ProxyStats:
        """Wait (at most ``timeout`` s) until ``condition(stats)`` is true; raise TimeoutError otherwise."""
        end = time.monotonic() + timeout
        while not condition(stats := self.stats()):
            if time.monotonic() >= end:
                raise TimeoutError(f"proxy condition not met within {timeout:g} s: {stats}")
            time.sleep(TICK / 2)
        return stats

    # --- lifetime ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the listener and every connection; join every thread (bounded).  Idempotent."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
            connections = list(self._connections)
        for connection in connections:
            connection.close()
        current = threading.current_thread()
        for thread in list(self._threads):
            if thread is not current:
                thread.join(JOIN_TIMEOUT)
        if self._listener is not None:  # the accept thread closes it; this covers a thread that never ran
            self._listener.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TcpProxy({HOST}:{self.port} -> {self.target[0]}:{self.target[1]}, rule={self._rule.mode})"

    # --- internals ---------------------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _bind(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((HOST, port))
            listener.listen(64)
        except BaseException:
            listener.close()
            raise
        listener.setblocking(False)
        return listener

    def _await_listening(self, state: bool) -> None:
        with self._changed:
            ok = self._changed.wait_for(lambda: self._listening == state or self._stop.is_set(), JOIN_TIMEOUT)
        if not ok:
            raise RuntimeError(f"proxy could not {'listen on' if state else 'stop listening on'} port {self.port}")

    def _accept_loop(self) -> None:
        try:
            while not self._stop.is_set():
                if self._expires is not None and time.monotonic() >= self._expires:
                    self._stop.set()
                    break
                with self._changed:
                    want = self._want_listening
                if want != (self._listener is not None):
                    self._switch_listener(want)
                if self._listener is None:
                    self._stop.wait(TICK)
                    continue
                ready, _, _ = select.select([self._listener], [], [], TICK)
                if ready:
                    self._accept_one(self._listener)
        finally:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            if self._stop.is_set():
                for connection in self._snapshot():
                    connection.close()

    def _switch_listener(self, listen: bool) -> None:
        if listen:
            try:
                self._listener = self._bind(self.port)
            except OSError:  # the port is (briefly) taken: try again next tick
                self._stop.wait(TICK)
                return
        elif self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._changed:
            self._listening = listen
            self._changed.notify_all()

    def _accept_one(self, listener: socket.socket) -> None:
        try:
            client, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        try:
            upstream = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT)
        except OSError:
            client.close()  # the target is down: the client sees the connection closed
            return
        for sock in (client, upstream):
            sock.settimeout(TICK)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = _Connection(client, upstream)
        with self._lock:
            self._connections.add(connection)
            self._accepted += 1
        self._spawn(self._pump, "proxy-up", connection, client, upstream, UPSTREAM)
        self._spawn(self._pump, "proxy-down", connection, upstream, client, DOWNSTREAM)

    def _snapshot(self) -> list[_Connection]:
        with self._lock:
            return list(self._connections)

    def _pump(self, connection: _Connection, source: socket.socket, sink: socket.socket, direction: str) -> None:
        poller = select.poll()
        try:
            poller.register(source, select.POLLIN | _POLL_RDHUP | _POLL_ERRORS)
            while not (self._stop.is_set() or connection.closed):
                events = poller.poll(TICK * 1000)
                if not events:
                    continue
                flags = events[0][1]
                if flags & select.POLLNVAL:
                    break
                lease = self._take(direction)
                if lease.limit == 0:  # stalled (or waiting for the drip): leave the bytes unread
                    if flags & (_POLL_RDHUP | select.POLLHUP | select.POLLERR):
                        break  # ... but a peer that went away ends the connection
                    self._stop.wait(TICK)
                    continue
                sent = 0
                try:
                    data = source.recv(lease.limit)
                    if data:
                        sent = self._send_all(connection, sink, data)
                finally:
                    self._settle(lease, direction, sent)
                if not data or sent < len(data):
                    break
        except (OSError, ValueError):
            pass  # a reset or a cut (ValueError: the socket was closed under us): the connection is over
        finally:
            connection.close()
            if connection.pump_done():  # only then are both directions' bytes in the stats
                with self._lock:
                    self._connections.discard(connection)

    def _send_all(self, connection: _Connection, sink: socket.socket, data: bytes) -> int:
        sent = 0
        view = memoryview(data)
        while sent < len(data):
            if self._stop.is_set() or connection.closed:
                break
            try:
                sent += sink.send(view[sent:])
            except TimeoutError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    continue
                break
        return sent

    def _take(self, direction: str) -> _Lease:
        """Reserve what ``direction`` may read now: the cut's and the rule's allowances, never more."""
        with self._lock:
            lease = _Lease(CHUNK)
            cut = self._cut
            if cut is not None and direction in cut.directions:
                lease.limit = min(lease.limit, cut.left)
            rule = self._rule
            part: Literal["grace", "tokens", ""] = ""
            if rule.mode != "pass" and direction in rule.directions:
                if rule.grace > 0:
                    lease.limit, part = min(lease.limit, rule.grace), "grace"
                elif rule.mode == "stall":
                    lease.limit = 0
                else:
                    now = time.monotonic()
                    burst = max(1.0, rule.rate * TICK)
                    rule.tokens = min(burst, rule.tokens + (now - rule.refilled) * rule.rate)
                    rule.refilled = now
                    lease.limit, part = min(lease.limit, int(rule.tokens)), "tokens"
            if lease.limit == 0:
                return _Lease(0)
            if cut is not None and direction in cut.directions:
                cut.left -= lease.limit
                cut.outstanding += 1
                lease.cut = cut
            if part == "grace":
                rule.grace -= lease.limit
            elif part == "tokens":
                rule.tokens -= lease.limit
            lease.rule, lease.rule_part = rule, part
            return lease

    def _settle(self, lease: _Lease, direction: str, used: int) -> None:
        """Give back what a lease did not use, count what it did, and make a cut that is due."""
        if lease.limit == 0:
            return
        unused = lease.limit - used
        fire = False
        with self._lock:
            if direction == UPSTREAM:
                self._bytes_up += used
            else:
                self._bytes_down += used
            rule = lease.rule
            if rule is not None and lease.rule_part == "grace":
                rule.grace += unused
            elif rule is not None and lease.rule_part == "tokens":
                rule.tokens += unused
            cut = lease.cut
            if cut is not None:
                cut.left += unused
                cut.outstanding -= 1
                fire = cut is self._cut and cut.left == 0 and cut.outstanding == 0
                if fire:
                    self._cut = None
        if fire:
            self._cut_now()

    def _cut_now(self) -> None:
        connections = self._snapshot()
        for connection in connections:
            connection.close()
        with self._lock:
            self._cuts += 1  # each connection leaves the count of open ones when its pumps have ended


ProxyFactory = Callable[[str, int], TcpProxy]


@contextlib.contextmanager
def proxies() -> Iterator[ProxyFactory]:
    """A factory whose proxies all close when the block ends (what the :func:`tcp_proxy` fixture wraps)."""
    made: list[TcpProxy] = []

    def make(target_host: str, target_port: int) -> TcpProxy:
        proxy = TcpProxy(target_host, target_port)
        made.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in made:
            proxy.close()


@pytest.fixture
def tcp_proxy() -> Iterator[ProxyFactory]:
    """``tcp_proxy(host, port)`` -> a :class:`TcpProxy` to that target, closed when the test ends."""
    with proxies() as make:
        yield make
