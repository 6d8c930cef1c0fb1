"""``programs-bridge ledger resolve``: a clerk's decision about one held row (``ledger/resolutions.py``).

The id comes from the run report, the Markdown summary or the SNS notice, which print the exact line to run.
Exit codes: 0 recorded; 2 not recorded (no held row has that id, or ``same`` for a row matching several
open records); 3 the ledger could not be read or written; 64 usage.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from typing import Any

from programs_bridge.cli.ledger import add_ledger_arguments, feed_name, reaching_ledger
from programs_bridge.cli.main import UsageError
from programs_bridge.ledger.resolutions import MAX_NOTE, Choice, ResolutionError, looks_like_id, resolve

EXIT_NOT_RECORDED = 2

_WHAT_HAPPENS = {
    Choice.SAME: "sent under the open record's key from the next night on, so its exit lands there",
    Choice.NEW: "sent as a new record (a second enrolment) from the next night on",
    Choice.NEVER: "left out from the next night on, and counted as resolved, not held",
}


def _resolve(args: argparse.Namespace) -> int:
    from programs_bridge.ledger.store import LedgerStore  # boto3, for this command only

    feed = feed_name(args.feed)
    if len(args.note) > MAX_NOTE:
        raise UsageError(f"--note is at most {MAX_NOTE} characters: a sentence for whoever reads the ledger later")
    if not args.note.isprintable():  # a line break, an escape sequence: as a resolutions CSV refuses them
        raise UsageError("--note is one line of plain text: a sentence for whoever reads the ledger later")
    by = args.by if args.by is not None else _login()
    if not by.isprintable():
        raise UsageError("--by is one line of plain text: who decided")
    if not by.strip():
        raise UsageError("--by is empty: say who decided" if args.by is not None else "no login name: say who "
                         "decided with --by NAME")  # fmt: skip
    rid = args.id.strip().lower()
    if not looks_like_id(rid):
        raise UsageError("a resolution id is 8 letters and digits 2-7, as the run report prints it (e.g. k3vq7x2m)")
    try:
        with reaching_ledger(args.table, "reach"):
            store = LedgerStore(args.table)
            held = store.held(feed, rid)
            if held is None:
                # Not echoed: any 8 letters have an id's shape, a name too.  `plan` holds nothing: only a run does.
                print(f"programs-bridge: no row of feed {feed!r} was held with that id: copy the id from the run "
                      "report (a row is held by the pipeline's run; `programs-bridge plan` only shows what it would "
                      "hold)", file=sys.stderr)  # fmt: skip
                return EXIT_NOT_RECORDED
            at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            still_open = store.open_records(feed, held.matches) if args.choice == Choice.SAME else set()
            resolution = resolve(held, Choice(args.choice), open_in_ledger=still_open, note=args.note, by=by, at=at)
            earlier = next((r for r in store.resolutions(feed) if r.id == rid), None)
            store.put_resolution(feed, resolution)
    except ResolutionError as exc:
        print(f"programs-bridge: {exc}", file=sys.stderr)
        return EXIT_NOT_RECORDED
    print(
        f"resolved row {rid} (held on line {held.line} of run {held.run_id}) as {resolution.choice.value}: "
        f"{_WHAT_HAPPENS[resolution.choice]}",
        file=sys.stderr,
    )
    if earlier is not None and earlier.choice is resolution.choice:
        print(f"  the same decision as recorded {earlier.at}: its note and who decided are replaced", file=sys.stderr)
    elif earlier is not None:
        print(f"  this replaces the earlier decision {earlier.choice.value} (recorded {earlier.at})", file=sys.stderr)
    return 0


def _login() -> str:
    """The login name, or "" where there is none (a container user without a passwd entry)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # KeyError before Python 3.13, OSError since
        return ""


def add_ledger_command(commands: Any) -> None:
    resolve_ = commands.add_parser(
        "resolve",
        help="decide about one held row: the same record as the open one, a new one, or never send it",
        description="Record a decision about a row held as a duplicate risk; exit 0 recorded, 2 not recorded, "
        "3 ledger unreadable, 64 usage.",
    )
    resolve_.add_argument("id", help="the held row's resolution id, from the run report")
    resolve_.add_argument("--as", dest="choice", required=True, choices=[c.value for c in Choice], type=str.lower,
                          help="same: the open record it matched; new: a genuine second enrolment; never: leave it "
                          "out")  # fmt: skip
    add_ledger_arguments(resolve_)
    resolve_.add_argument("--note", default="", help="why, for whoever reads the ledger later")
    resolve_.add_argument("--by", help="who decided (default: your login)")
    resolve_.set_defaults(handler=_resolve)
