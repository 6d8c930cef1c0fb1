"""Fixtures for the delivery tests: a real OpenSSH sshd per test, client keys made by ssh-keygen, and a
switchable TCP proxy in front of that sshd for the stall tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from programs_bridge.delivery import RetryPolicy, SftpCredentials, SftpTarget
from support.proxy import TcpProxy
from support.sshd import KeyPair, SshdOptions, SshdServer, generate_key, running_sshd

#: Fast retries, so the restart test does not wait seconds; the schedule itself is unit-tested.
QUICK_RETRY = RetryPolicy(attempts=4, base_delay=0.2, max_delay=1.0)

#: ``make_target(**overrides)``: an SftpTarget for the test's sshd.
MakeTarget = Callable[..., SftpTarget]


def files_on(server: SshdServer) -> list[str]:
    """The names in the server's SFTP root: what a district's server would show."""
    return sorted(path.name for path in server.sftp_root.iterdir())


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("client-keys")


@pytest.fixture(scope="session")
def client_key(keys_dir: Path) -> KeyPair:
    """An unencrypted ed25519 client key (session-wide: key generation is not what we test)."""
    return generate_key(keys_dir, "ed25519")


@pytest.fixture
def sshd_options() -> SshdOptions:
    """Override in a test module (or with ``@pytest.mark.parametrize``) to get another kind of server."""
    return SshdOptions()


@pytest.fixture
def sshd(sshd_options: SshdOptions, client_key: KeyPair) -> Iterator[SshdServer]:
    """A fresh sshd for one test, with :func:`client_key` authorised."""
    with running_sshd(sshd_options) as server:
        server.authorize(client_key.public_line)
        yield server


@pytest.fixture
def make_target(sshd: SshdServer) -> Callable[..., SftpTarget]:
    def make(**overrides: Any) -> SftpTarget:
        settings: dict[str, Any] = {
            "host": sshd.host,
            "port": sshd.port,
            "known_hosts": tuple(sshd.known_hosts_lines()),
            **overrides,
        }
        return SftpTarget(**settings)

    return make


@pytest.fixture
def proxy(sshd: SshdServer) -> Iterator[TcpProxy]:
    """A :class:`TcpProxy` in front of :func:`sshd` (passing everything until a test switches it)."""
    with TcpProxy(sshd.host, sshd.port) as running:
        yield running


@pytest.fixture
def make_proxied_target(sshd: SshdServer, proxy: TcpProxy) -> Callable[..., SftpTarget]:
    """Like :func:`make_target`, but through :func:`proxy`: the host key is pinned for the proxy's port."""

    def make(**overrides: Any) -> SftpTarget:
        pinned = [line.replace(f"]:{sshd.port} ", f"]:{proxy.port} ") for line in sshd.known_hosts_lines()]
        settings: dict[str, Any] = {"host": proxy.host, "port": proxy.port, "known_hosts": tuple(pinned), **overrides}
        return SftpTarget(**settings)

    return make


def key_credentials(server: SshdServer, key: KeyPair) -> SftpCredentials:
    secret: dict[str, str] = {"username": server.user, "private_key": key.private_text}
    if key.passphrase:
        secret["passphrase"] = key.passphrase
    return SftpCredentials.model_validate(secret)


@pytest.fixture
def programs_txt(tmp_path: Path) -> Path:
    """A synthetic file a little over 3 MiB, not a multiple of any write size, random so a misplaced
    chunk cannot go unnoticed."""
    path = tmp_path / "programs.txt"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 12345))
    return path
