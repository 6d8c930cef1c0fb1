"""An SFTP server embedded in Python, for ``make demo``: no root, no OpenSSH, nothing on disk but the served files.

The demo has to run the real delivery adapter on a laptop where starting ``sshd`` is not possible (it needs
root to log anyone in but its own user, and is often not installed), so it talks to asyncssh's SFTP server
instead.  The tests keep using the real OpenSSH server (``tests/support/sshd.py``): this one is a stand-in
for a demo, not the reference the delivery code is held to.

What it offers is what a district's SFTP drop offers us, and no more:

* one user, authenticated by an ed25519 key generated here (and a password only if one is asked for);
* a fresh ed25519 host key per start, published as a ``known_hosts`` line so clients pin it exactly as
  they pin a real server's;
* the ``sftp`` subsystem only: shells, commands (scp included), terminals, agent, X11 and port
  forwarding are all refused;
* a virtual chroot at ``root``: every client path, ``..`` included, resolves inside it, and links the
  client creates cannot point out of it (asyncssh rewrites their targets);
* asyncssh's standard operations and OpenSSH extensions, ``posix-rename@openssh.com`` and
  ``limits@openssh.com`` among them, so pipelined writes and atomic renames work as on a real server.

asyncssh runs on its own event loop in a background thread, so callers stay synchronous.  It is a dev
dependency: it is imported only when a server starts, and nothing the Lambda imports imports this module.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
import threading
import warnings
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from programs_bridge.delivery.hostkeys import host_token

if TYPE_CHECKING:
    from asyncssh import SSHAcceptor, SSHKey, SSHServerConnection

HOST = "127.0.0.1"
#: The only host and client key type generated: small, fast, and accepted by every client we care about.
KEY_TYPE = "ssh-ed25519"


@dataclass(frozen=True)
class LocalSftp:
    """A running local SFTP server and everything a client needs to reach it with pinned trust."""

    host: str
    port: int
    #: The folder served as ``/``; the client cannot reach anything outside it.
    root: Path
    username: str
    #: The authorised client key (OpenSSH private key format, unencrypted), e.g. for the demo's secret.
    client_key_pem: str = field(repr=False)
    #: ``[127.0.0.1]:PORT ssh-ed25519 AAAA...``: the host key, for the client to pin.
    known_hosts_line: str
    #: Also accepted for :attr:`username` when the server was started with one.
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Access:
    """Who may log in: one user, with one public key blob and optionally a password."""

    username: str
    public_key: bytes
    password: str | None = field(default=None, repr=False)

    def allows_key(self, username: str, public_key: bytes) -> bool:
        return username == self.username and hmac.compare_digest(public_key, self.public_key)

    def allows_password(self, username: str, password: str) -> bool:
        return (
            self.password is not None
            and username == self.username
            and hmac.compare_digest(password.encode(), self.password.encode())
        )


def known_hosts_line(host: str, port: int, key_type: str, public_key: bytes) -> str:
    """The OpenSSH ``known_hosts`` line that pins ``public_key`` for ``host``:``port``."""
    return f"{host_token(host, port)} {key_type} {base64.b64encode(public_key).decode('ascii')}"


@contextmanager
def local_sftp(
    root: Path, username: str = "illuminate", *, password: str | None = None, startup_timeout: float = 30.0
) -> Iterator[LocalSftp]:
    """Serve ``root`` (an existing folder) over SFTP on a free 127.0.0.1 port until the block ends.

    On exit every client is disconnected, the listening socket is closed (the port is free again) and the
    server thread is joined.  Keys exist only in memory and in the returned :class:`LocalSftp`.
    """
    with warnings.catch_warnings():
        # asyncssh's DSA module, loaded with the package, uses names cryptography deprecates: a screenful of
        # warnings at every demo start about an algorithm this server never offers (KEY_TYPE is Ed25519).
        warnings.filterwarnings("ignore", message="DSA is deprecated", module="asyncssh")
        import asyncssh

    host_key = asyncssh.generate_private_key(KEY_TYPE)
    client_key = asyncssh.generate_private_key(KEY_TYPE)
    access = Access(username, client_key.public_data, password)
    chroot = root.resolve(strict=True)
    with _serving_in_thread(partial(_listen, access, chroot, host_key), startup_timeout) as port:
        yield LocalSftp(
            host=HOST,
            port=port,
            root=chroot,
            username=username,
            client_key_pem=client_key.export_private_key("openssh").decode("ascii"),
            known_hosts_line=known_hosts_line(HOST, port, KEY_TYPE, host_key.public_data),
            password=password,
        )


#: Starts a listener; every connection it accepts must be in the set while it is open.
Listen = Callable[[set["SSHServerConnection"]], Awaitable["SSHAcceptor"]]


async def _listen(access: Access, root: Path, host_key: SSHKey, connections: set[SSHServerConnection]) -> SSHAcceptor:
    """Start asyncssh on a free loopback port: SFTP only, one user, chrooted to ``root``."""
    import asyncssh

    class OneUserServer(asyncssh.SSHServer):
        """Authentication decided by :class:`Access` alone (no files, no system accounts)."""

        def connection_made(self, conn: SSHServerConnection) -> None:
            # asyncssh keeps no list of live connections, and stopping has to close them.
            self._conn = conn
            connections.add(conn)

        def connection_lost(self, exc: Exception | None) -> None:
            connections.discard(self._conn)

        def begin_auth(self, username: str) -> bool:
            return True  # authentication is always required, even for an unknown user

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: SSHKey) -> bool:
            return access.allows_key(username, key.public_data)

        def password_auth_supported(self) -> bool:
            return access.password is not None

        def validate_password(self, username: str, password: str) -> bool:
            return access.allows_password(username, password)

    def sftp_session(channel: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
        return asyncssh.SFTPServer(channel, chroot=os.fsencode(root))

    # No session_factory/process_factory: asyncssh then refuses shell and exec requests and every
    # subsystem but sftp; allow_scp=False keeps "scp" commands refused too.  Port forwarding is refused by
    # SSHServer's defaults.
    return await asyncssh.listen(
        HOST,
        0,
        server_factory=OneUserServer,
        server_host_keys=[host_key],
        sftp_factory=sftp_session,
        allow_scp=False,
        allow_pty=False,
        agent_forwarding=False,
        x11_forwarding=False,
    )


@dataclass(frozen=True)
class _Running:
    """What the caller's thread needs to stop the server thread: its loop and its stop signal."""

    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event
    port: int

    def stop_soon(self) -> None:
        """Ask the server thread to shut down; safe to call from any thread."""
        self.loop.call_soon_threadsafe(self.stop.set)


