"""``programs-bridge ledger ...``: what a feed's ledger knows, and teaching it what Illuminate holds.

Each sub-command lives in its own module and registers itself through ``add_ledger_command``; this module
only assembles the group.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import Any

from programs_bridge.cli.main import CommandFailed, UsageError
from programs_bridge.ledger.model import check_feed

#: Modules that contribute ``ledger`` sub-commands, in the order ``--help`` lists them.
LEDGER_COMMAND_MODULES: tuple[str, ...] = (
    "programs_bridge.cli.seed",
    "programs_bridge.cli.resolve",
    "programs_bridge.cli.reconcile",
    "programs_bridge.cli.unseed",
)


def add_ledger_arguments(parser: Any) -> None:
    """``--table`` and ``--feed``, as every command that reads or writes a feed's ledger takes them.  No feed
    is assumed: a default would plan a district's export against another feed's (or no) ledger."""
    parser.add_argument("--table", required=True, help="the ledger's DynamoDB table")
    parser.add_argument("--feed", required=True, help="the feed (district or data feed) name, as in incoming/<feed>/")


def feed_name(text: str) -> str:
    """``--feed`` checked before any work (the ledger's own rule), so a bad name is a usage error, exit 64."""
    try:
        return check_feed(text)
    except ValueError as exc:
        raise UsageError(f"--feed: {exc}") from None


#: Exit code when the ledger's table cannot be read or written (no table, no credentials, throttled ...).
EXIT_LEDGER = 3


@contextmanager
def reaching_ledger(table: str, doing: str) -> Iterator[None]:
    """The ledger's and AWS's errors as one line and exit code 3.  Our ``LedgerError`` carries counts and run
    ids only and is quoted; of an AWS error only its code or class (``ResourceNotFoundException``), since an
    SDK message may quote a key."""
    from botocore.exceptions import BotoCoreError, ClientError

    from programs_bridge.ledger.store import LedgerError

    try:
        yield
    except LedgerError as exc:
        raise CommandFailed(f"cannot {doing} the ledger table {table!r}: {exc}", EXIT_LEDGER) from None
    except (ClientError, BotoCoreError, OSError) as exc:
        code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
        name = code or type(exc).__name__
        detail = f"{_MEANING[name]} ({name})" if name in _MEANING else name
        raise CommandFailed(f"cannot {doing} the ledger table {table!r}: {detail}", EXIT_LEDGER) from None


#: What the AWS errors a person meets first mean, in their terms; the code stays beside it, to search for.
_MEANING = {
    "NoRegionError": "no AWS region is set: set AWS_REGION to the stack's region",
    "NoCredentialsError": "no AWS credentials: sign in (aws sso login, or AWS_PROFILE) first",
    "ResourceNotFoundException": "no such table in this account and region: the stack's LedgerTable output names it",
    "AccessDeniedException": "these credentials may not use the table",
    "EndpointConnectionError": "AWS could not be reached (network, or AWS_ENDPOINT_URL)",
    # What DynamoDB answers when the key names are not the table's.
    "ValidationException": "is it a programs-bridge ledger table? Its key is two strings, pk and sk: template.yaml",
}


@contextmanager
def report_after(path: Path | None, done: str) -> Iterator[None]:
    """Writing ``path`` after the ledger's part is done: a failure says what was ``done`` (the ledger changed,
    or was read) and leaves no report cut short to be taken for a whole one."""
    try:
        yield
    except OSError as exc:
        if path is not None:
            path.unlink(missing_ok=True)
        raise CommandFailed(f"{done}, but the report {path} could not be written: {exc.strerror or exc}") from None


def interrupted(change: str) -> CommandFailed:
    """Ctrl-C during a seed or an undo: exit 130, and what the half-done ``change`` means for the feed."""
    return CommandFailed(
        f"interrupted: {change} did not finish, and the feed's exports are held (needs_seed) until it does: run "
        "the same command again to finish it",
        130,
    )


def add_command(subparsers: Any) -> None:
    ledger = subparsers.add_parser("ledger", help="what a feed's ledger knows: seed it from Illuminate's own records")
    commands = ledger.add_subparsers(dest="ledger_command", metavar="COMMAND", required=True)
    for name in LEDGER_COMMAND_MODULES:
        import_module(name).add_ledger_command(commands)
