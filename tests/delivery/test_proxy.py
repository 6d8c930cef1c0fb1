"""The switchable TCP proxy the stall tests put between the client and sshd: each rule does what it says.

The target here is a plain TCP server that records what it receives and sends on request, so each direction
can be checked on its own.  Waits are bounded (``wait_until``); the only timing asserted is a lower bound.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from support.proxy import BOTH, DOWNSTREAM, UPSTREAM, ProxyFactory, TcpProxy, tcp_proxy

__all__ = ["tcp_proxy"]  # the fixture, used below


class Target:
    """A TCP server on 127.0.0.1 that keeps every connection, records what arrives, and sends on request."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.received: list[bytearray] = []
        self.ended: list[bool] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(0.05)
            index = len(self.connections)
            self.connections.append(conn)
            self.received.append(bytearray())
            self.ended.append(False)
            thread = threading.Thread(target=self._read, args=(conn, index), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read(self, conn: socket.socket, index: int) -> None:
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                self.ended[index] = True
                return
            self.received[index].extend(data)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        for conn in self.connections:
            conn.close()
        self.listener.close()


@pytest.fixture
def target() -> Iterator[Target]:
    server = Target()
    yield server
    server.close()


@pytest.fixture
def proxy(target: Target) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", target.port) as running:
        yield running


def _connect(proxy: TcpProxy) -> socket.socket:
    client = socket.create_connection((proxy.host, proxy.port), timeout=5)
    client.settimeout(5)
    return client


def _receive(client: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = client.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _eventually(condition: object, timeout: float = 5.0) -> None:
    assert callable(condition)
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.01)


def test_passes_both_ways_and_counts(proxy: TcpProxy, target: Target) -> None:
    assert proxy.host == "127.0.0.1" and proxy.port not in (0, target.port)
    with _connect(proxy) as client:
        client.sendall(b"x" * 100_000)
        _eventually(lambda: target.received and len(target.received[0]) == 100_000)
        target.connections[0].sendall(b"hello")
        assert _receive(client, 5) == b"hello"
    stats = proxy.wait_until(lambda s: s.open == 0)
    assert (stats.connections, stats.bytes_up, stats.bytes_down, stats.cuts) == (1, 100_000, 5, 0)


def test_stall_after_bytes_forwards_exactly_that_many_then_holds_the_rest(proxy: TcpProxy, target: Target) -> None:
    proxy.stall(UPSTREAM, after_bytes=10)
    with _connect(proxy) as client:
        client.sendall(bytes(range(100)))
        proxy.wait_until(lambda s: s.bytes_up == 10)
        _eventually(lambda: target.received and bytes(target.received[0]) == bytes(range(10)))
        time.sleep(0.3)  # several ticks: nothing more leaks through
        assert bytes(target.received[0]) == bytes(range(10))
        assert proxy.stats().bytes_up == 10
        target.connections[0].sendall(b"down still flows")
        assert _receive(client, 16) == b"down still flows"
        proxy.pass_through()  # the stalled bytes resume
        _eventually(lambda: bytes(target.received[0]) == bytes(range(100)))


def test_stall_applies_to_new_connections_which_still_connect(proxy: TcpProxy, target: Target) -> None:
    proxy.stall(BOTH)
    with _connect(proxy) as client:
        client.sendall(b"anyone there?")
        _eventually(lambda: len(target.connections) == 1)
        target.connections[0].sendall(b"yes")
        client.settimeout(0.3)
        with pytest.raises(TimeoutError):
            client.recv(10)
    assert target.received[0] == b""


def test_a_stalled_connection_is_freed_when_the_client_goes_away(proxy: TcpProxy, target: Target) -> None:
    proxy.stall(BOTH)
    client = _connect(proxy)
    client.sendall(b"unread")
    proxy.wait_until(lambda s: s.open == 1)
    client.close()
    proxy.wait_until(lambda s: s.open == 0)
    _eventually(lambda: target.ended and target.ended[0])


def test_cut_after_bytes_forwards_exactly_that_many_then_closes_and_new_connections_pass(
    proxy: TcpProxy, target: Target
) -> None:
    proxy.cut(after_bytes=50, direction=UPSTREAM)
    with _connect(proxy) as client:
        client.sendall(b"a" * 100)
        proxy.wait_until(lambda s: s.cuts == 1)
        _eventually(lambda: target.ended and target.ended[0])
        assert bytes(target.received[0]) == b"a" * 50
        with contextlib.suppress(ConnectionResetError):
            assert client.recv(10) == b""
    with _connect(proxy) as again:  # one-shot: the next connection passes
        again.sendall(b"b" * 100)
        _eventually(lambda: len(target.received) == 2 and bytes(target.received[1]) == b"b" * 100)


def test_cut_now_closes_every_open_connection(proxy: TcpProxy, target: Target) -> None:
    with _connect(proxy) as first, _connect(proxy) as second:
        proxy.wait_until(lambda s: s.open == 2)
        proxy.cut()
        for client in (first, second):
            with contextlib.suppress(ConnectionResetError):
                assert client.recv(10) == b""
    assert proxy.stats().cuts == 1
    proxy.wait_until(lambda s: s.open == 0)


def test_refuse_then_listen_again_on_the_same_port(proxy: TcpProxy, target: Target) -> None:
    port = proxy.port
    proxy.refuse()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    proxy.pass_through()
    assert proxy.port == port
    with _connect(proxy) as client:
        client.sendall(b"back")
        _eventually(lambda: target.received and bytes(target.received[-1]) == b"back")


def test_drip_limits_the_rate(proxy: TcpProxy, target: Target) -> None:
    proxy.drip(1000, DOWNSTREAM)
    with _connect(proxy) as client:
        _eventually(lambda: len(target.connections) == 1)
        started = time.monotonic()
        target.connections[0].sendall(b"z" * 400)
        assert _receive(client, 400) == b"z" * 400
        # At most a 50-byte burst plus 1000 bytes/s: 400 bytes cannot arrive in under 0.35 s.
        assert time.monotonic() - started >= 0.3


def test_close_ends_every_thread_and_connection(target: Target) -> None:
    before = {t for t in threading.enumerate() if t.name.startswith("proxy-")}
    proxy = TcpProxy("127.0.0.1", target.port)
    client = _connect(proxy)
    proxy.wait_until(lambda s: s.open == 1)
    proxy.stall()
    proxy.close()
    with contextlib.suppress(ConnectionResetError):
        assert client.recv(10) == b""
    client.close()
    assert {t for t in threading.enumerate() if t.name.startswith("proxy-") and t.is_alive()} <= before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5)


def test_the_fixture_factory_closes_its_proxies(tcp_proxy: ProxyFactory, target: Target) -> None:
    proxy = tcp_proxy("127.0.0.1", target.port)
    with _connect(proxy) as client:
        client.sendall(b"via the fixture")
        _eventually(lambda: target.received and bytes(target.received[0]) == b"via the fixture")


@pytest.mark.parametrize(
    "switch",
    [
        lambda p: p.stall("sideways"),
        lambda p: p.stall(after_bytes=-1),
        lambda p: p.drip(0),
        lambda p: p.cut(after_bytes=-5),
    ],
)
def test_nonsense_is_refused(proxy: TcpProxy, switch: object) -> None:
    assert callable(switch)
    with pytest.raises(ValueError):
        switch(proxy)
