"""A real OpenSSH ``sshd`` on 127.0.0.1, SFTP only, for tests and benchmarks that need a true server.

Why a real sshd and not paramiko's server classes: the delivery code has to survive the server Illuminate
and districts actually run (OpenSSH's ``internal-sftp``), with its real algorithm negotiation, its
``posix-rename`` extension, its request denials and its way of dying.  This helper installs nothing:
``make test`` installs Debian's ``openssh-server`` (Makefile target ``system-deps``).  When ``sshd`` is
missing it raises :class:`SshdUnavailable` with that instruction instead of letting tests skip.

The server runs from its own configuration in a private temporary directory (host keys, authorised
keys, log, pid file); nothing under ``/etc/ssh`` is read or changed.  Each connection gets only
``internal-sftp`` (``ForceCommand``), started in :attr:`SshdServer.sftp_root`.

Users.  Not running as root, sshd can only log in the user who started it, so that user is used (key
authentication only: checking a password needs root).  Running as root (our CI and dev machines) the
helper logs in a dedicated system user, :data:`TEST_USER`, created idempotently with ``useradd``
(no home, ``/usr/sbin/nologin`` shell).  Its password is set to a fresh random value while a
password-enabled server runs and reset to ``*`` (no valid password) when it stops, so the account is
never password-reachable outside a test run.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from programs_bridge.local.moto_server import free_port

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
#: The local account the server logs in when the tests run as root.
TEST_USER = "pb-sftp-test"
#: sshd's compiled-in privilege-separation directory; Debian's init scripts create it at boot.
PRIVSEP_DIR = Path("/run/sshd")
HOST = "127.0.0.1"

KEY_TYPES: dict[str, list[str]] = {
    "ed25519": ["-t", "ed25519"],
    "ecdsa": ["-t", "ecdsa", "-b", "256"],
    "rsa": ["-t", "rsa", "-b", "3072"],
}


class SshdUnavailable(RuntimeError):
    """OpenSSH's server is not installed or cannot start here; the message says how to fix it."""


@dataclass(frozen=True)
class KeyPair:
    """An SSH key pair made by ``ssh-keygen``: file on disk plus the texts tests hand to the code."""

    private_path: Path
    public_line: str
    passphrase: str = ""

    @property
    def private_text(self) -> str:
        return self.private_path.read_text()


def generate_key(directory: Path, kind: str, *, passphrase: str = "", pem: bool = False) -> KeyPair:
    """Make a key with OpenSSH's own tool (OpenSSH format, or legacy PEM when ``pem``)."""
    path = directory / f"id_{kind}{'_pem' if pem else ''}_{secrets.token_hex(3)}"
    command = [SSH_KEYGEN, "-q", *KEY_TYPES[kind], "-N", passphrase, "-C", f"test-{kind}", "-f", str(path)]
    if pem:
        command[2:2] = ["-m", "PEM"]
    subprocess.run(command, check=True, capture_output=True)
    public = path.with_name(path.name + ".pub").read_text().strip()
    return KeyPair(path, public, passphrase)


@dataclass(frozen=True)
class SshdOptions:
    """What kind of server to run."""

    #: Allow password authentication (needs root; see the module docstring).
    password_auth: bool = False
    #: sftp-server requests to refuse (``-P``), named as ``sftp-server -Q requests`` lists them,
    #: e.g. ``("rename", "posix-rename")``.
    denied_requests: tuple[str, ...] = ()
    #: Host key types the server offers, in order.
    host_key_types: tuple[str, ...] = ("ed25519",)


def _login_user(password_auth: bool) -> tuple[str, bool]:
    """Return (user name, is dedicated test user), creating :data:`TEST_USER` when we are root."""
    if os.geteuid() != 0:
        if password_auth:
            raise SshdUnavailable(
                "password authentication tests need root: sshd can only check passwords when run as root "
                f"(run the tests as root, as CI does, so the helper can create the local user {TEST_USER!r})"
            )
        return pwd.getpwuid(os.geteuid()).pw_name, False
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(
            [
                *("useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"),
                *("--shell", "/usr/sbin/nologin", TEST_USER),
            ],
            check=True,
            capture_output=True,
        )
    # A leading "!" marks the account locked and sshd (UsePAM no) then refuses even keys; "*" is
    # "no valid password" without being locked.
    _set_password(TEST_USER, None)
    return TEST_USER, True


def _set_password(user: str, password: str | None) -> None:
    if password is None:
        subprocess.run(["usermod", "-p", "*", user], check=True, capture_output=True)
    else:
        subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True, capture_output=True)


