"""``programs-bridge ledger seed``: teach a feed's ledger what Illuminate already holds.

Converts Illuminate's report of its own program records (``--profile illuminate-report``, a past
programs.txt, or any shape a ``--mapping`` describes) exactly as a nightly export is converted, then loads
it into the feed's ledger (``ledger/seed.py``).  Exit codes: 0 seeded (or seeded before: nothing written);
1 seeded, with rejected rows or records the bridge sent after the report was taken (conflicts, kept);
2 the report was rejected; 3 the ledger could not be read or written; 64 usage.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from programs_bridge.cli.convert import add_converter_options, options_from_args, output_checked
from programs_bridge.cli.ledger import add_ledger_arguments, feed_name, interrupted, reaching_ledger, report_after
from programs_bridge.cli.main import UsageError
from programs_bridge.convert.engine import ConvertOptions, Status, convert_export, converted_rows
from programs_bridge.report.conversion import summary

#: No report of Illuminate's is older (run ids begin with the year, in four digits).
EARLIEST_TAKEN = 2000


def _seed(args: argparse.Namespace) -> int:
    # Loaded here, not at the top: the ledger pulls in boto3, which ``convert`` should not pay for.
    from programs_bridge.ledger.seed import SeedError, seed, seed_run_id
    from programs_bridge.ledger.store import LedgerStore, RunRecord
    from programs_bridge.report.run import save_run_report

    feed = feed_name(args.feed)
    # records_only: the report feeds the ledger alone, so it may lack names and birth date
    options = replace(options_from_args(args), keep_source_lines=True, records_only=True)
    if args.report:
        output_checked(args.report, args.input, "the report")
    taken = _taken(args)
    sha256 = _sha256(args.input)
    with tempfile.TemporaryDirectory(prefix="programs-bridge-seed-") as work:
        conversion = convert_export(args.input, Path(work) / "programs.txt", options)
        print(summary(conversion, kept=False), file=sys.stderr)
        if conversion.status is Status.REJECTED:
            save_run_report(args.report, conversion, {"status": "rejected", "reason": conversion.reason, "seed": None})
            return 2
        run_id = seed_run_id(taken, sha256, _reading(options))
        run = RunRecord(run_id, str(args.input), sha256[:16], sha256, str(args.report or ""), {})
        try:
            with reaching_ledger(args.table, "seed"):
                result = seed(LedgerStore(args.table), converted_rows(conversion), options.output.layout, feed=feed,
                              run=run)  # fmt: skip
        except SeedError as exc:
            print(f"programs-bridge: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            raise interrupted(f"the seed {run_id}") from None
        section = result.to_json()
        print(seed_summary(args.feed, section, result.already_seeded), file=sys.stderr)
        with report_after(args.report, "the feed was seeded (above)"):
            save_run_report(args.report, conversion, {"status": "seeded", "reason": None, "seed": section})
        if args.report:
            print(f"  full report: {args.report}", file=sys.stderr)
        return 1 if conversion.rows_rejected or section["counts"]["conflicts"] else 0


def seed_summary(feed: str, section: dict[str, Any], already: bool) -> str:
    """Counts and the conflicts, each by its report line and the bridge run that changed it (no student data)."""
    if already:
        conflicts = section["counts"]["conflicts"]
        found = f"; it found {conflicts:,} conflict(s) then, listed in its report" if conflicts else ""
        return (
            f"  ledger: feed {feed!r} was seeded from this report before (run {section['run_id']}): nothing "
            f"written{found}"
        )
    c = section["counts"]
    lines = [
        f"  ledger: feed {feed!r} seeded as run {section['run_id']}: {c['records_read']:,} records read, "
        f"{c['new']:,} new, {c['updated']:,} corrected, {c['unchanged']:,} already known, "
        f"{c['conflicts']:,} kept as the bridge sent them later"
    ]
    for conflict in section["conflicts"][:20]:
        lines.append(
            f"    line {conflict['line']}: the bridge changed this record after the report (run {conflict['last_run']})"
        )
    return "\n".join(lines)


def _taken(args: argparse.Namespace) -> datetime:
    """When Illuminate's report was taken: ``--taken``, else the file's modification time."""
    if args.taken is not None:
        moment: datetime = args.taken
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if moment > datetime.now(UTC):
            # A report "taken" later than anything the bridge sent would overwrite the bridge's own exits.
            raise UsageError("--taken is in the future: give when Illuminate's report was actually taken")
        if moment.year < EARLIEST_TAKEN:
            raise UsageError(f"--taken is before {EARLIEST_TAKEN}: give when Illuminate's report was actually taken")
        return moment
    if not args.input.is_file():
        raise UsageError(f"no such file: {args.input}")
    return datetime.fromtimestamp(args.input.stat().st_mtime, UTC)


def _reading(options: ConvertOptions) -> str:
    """How the report is read, beyond its bytes: the mapping given (if any) and the layout."""
    mapping = options.mapping.model_dump_json() if options.mapping is not None else ""
    return f"{mapping}\0{','.join(f.value for f in options.output.layout.fields)}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def add_ledger_command(commands: Any) -> None:
    seed = commands.add_parser(
        "seed",
        help="load Illuminate's report of its program records into a feed's ledger, as if the bridge had sent them",
        description="Seed a feed's ledger from Illuminate's own records; exit 0 seeded, 1 rejected rows or "
        "conflicts, 2 report rejected, 3 ledger unreadable, 64 usage.",
    )
    add_converter_options(seed)
    add_ledger_arguments(seed)
    seed.add_argument("--taken", type=datetime.fromisoformat, metavar="YYYY-MM-DD[THH:MM]",
                      help="when Illuminate's report was taken (UTC); records the bridge changed later are kept. "
                      "Default: the file's modification time")  # fmt: skip
    seed.set_defaults(handler=_seed)
