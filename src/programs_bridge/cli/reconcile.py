"""``programs-bridge ledger reconcile``: compare Illuminate's own records with what the feed's ledger says.

Converts Illuminate's report (``--profile illuminate-report``, a past programs.txt, or any ``--mapping``)
exactly as ``ledger seed`` does, reads the feed's ledger and lists (``ledger/reconcile.py``): duplicates
Illuminate holds, records open in Illuminate whose exit never landed, records the bridge sent that
Illuminate lacks, and records nobody sent (entered by hand, information).  ``--fix-file`` writes a ready
programs.txt of exit rows for the exits that never landed.  Nothing is written to the ledger.

The summary on stderr names report lines, program ids, start dates and site ids only: an id only when its
shape rules out a student ID or a name, a date only in the date shape.  A date's shape cannot rule out a
birth date; a start date is shown because each row passed the converter's checks (its width, its dates in
their order), which a row whose columns slipped does not.  The JSON report (``--report``) names the keys.
Exit codes: 0 nothing found; 1 findings (or rejected rows); 2 the report was rejected; 3 the ledger could
not be read; 64 usage.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from programs_bridge.cli.convert import add_converter_options, options_from_args, output_checked
from programs_bridge.cli.ledger import add_ledger_arguments, feed_name, reaching_ledger, report_after
from programs_bridge.cli.main import CommandFailed, UsageError
from programs_bridge.convert.engine import Status, convert_export, converted_rows
from programs_bridge.convert.findings import summary_id
from programs_bridge.ledger.model import Row, decode_key, pending_changes
from programs_bridge.programs_txt.render import OutputFormat, render_header
from programs_bridge.report.conversion import summary

if TYPE_CHECKING:
    from programs_bridge.ledger.reconcile import FixCounts, Member, Reconciliation

EXIT_FINDINGS = 1
EXIT_REJECTED = 2
EXIT_USAGE = 64
#: Findings of each kind the summary prints one line for (the report lists up to 1,000, counts are exact).
SHOWN = 20

#: Said when not one record of the report is in the ledger (``Reconciliation.matched_none``).
MATCHED_NONE = (
    "not one of the report's records is in the ledger: is --feed this report's feed, and is it read in the "
    "feed's layout (--layout, --columns), so that keys compare equal?"
)

_DATE = re.compile(r"\d\d/\d\d/\d{4}")


def _reconcile(args: argparse.Namespace) -> int:
    # Loaded here, not at the top: the ledger pulls in boto3, which ``convert`` should not pay for.
    from programs_bridge.ledger.reconcile import FixCounts, can_fix, fix_rows, reconcile
    from programs_bridge.ledger.store import LedgerStore, Usage
    from programs_bridge.report.run import save_run_report

    feed = feed_name(args.feed)
    # As ``ledger seed`` converts: the report feeds the comparison alone, so it may lack names and birth date.
    options = replace(options_from_args(args), keep_source_lines=True, records_only=True)
    layout = options.output.layout
    for path, what in ((args.report, "the report"), (args.fix_file, "the fix file")):
        if path is not None:
            output_checked(path, args.input, what)
    if args.report is not None and args.fix_file is not None and args.report.resolve() == args.fix_file.resolve():
        raise UsageError("--report and --fix-file name the same file: one would overwrite the other")
    if args.fix_file is not None and not can_fix(layout):
        raise UsageError("the layout has no Program End Date column: an exit row cannot be written")
    with tempfile.TemporaryDirectory(prefix="programs-bridge-reconcile-") as work:
        conversion = convert_export(args.input, Path(work) / "programs.txt", options)
        print(summary(conversion, kept=False), file=sys.stderr)
        if conversion.status is Status.REJECTED:
            save_run_report(args.report, conversion, {"feed": feed, "status": "rejected", "reason": conversion.reason})
            return EXIT_REJECTED
        usage = Usage()
        spool_path = Path(work) / "exits.txt"
        fix: FixCounts | None = None
        with reaching_ledger(args.table, "read"):
            store = LedgerStore(args.table)
            snapshot, read = store.read_snapshot(feed)
            pending = pending_changes(snapshot.head_run, partial(store.run_statuses, feed))
            usage.add(read)
            if snapshot.head_run is None and not len(snapshot):
                problem = f"feed {feed!r} has no ledger in table {args.table!r} (never seeded, nothing delivered)"
                print(f"programs-bridge: {problem}: is --feed right? To load this report, use 'ledger seed'",
                      file=sys.stderr)  # fmt: skip
                return EXIT_USAGE
            with spool_path.open("w", encoding="utf-8", newline="") as spool:
                result = reconcile(
                    converted_rows(conversion), layout, snapshot,
                    on_exit_not_landed=lambda row: spool.write(f"{row[0]}\t" + "\t".join(row[1]) + "\n"),
                )  # fmt: skip
            if args.fix_file is not None:
                fix = FixCounts()
                exits = fix_rows(
                    _spooled(spool_path), layout, lambda keys: store.record_end_dates(feed, keys, usage), fix
                )
                _write_fix_file(args.fix_file, options.output, exits)
        section = result.to_json() | {
            "feed": feed, "ledger_read": usage.to_json(), "ledger_unfinished_run": pending.unfinished,
            "ledger_seeds_to_repeat": list(pending.seeds_to_repeat),
        }  # fmt: skip
        if fix is not None:
            section["fix_file"] = {"path": str(args.fix_file), **fix.to_json()}
        print(reconcile_summary(feed, result, fix, args.fix_file), file=sys.stderr)
        if result.matched_none:
            print(f"  warning: {MATCHED_NONE}", file=sys.stderr)
        if pending.unfinished is not None:
            print(f"  warning: {pending.unfinished} holds the feed but was cut short, so the ledger holds only part of "
                  "what it should: run it again to its end, then reconcile again", file=sys.stderr)  # fmt: skip
        if pending.seeds_to_repeat:
            print(f"  warning: a seed was undone and took out records that {', '.join(pending.seeds_to_repeat)} may "
                  "also list: records those reports hold may be listed as entered by hand; seed each again, then "
                  "reconcile again", file=sys.stderr)  # fmt: skip
        with report_after(args.report, "the report was compared with the ledger (above)"):
            save_run_report(
                args.report, conversion, {"feed": feed, "status": "reconciled", "reason": None, "reconcile": section}
            )
        if args.report:
            print(f"  full report: {args.report}", file=sys.stderr)
        attention = result.findings or conversion.rows_rejected or pending or result.matched_none
        return EXIT_FINDINGS if attention else 0


def _spooled(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8", newline="") as rows:
        for text in rows:
            line, *fields = text[:-1].split("\t")
            yield int(line), fields


def _write_fix_file(path: Path, output: OutputFormat, rows: Iterator[Row]) -> None:
    """A programs.txt in the feed's format (header, newline), as the pipeline writes the one it sends."""
    staged = path.with_name(f".{path.name}.partial")
    try:
        with staged.open("w", encoding="utf-8", newline="") as out:
            if output.header:
                out.write(render_header(output))
            for _, fields in rows:
                out.write("\t".join(fields) + output.newline)
        staged.replace(path)
    except OSError as exc:  # the disk, not the ledger (which ``reaching_ledger`` would say)
        raise CommandFailed(f"could not write the fix file {path}: {exc.strerror or exc}; nothing was kept") from None
    finally:
        staged.unlink(missing_ok=True)