def _descendants(root: int) -> list[int]:
    """Every live process below ``root``: sshd's per-connection children start their own sessions,
    so killing the listener's process group would leave live connections behind."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces; the parent pid follows the state.
        after = text[text.rindex(")") + 2 :].split()
        parents[int(stat.parent.name)] = int(after[1])
    found: list[int] = []
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


@dataclass
class SshdServer:
    """One sshd instance; :meth:`start`, :meth:`kill` and :meth:`restart` keep the same port and keys."""

    state_dir: Path
    sftp_root: Path
    user: str
    options: SshdOptions
    port: int = field(default_factory=free_port)
    password: str | None = None
    host_keys: list[KeyPair] = field(default_factory=list)
    _process: subprocess.Popen[bytes] | None = None

    host: ClassVar[str] = HOST

    @property
    def log_path(self) -> Path:
        return self.state_dir / "sshd.log"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "sshd_config"

    @property
    def authorized_keys(self) -> Path:
        return self.state_dir / "authorized_keys"

    def known_hosts_lines(self) -> list[str]:
        """The server's host keys as known_hosts lines (``[127.0.0.1]:port type base64``)."""
        return [f"[{HOST}]:{self.port} {' '.join(k.public_line.split()[:2])}" for k in self.host_keys]

    def authorize(self, public_line: str) -> None:
        """Let a client key in (sshd re-reads the file on every attempt, so no restart is needed)."""
        with self.authorized_keys.open("a") as keys:
            keys.write(public_line + "\n")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def write_config(self) -> None:
        sftp = f"internal-sftp -d {self.sftp_root}"
        if self.options.denied_requests:
            sftp += " -P " + ",".join(self.options.denied_requests)
        lines = [
            f"ListenAddress {HOST}",
            f"Port {self.port}",
            *(f"HostKey {key.private_path}" for key in self.host_keys),
            f"PidFile {self.state_dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            # The state directory lives under /tmp (world-writable), which StrictModes rejects.
            "StrictModes no",
            "UsePAM no",
            "PubkeyAuthentication yes",
            f"PasswordAuthentication {'yes' if self.options.password_auth else 'no'}",
            "KbdInteractiveAuthentication no",
            "PermitEmptyPasswords no",
            "PermitRootLogin prohibit-password",
            f"AllowUsers {self.user}",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "PermitTTY no",
            "MaxAuthTries 6",
            "MaxStartups 100:30:200",
            # DEBUG1 logs each "userauth-request" (how tests prove no credential was sent); DEBUG2 adds the
            # signature algorithm of each accepted key ("authenticated 1 pkalg rsa-sha2-512").
            "LogLevel DEBUG2",
            f"Subsystem sftp {sftp}",
            f"ForceCommand {sftp}",
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 15.0) -> None:
        """Start sshd and wait until it listens (it logs ``Server listening on ...``)."""
        if os.geteuid() == 0:  # only a root sshd chroots its unprivileged half there
            PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        check = subprocess.run([str(SSHD), "-t", "-f", str(self.config_path)], capture_output=True, text=True)
        if check.returncode != 0:
            raise SshdUnavailable(f"sshd rejected its test configuration: {check.stderr.strip()}")
        offset = len(self.log_text())
        self._process = subprocess.Popen(
            [str(SSHD), "-D", "-f", str(self.config_path), "-E", str(self.log_path)],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        ready = f"Server listening on {HOST} port {self.port}"
        deadline = time.monotonic() + timeout
        while ready not in self.log_text()[offset:]:
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise SshdUnavailable(f"sshd did not start; its log says:\n{self.log_text()[offset:]}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the listener and every live connection: a server crash, as a client sees it."""
        if self._process is None:
            return
        for pid in [*_descendants(self._process.pid), self._process.pid]:
            with suppress(ProcessLookupError):  # already gone
                os.kill(pid, signal.SIGKILL)
        self._process.wait()
        self._process = None

    def freeze_sessions(self) -> None:
        """SIGSTOP every open connection (the listener keeps accepting): a server that hangs mid-transfer.

        :meth:`kill` (and so the end of :func:`running_sshd`) still removes the frozen processes.
        """
        if self._process is not None:
            for pid in _descendants(self._process.pid):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)

    def restart(self) -> None:
        self.kill()
        self.start()

    def userauth_requests(self) -> int:
        """How many authentication requests (any method, including ``none``) reached the server."""
        return len(re.findall(r"userauth-request for user", self.log_text()))


def _require_sshd() -> None:
    if not SSHD.is_file() or not os.access(SSHD, os.X_OK):
        raise SshdUnavailable(
            f"{SSHD} not found: the SFTP tests need OpenSSH's server. Run `make system-deps` (or "
            "`apt-get install openssh-server`) and try again; these tests are never skipped."
        )
    if shutil.which(SSH_KEYGEN) is None:
        raise SshdUnavailable("ssh-keygen not found: install Debian's openssh-client (`make system-deps`).")


@contextmanager
def running_sshd(options: SshdOptions | None = None) -> Iterator[SshdServer]:
    """Start a private sshd for the duration of the ``with`` block; remove all its files afterwards."""
    options = options or SshdOptions()
    _require_sshd()
    user, dedicated = _login_user(options.password_auth)
    state_dir = Path(tempfile.mkdtemp(prefix="pb-sshd-"))
    # sshd reads authorized_keys as the logging-in user: the directory must be traversable by it
    # (host private keys stay 0600, readable by root only).
    state_dir.chmod(0o711)
    sftp_root = Path(tempfile.mkdtemp(prefix="pb-sftp-root-"))
    owner = pwd.getpwnam(user)
    os.chown(sftp_root, owner.pw_uid, owner.pw_gid)
    server = SshdServer(state_dir=state_dir, sftp_root=sftp_root, user=user, options=options)
    try:
        server.host_keys.extend(generate_key(state_dir, kind) for kind in options.host_key_types)
        if options.password_auth:
            server.password = secrets.token_urlsafe(18)
            _set_password(user, server.password)
        server.authorized_keys.touch(mode=0o644)
        server.write_config()
        server.start()
        yield server
    finally:
        server.kill()
        if dedicated and options.password_auth:
            _set_password(user, None)
        shutil.rmtree(state_dir, ignore_errors=True)
        shutil.rmtree(sftp_root, ignore_errors=True)