@contextmanager
def _serving_in_thread(listen: Listen, startup_timeout: float) -> Iterator[int]:
    """Run ``listen``'s server on a new event loop in a new thread; yield its port; stop it on exit."""
    started: Future[_Running] = Future()
    thread = threading.Thread(target=asyncio.run, args=(_serve(listen, started),), name="local-sftp", daemon=True)
    thread.start()
    try:
        running = started.result(timeout=startup_timeout)
    except TimeoutError:
        started.add_done_callback(_stop_late_start)  # a server that comes up after all must not linger
        raise
    thread.name = f"local-sftp-{running.port}"
    try:
        yield running.port
    finally:
        running.stop_soon()
        thread.join()


def _stop_late_start(started: Future[_Running]) -> None:
    if started.exception() is None:
        started.result().stop_soon()


async def _serve(listen: Listen, started: Future[_Running]) -> None:
    """The server thread's whole life: listen, report the port, wait for the stop signal, close everything."""
    stop = asyncio.Event()
    connections: set[SSHServerConnection] = set()
    try:
        acceptor = await listen(connections)
    except BaseException as exc:
        started.set_exception(exc)
        return
    started.set_result(_Running(asyncio.get_running_loop(), stop, acceptor.get_port()))
    await stop.wait()
    acceptor.close()
    for conn in list(connections):
        conn.close()
    for conn in list(connections):
        await conn.wait_closed()
    await acceptor.wait_closed()
