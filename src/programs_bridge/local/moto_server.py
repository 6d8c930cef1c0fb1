"""Run moto in server mode as a child process on 127.0.0.1.

boto3 reaches it through the standard ``AWS_ENDPOINT_URL`` variable, exactly as it would reach AWS, so the
code under test has no test-only branches.  A separate process (not moto's in-process patching, not its
thread server) keeps the GIL, memory figures and crash behaviour of the code under test honest.
"""

from __future__ import annotations

import os
import random
import socket
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from programs_bridge.local.child_server import serving

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto accepts any credentials
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass(frozen=True)
class MotoServer:
    """A running moto server: its endpoint, its process id (for CPU figures) and the environment that points
    boto3 at it."""

    endpoint: str
    pid: int

    @property
    def environ(self) -> dict[str, str]:
        return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def reset(self) -> None:
        """Forget every resource, so each test starts from an empty account."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310 - our loopback URL
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback URL we built
            pass


#: Where loopback servers listen when the kernel's ephemeral range leaves room below it.
_LISTEN_PORTS = range(10000, 32768)


def _ephemeral_range() -> range:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default
    return range(int(low), int(high) + 1)


def free_port() -> int:
    """A loopback port that is free now and that no outgoing connection will take before a server binds it.

    A port from ``bind(("127.0.0.1", 0))`` lies in the kernel's ephemeral range, the same range every client
    socket (boto3's to moto, paramiko's to sshd) draws its local port from; between "free" and the server's
    own bind, or while a test restarts a server on the same port, a client connection can take it.  Ports
    below the ephemeral range are never handed out that way, so only another listener can collide, and the
    check below sees that one.
    """
    ephemeral = _ephemeral_range()
    candidates = [port for port in _LISTEN_PORTS if port not in ephemeral]
    for port in random.sample(candidates, min(len(candidates), 64)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # no room outside the ephemeral range: take the kernel's pick
        sock.bind(("127.0.0.1", 0))
        chosen: int = sock.getsockname()[1]
        return chosen


@contextmanager
def moto_server(startup_timeout: float = 30.0) -> Iterator[MotoServer]:
    """Start ``moto.server`` on a free loopback port; stop it on exit."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, **FAKE_CREDENTIALS}
    env.pop("AWS_ENDPOINT_URL", None)

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):  # noqa: S310 - our loopback URL
                return True
        except OSError:
            return False

    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with serving(argv, env, answers, f"moto server on {endpoint}", startup_timeout) as process:
        yield MotoServer(endpoint, process.pid)
