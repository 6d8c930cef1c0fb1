"""``programs-bridge plan``: a dry run of a night's export against a live ledger.

Converts the export exactly as the pipeline would, reads the feed's ledger (real AWS, or any endpoint in
``AWS_ENDPOINT_URL``), classifies every row, and prints what would happen: nothing is delivered or written.
It also gives the shrink guard's verdict (``ledger/shrink.py``), with the thresholds a feed's
``[shrink_guard]`` table would set.  Exit codes: 0 nothing needs attention; 1 duplicate risks, missing
records, rejected rows, or an export the pipeline would hold (shrunken, or a first night awaiting a seed);
2 the export itself was rejected;
64 usage; 3 the ledger could not be read.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from programs_bridge.cli.convert import add_converter_options, options_from_args, output_checked
from programs_bridge.cli.ledger import add_ledger_arguments, feed_name, reaching_ledger
from programs_bridge.cli.main import UsageError
from programs_bridge.convert.engine import Status, convert_export, converted_rows
from programs_bridge.convert.findings import summary_id
from programs_bridge.ledger.model import ExportKind, Policy
from programs_bridge.ledger.shrink import DEFAULT_MAX_MISSING_SHARE, DEFAULT_MIN_MISSING
from programs_bridge.report.conversion import summary

if TYPE_CHECKING:
    from programs_bridge.ledger.plan import Plan
    from programs_bridge.ledger.shrink import ShrinkRule
    from programs_bridge.report.run import RunStatus


def _plan(args: argparse.Namespace) -> int:
    # Imported here, not at the top: the ledger pulls in boto3 (~0.1 s), which every other command
    # (``convert`` on a laptop above all) would otherwise pay for at start-up.
    from programs_bridge.ledger.plan import make_plan
    from programs_bridge.ledger.shrink import judge_plan
    from programs_bridge.ledger.store import LedgerStore
    from programs_bridge.report.run import RunStatus, save_run_report

    feed_name(args.feed)
    options = options_from_args(args)
    if args.report:
        output_checked(args.report, args.input, "the report")
    rule = _shrink_rule(args)
    options = replace(options, keep_source_lines=True)
    with tempfile.TemporaryDirectory(prefix="programs-bridge-plan-") as work:
        conversion = convert_export(args.input, Path(work) / "programs.txt", options)
        if conversion.status is Status.REJECTED:
            print(summary(conversion, kept=False), file=sys.stderr)
            rejected = _head(args, RunStatus.REJECTED, conversion.reason, None, conversion)
            save_run_report(args.report, conversion, rejected)
            return 2
        with reaching_ledger(args.table, "read"):
            plan = make_plan(
                LedgerStore(args.table),
                converted_rows(conversion),
                options.output.layout,
                feed=args.feed,
                kind=ExportKind(args.export),
                policy=Policy(args.policy),
            )
        verdict = judge_plan(plan, rule)
        print(summary(conversion, kept=False), file=sys.stderr)
        print(plan_summary(plan), file=sys.stderr)
        held = "the pipeline would HOLD this export, nothing delivered: " if verdict.fires else ""
        print(f"  shrink guard: {held}{verdict.describe()}", file=sys.stderr)
        unseeded = plan.snapshot.head_run is None and not len(plan.snapshot)
        pending = plan.pending
        if pending.unfinished is not None:
            print(f"  unfinished: {pending.unfinished} holds feed {args.feed!r} but was cut short, so the ledger "
                  "holds only part of what it should: the pipeline holds this export (needs_seed) until it is run "
                  "again to the end", file=sys.stderr)  # fmt: skip
        if pending.seeds_to_repeat:
            seeds = ", ".join(pending.seeds_to_repeat)
            print(f"  seeds to repeat: a seed was undone and took out records that {seeds} may also list: the "
                  "pipeline holds this export (needs_seed) until each of those reports is seeded again "
                  "(programs-bridge ledger seed, the same command)", file=sys.stderr)  # fmt: skip
        if unseeded:
            print(f"  first night: feed {args.feed!r} has no ledger yet: the pipeline holds this export (needs_seed) "
                  "until the feed is seeded (programs-bridge ledger seed), unless its config says "
                  'unseeded = "send"', file=sys.stderr)  # fmt: skip
        head = _head(args, RunStatus.PLANNED, None, plan, conversion) | {"shrink_guard": verdict.to_json()}
        save_run_report(args.report, conversion, head)
        if args.report:
            print(f"  full report: {args.report}", file=sys.stderr)
        counted = head["counts"]
        attention = (
            counted["duplicate_risks"]
            or counted["missing"]
            or conversion.rows_rejected
            or verdict.fires
            or unseeded
            or pending
            or plan.stale_resolutions
        )
        return 1 if attention else 0


def _shrink_rule(args: argparse.Namespace) -> ShrinkRule:
    """The shrink guard's thresholds from the options (the same names as a feed's ``[shrink_guard]``)."""
    from programs_bridge.ledger.shrink import ShrinkRule

    try:
        return ShrinkRule(not args.no_shrink_guard, args.max_missing_share, args.min_missing)
    except ValueError as exc:
        raise UsageError(f"--{str(exc).replace('_', '-')}") from None


def _head(
    args: argparse.Namespace, status: RunStatus, reason: str | None, plan: Plan | None, conversion: Any
) -> dict[str, Any]:
    from programs_bridge.report.run import counts  # see _plan: loaded with the ledger

    ledger = plan.report() if plan is not None else None
    return {
        "feed": args.feed,
        "status": status.value,
        "reason": reason,
        "counts": counts(conversion, plan, ledger["rows_to_send"] if ledger else 0),
        "ledger": ledger,
    }


def plan_summary(plan: Plan) -> str:
    """Per-class counts and the duplicate risks, named by line and by what differs (no student data: a long
    Site ID is not shown, ``summary_id``)."""
    report = plan.report(limit=20)
    counts_line = ", ".join(f"{n:,} {name}" for name, n in report["counts"].items())
    lines = [
        f"  ledger: feed {plan.feed!r}, {report['ledger_records']:,} records known; {plan.kind.value} export, "
        f"policy {plan.policy.value}",
        f"  classes: {counts_line}",
    ]
    for risk in report["duplicate_risks"]:
        matches = "; ".join(
            f"open record with start {m['key']['program_start_date']}, site {summary_id(m['key']['site_id'])}"
            f" (differs in {', '.join(m['differs'])})"
            for m in risk["open_records"]
        )
        lines.append(
            f"    line {risk['line']}: duplicate risk, {risk['action']}: {matches}; resolution id {risk['id']}"
        )
    if report["resolutions_stale"]:
        lines.append(
            f"    {len(report['resolutions_stale']):,} 'same' resolution(s) not applied: the record they send rows "
            f"under is no longer in the ledger (a seed was undone): {', '.join(report['resolutions_stale'])}"
        )
    if report["concurrent_enrolment_count"]:
        lines.append(
            f"    {report['concurrent_enrolment_count']:,} new record(s) sent beside an open record this full export "
            "also lists (a concurrent enrolment, e.g. at a second site): see the report's concurrent_enrolments"
        )
    if report["missing"]:
        lines.append(
            f"    {len(plan.classification.missing):,} record(s) open in the ledger are missing from this full export"
        )
    return "\n".join(lines)


def add_command(subparsers: Any) -> None:
    plan = subparsers.add_parser(
        "plan",
        help="dry run: classify an export against the ledger (new, exit, duplicate risk ...), write nothing",
        description="Classify an export against a live ledger and report; exit 0 clean, 1 needs attention, "
        "2 export rejected, 3 ledger unreadable, 64 usage.",
    )
    add_converter_options(plan)
    add_ledger_arguments(plan)
    plan.add_argument("--export", choices=[k.value for k in ExportKind], default="full",
                      help="full: the export lists every open record, so one left out is a missing record; "
                      "delta: only changes (default %(default)s, as a feed's export setting)")  # fmt: skip
    plan.add_argument("--policy", choices=[p.value for p in Policy], default="hold",
                      help="what a duplicate-risk row would do: hold, send or repair")  # fmt: skip
    guard = plan.add_argument_group("shrink guard", "as a feed's [shrink_guard] table sets it (docs/ledger.md)")
    guard.add_argument("--max-missing-share", type=float, default=DEFAULT_MAX_MISSING_SHARE, metavar="SHARE",
                       help="hold a full export that leaves out more than this share of the open records the "
                       "last one listed (default %(default)s) ...")  # fmt: skip
    guard.add_argument("--min-missing", type=int, default=DEFAULT_MIN_MISSING, metavar="N",
                       help="... and more than N of them (default %(default)s)")  # fmt: skip
    guard.add_argument("--no-shrink-guard", action="store_true", help="as enabled = false: never hold")
    plan.set_defaults(handler=_plan)
