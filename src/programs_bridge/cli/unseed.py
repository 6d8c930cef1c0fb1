"""``programs-bridge ledger unseed``: take back a seed made from the wrong report (``ledger/unseed.py``).

The seed's run id is what ``ledger seed`` printed (and its report's ``seed.run_id``).  Records the seed
wrote that nothing changed since are removed; what the bridge sent since, and records the seed corrected
(the ledger keeps no earlier state), stay and are counted.  Exit codes: 0 undone; 2 not undone (no such
seed in this feed, not a seed, unfinished or undone before); 3 the ledger could not be read or written;
64 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from programs_bridge.cli.convert import writable
from programs_bridge.cli.ledger import add_ledger_arguments, feed_name, interrupted, reaching_ledger, report_after

EXIT_NOT_UNDONE = 2


def _unseed(args: argparse.Namespace) -> int:
    from programs_bridge.ledger.store import LedgerStore  # boto3, for this command only
    from programs_bridge.ledger.unseed import UnseedError, unseed

    feed = feed_name(args.feed)
    if args.report is not None:
        writable(args.report, "the report")  # checked before the ledger changes
    try:
        with reaching_ledger(args.table, "undo the seed in"):
            result = unseed(LedgerStore(args.table), feed=feed, seed_run=args.run_id.strip(), now=datetime.now(UTC))
    except UnseedError as exc:
        print(f"programs-bridge: {exc}", file=sys.stderr)
        return EXIT_NOT_UNDONE
    except KeyboardInterrupt:
        raise interrupted("the undo") from None
    section = result.to_json()
    print(unseed_summary(feed, section), file=sys.stderr)
    if args.report is not None:
        text = json.dumps({"status": "unseeded", "feed": feed, "unseed": section}, indent=2) + "\n"
        with report_after(args.report, "the seed was undone (above)"):
            args.report.write_text(text, encoding="utf-8")
        print(f"  full report: {args.report}", file=sys.stderr)
    return 0


def unseed_summary(feed: str, section: dict[str, Any]) -> str:
    """Counts and what to do next; no keys (resolution ids are the ledger's own, not student data)."""
    c = section["counts"]
    lines = [
        f"  ledger: seed {section['seed_run']} of feed {feed!r} undone as run {section['run_id']}: "
        f"{c['removed']:,} record(s) removed, {c['kept_changed_since']:,} kept (the bridge sent them since), "
        f"{c['corrected_left_as_is']:,} corrected by the seed and left as they are (the ledger keeps no "
        "earlier state: seed the right report to correct them again)"
    ]
    if section["feed_empty"]:
        lines.append("  the ledger holds nothing for this feed now: its next export waits for a seed (needs_seed)")
    if section["seeds_to_repeat"]:
        lines.append(
            f"  {len(section['seeds_to_repeat'])} other seed(s) of this feed may list some of the removed records: "
            "seed each one's report again (programs-bridge ledger seed, also for one that was dropped in the "
            "bucket) to write them back; until then the feed's exports are held (needs_seed): "
            + ", ".join(section["seeds_to_repeat"])
        )
    if section["resolutions_to_redo"]:
        ids = ", ".join(section["resolution_ids"][:20])
        lines.append(
            f"  {section['resolutions_to_redo']} 'same' resolution(s) sent rows under a removed record and must be "
            f"resolved again: {ids}"
        )
    return "\n".join(lines)


def add_ledger_command(commands: Any) -> None:
    unseed_ = commands.add_parser(
        "unseed",
        help="take back a seed made from the wrong report: remove the records it wrote that nothing changed since",
        description="Undo a seed of a feed's ledger; exit 0 undone, 2 not undone, 3 ledger unreadable, 64 usage.",
    )
    unseed_.add_argument("run_id", metavar="SEED_RUN", help="the seed's run id, as `ledger seed` printed it")
    add_ledger_arguments(unseed_)
    unseed_.add_argument("--report", type=Path, help="write what was undone as JSON to this file")
    unseed_.set_defaults(handler=_unseed)
