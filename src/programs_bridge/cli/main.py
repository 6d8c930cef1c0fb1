"""The ``programs-bridge`` command: argument parsing and wiring only.

Each sub-command lives in the module of its concept and registers itself through ``add_command``;
this module only assembles them and maps failures to the documented exit codes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
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
        return handler(args)
    except UsageError as exc:
        print(f"programs-bridge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandFailed as exc:
        print(f"programs-bridge: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("programs-bridge: interrupted", file=sys.stderr)
        return 130
