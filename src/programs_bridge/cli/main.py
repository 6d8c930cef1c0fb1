"""The ``programs-bridge`` command: argument parsing and wiring only.

Each sub-command lives in the module of its concept and registers itself through ``add_command``;
this module only assembles them and maps failures to the documented exit codes.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import import_module

from programs_bridge import __version__

#: Exit code for a usage or configuration error (BSD's EX_USAGE), as documented in the README.
EXIT_USAGE = 64

#: Modules that contribute sub-commands, in the order ``--help`` lists them.  Each has
#: ``add_command(subparsers)`` which adds a parser whose default ``handler`` returns the exit code.
COMMAND_MODULES: tuple[str, ...] = (
    "programs_bridge.cli.convert",
    "programs_bridge.cli.plan",
    "programs_bridge.cli.ledger",
    "programs_bridge.cli.deliver",
    "programs_bridge.cli.demo",
)


#: Exit code when the command could not finish its work and kept nothing (as for a rejected file).
EXIT_FAILED = 2


class UsageError(Exception):
    """A problem with how the command was called or configured: exit code 64, one line, no traceback."""


class CommandFailed(Exception):
    """The work could not be finished (a full disk, say): one line, and exit code 2 unless ``exit_code`` says
    otherwise (3: the ledger could not be reached)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="programs-bridge",
        description="Turn a SIS program export into Illuminate's programs.txt, safely.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        import_module(name).add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage; our contract says 64
        return EXIT_USAGE if exc.code not in (0, None) else 0
    handler: Handler = args.handler
    try:
        with _terminated_like_interrupted():
            return handler(args)
    except Terminated:
        print("programs-bridge: terminated", file=sys.stderr)
        return 143
    except UsageError as exc:
        print(f"programs-bridge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandFailed as exc:
        print(f"programs-bridge: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("programs-bridge: interrupted", file=sys.stderr)
        return 130


class Terminated(BaseException):
    """SIGTERM (``kill``, a service manager, a CI job's timeout) during a command: raised like Ctrl-C's
    KeyboardInterrupt, so every ``with`` on the way out runs and a half-written programs.txt, staged beside
    the destination, is removed instead of left there."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


@contextmanager
def _terminated_like_interrupted() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` while a command runs (main thread only: where signals are handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