def _date(value: str) -> str:
    return value if _DATE.fullmatch(value) else "(no date)" if not value else "(not shown)"


def _record(key_text: str) -> str:
    _student, program, start, site = decode_key(key_text)
    return f"program {summary_id(program)}, start {_date(start)}, site {summary_id(site)}"


def _dates(result: Reconciliation, member: Member) -> str:
    _student, _program, start, site = decode_key(result.key_text(member.ref))
    end = "open" if member.is_open else "closed"
    return f"start {_date(start)}, site {summary_id(site)}, {end}"


def reconcile_summary(feed: str, result: Reconciliation, fix: FixCounts | None, fix_path: Path | None) -> str:
    """The findings by kind, each by report line and program, dates and site: never a student ID or name."""
    c = result.counts
    snapshot = result.snapshot
    lines = [
        f"  reconcile: feed {feed!r}, {result.rows:,} records in Illuminate's report against "
        f"{len(snapshot):,} in the ledger"
    ]
    lines.append(
        f"  (a) {c['duplicates']:,} duplicate(s) in Illuminate ({c['duplicate_records']:,} records): "
        "delete by hand in Illuminate, keeping the record named"
    )
    for duplicate in result.duplicates[:SHOWN]:
        what = "open more than once" if duplicate.kind == "open_twice" else "overlapping dates"
        _student, program, _start, _site = decode_key(result.key_text(duplicate.keep.ref))
        delete = "; ".join(f"line {m.line} ({_dates(result, m)})" for m in duplicate.members if m is not duplicate.keep)
        check = "; the SIS lists them all: check there first" if duplicate.sis_open > 1 else ""
        lines.append(
            f"    program {summary_id(program)}, {what}: keep line {duplicate.keep.line} "
            f"({_dates(result, duplicate.keep)}), delete {delete}{check}"
        )
    fixed = ""
    if fix is not None and fix_path is not None:
        fixed = f": {fix.rows:,} exit row(s) written to {fix_path}{fix.left_out()}"
    elif c["exits_fixable"]:
        fixed = f": {c['exits_fixable']:,} can be fixed by an exit row (--fix-file)"
    lines.append(
        f"  (b) {c['exits_not_landed']:,} record(s) open in Illuminate that the ledger says were exited{fixed}"
    )
    for line, ordinal, fixable in result.exits_not_landed[:SHOWN]:
        how = "exit never landed" if fixable else "closed in an earlier Illuminate report: reopened there since"
        lines.append(f"    line {line}: {_record(snapshot.keys[ordinal])}: {how} (run {snapshot.last_run(ordinal)})")
    lines.append(
        f"  (b) {c['open_not_exported']:,} record(s) open in Illuminate that the latest full export no longer lists "
        "(the SIS ended or dropped them without an exit: find out which, and exit them)"
    )
    for line, ordinal in result.open_not_exported[:SHOWN]:
        lines.append(f"    line {line}: {_record(snapshot.keys[ordinal])}")
    lines.append(
        f"  (c) {c['dropped_by_import']:,} record(s) the bridge sent that Illuminate does not have (only programs "
        f"{', '.join(summary_id(p) for p in sorted(result.program_ids)) or '-'} at sites "
        f"{', '.join(summary_id(s) for s in sorted(result.site_ids)) or '-'}, which the report covers)"
    )
    for ordinal in result.dropped[:SHOWN]:
        state = "open" if snapshot.is_open(ordinal) else "closed"
        lines.append(f"    {_record(snapshot.keys[ordinal])}, {state}, sent by run {snapshot.last_run(ordinal)}")
    lines.append(f"  (d) {c['entered_by_hand']:,} record(s) in Illuminate that no export sent (information)")
    for line, ref in result.entered_by_hand[:SHOWN]:
        lines.append(f"    line {line}: {_record(result.key_text(ref))}")
    return "\n".join(lines)


def add_ledger_command(commands: Any) -> None:
    reconcile = commands.add_parser(
        "reconcile",
        help="compare Illuminate's report of its program records with the ledger: duplicates, exits that never "
        "landed, records the import dropped, records entered by hand",
        description="Reconcile Illuminate's own records with a feed's ledger (writes nothing to it); exit 0 "
        "nothing found, 1 findings, 2 report rejected, 3 ledger unreadable, 64 usage.",
    )
    add_converter_options(reconcile)
    add_ledger_arguments(reconcile)
    reconcile.add_argument("--fix-file", type=Path, metavar="FILE",
                           help="write a programs.txt of exit rows for the exits that never landed")  # fmt: skip
    reconcile.set_defaults(handler=_reconcile)
