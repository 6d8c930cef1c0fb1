"""Seeding a feed's ledger from Illuminate's report, and reconciling the report against the ledger.

On the local DynamoDB (dynalite, or moto without node: ``bench.stack``), over HTTP, as the code meets DynamoDB.

Targets (the seed/reconcile issue):
- seeding 1M records writes each item at most once and, re-run, writes none: the first seed writes exactly as
  many record items as the report has distinct record keys; a second download of the same records (other
  bytes, so another sha256, and a later ``taken`` time, so not "already seeded") writes 0;
- reconciling a 1M-record report against a 1M-record ledger takes at most 2x the time of converting that
  report, measured in the same run, with peak RSS under 600 MB.

The report is a synthetic ``illuminate-report`` CSV (``programs_bridge.local.synthetic``, no damage), converted
exactly as ``ledger seed`` and ``ledger reconcile`` convert it (``records_only``, ``keep_source_lines``).  The
second download is the same records written with CRLF line ends.  The ledger reconciled against is the one the
seeds made, so every report row is known to it (the light case for memory: no unknown keys are kept).

Reconcile is timed two ways, both judged against the 2x target and both against the same-run baseline (a
``convert_export`` of the report alone, in its own child process):
- ``compare only``: ``ledger.reconcile.reconcile`` over the converted rows, the snapshot already in memory;
- ``end to end``: what ``ledger reconcile`` does: convert, ``read_snapshot`` (a million items over HTTP from
  the local DynamoDB; on moto, moto's speed dominates it), reconcile, the report section.
The same without the ledger read is shown as information (``end_to_end_less_read_ratio``), not judged.
The read's CPU is shown on both sides, ours (all reader threads) and the local DynamoDB's (its process, read
from ``/proc``), because they run on separate cores and the wall time is the slower one's: on dynalite a read
of this ledger keeps dynalite busier than us (measured at 200,000 records: dynalite 1.8-2.2 s of CPU, ours
1.2-1.4 s, wall 1.8-2.2 s), so the judged figure there is the emulator's speed, while on DynamoDB, whose
partitions answer the 16 shard Queries side by side, our share is what would remain.
Each runs once per benchmark run (a moto read of a 1M-item ledger is too slow to repeat), so small sizes are
noisy.  The reconcile runs in a grandchild spawned by a minimal ``-I -S`` interpreter (``bench_convert.spawn``),
so its peak RSS is its own and not this runner's, which holds the seeding's memory.

``PB_BENCH_ROWS`` (default 1,000,000) runs a smaller report; seeding a million items over HTTP takes minutes even
on dynalite (``seed_seconds``).
"""

from __future__ import annotations

import hashlib
import json
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import bench_rows
from bench.bench_convert import Measure, Verdict, spawn
from bench.stack import aws_stack, ledger_store, server_cpu_seconds
from programs_bridge.convert.engine import Conversion, ConvertOptions, Status, convert_export, converted_rows
from programs_bridge.convert.profiles import PROFILES
from programs_bridge.ledger.model import row_facts
from programs_bridge.ledger.reconcile import reconcile
from programs_bridge.ledger.seed import SeedResult, seed, seed_run_id
from programs_bridge.ledger.store import LedgerStore, RunRecord, create_table
from programs_bridge.local.synthetic import REFERENCE_DATE, generate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
RESULTS = HERE / "results" / "seed_reconcile.json"
ROWS = bench_rows()
PROFILE = "illuminate-report"
SEED = 1
TABLE = "bench-seed-reconcile"
FEED = "bench-seed"
TAKEN = datetime(2026, 8, 1, tzinfo=UTC)
RETAKEN = TAKEN + timedelta(days=1)
RATIO_TARGET = 2.0
RSS_TARGET_MB = 600.0

#: Runs one worker of this module in a child: ``python -c BOOT ROOT MODE REPORT OUT``.
BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); from bench.bench_seed_reconcile import worker; "
    "raise SystemExit(worker(sys.argv[2:]))"
)


def report_file(rows: int, newline: str) -> Path:
    """Illuminate's report of ``rows`` records, generated on first use and reused afterwards."""
    ends = "crlf" if newline == "\r\n" else "lf"
    path = DATA / f"{PROFILE}-{rows}-seed{SEED}-{ends}.csv"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        print(f"  generating {path.relative_to(ROOT)} ...", flush=True)
        partial = path.with_name(path.name + ".partial")
        generate(partial, PROFILE, rows, seed=SEED, newline=newline)
        partial.rename(path)  # an interrupted run must not leave a short file to be reused
    return path


def options() -> ConvertOptions:
    """As ``ledger seed`` and ``ledger reconcile`` convert a report (``--profile illuminate-report``), judged as
    of the synthetic data's reference day so the figures do not depend on the clock."""
    return ConvertOptions(
        mapping=PROFILES[PROFILE], keep_source_lines=True, records_only=True, today=REFERENCE_DATE
    )  # fmt: skip


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bench_store() -> LedgerStore:
    return ledger_store(TABLE)


def convert(report: Path, work: Path) -> Conversion:
    conversion = convert_export(report, work / "programs.txt", options())
    if conversion.status is Status.REJECTED or conversion.output is None:
        raise RuntimeError(f"the synthetic report {report.name} was rejected: {conversion.reason}")
    return conversion


def seed_report(store: LedgerStore, report: Path, taken: datetime, *, count_keys: bool) -> dict[str, Any]:
    """Convert ``report`` and seed the feed from it, as ``ledger seed`` does; time the two apart."""
    digest = sha256(report)
    run = RunRecord(seed_run_id(taken, digest), str(report), digest[:16], digest, "", {})
    with tempfile.TemporaryDirectory(prefix="bench-seed-") as work:
        started = time.perf_counter()
        conversion = convert(report, Path(work))
        convert_seconds = time.perf_counter() - started
        layout = conversion.options.output.layout
        distinct = len({row_facts(f, layout).key_text for _, f in converted_rows(conversion)}) if count_keys else None
        started = time.perf_counter()
        result: SeedResult = seed(store, converted_rows(conversion), layout, feed=FEED, run=run)
        seconds = time.perf_counter() - started
    figures: dict[str, Any] = {
        "run_id": run.run_id,
        "sha256": digest,
        "rows_converted": conversion.rows_written,
        "convert_seconds": round(convert_seconds, 2),
        "seed_seconds": round(seconds, 2),
        "items_written": result.usage.items,
        "write_requests": result.usage.requests,
        "already_seeded": result.already_seeded,
        "counts": result.plan.to_json()["counts"],
    }
    if distinct is not None:
        figures["distinct_keys"] = distinct
    return figures


# -- the measured children ---------------------------------------------------------------------------------


def worker(argv: Sequence[str]) -> int:
    """In a child: ``convert REPORT OUT`` (the baseline) or ``reconcile REPORT OUT``; figures as JSON to OUT."""
    mode, report, out = argv[0], Path(argv[1]), Path(argv[2])
    with tempfile.TemporaryDirectory(prefix=f"bench-{mode}-") as work:
        figures = convert_alone(report, Path(work)) if mode == "convert" else reconcile_end_to_end(report, Path(work))
    figures["self_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out.write_text(json.dumps(figures) + "\n", encoding="utf-8")
    return 0


def convert_alone(report: Path, work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    conversion = convert(report, work)
    seconds = time.perf_counter() - started
    return {"convert_seconds": seconds, "rows_written": conversion.rows_written}


def reconcile_end_to_end(report: Path, work: Path) -> dict[str, Any]:
    """What ``programs-bridge ledger reconcile`` does (without printing): convert, read the ledger once,
    reconcile with the (b) rows spooled to a file, make the report section."""
    started = time.perf_counter()
    conversion = convert(report, work)
    converted = time.perf_counter()
    store = bench_store()
    cpu = time.process_time()  # every thread's: the read's four Query threads included
    snapshot, usage = store.read_snapshot(FEED)
    read, cpu = time.perf_counter(), time.process_time() - cpu
    with (work / "exits.txt").open("w", encoding="utf-8", newline="") as spool:
        result = reconcile(
            converted_rows(conversion), conversion.options.output.layout, snapshot,
            on_exit_not_landed=lambda row: spool.write(f"{row[0]}\t" + "\t".join(row[1]) + "\n"),
        )  # fmt: skip
    compared = time.perf_counter()
    section = result.to_json()
    finished = time.perf_counter()
    return {
        "convert_seconds": converted - started,
        "read_snapshot_seconds": read - converted,
        "read_client_cpu_seconds": cpu,
        "compare_seconds": compared - read,
        "end_to_end_seconds": finished - started,
        "rows": result.rows,
        "ledger_records": len(snapshot),
        "ledger_read": usage.to_json(),
        "counts": section["counts"],
    }


def measure(mode: str, report: Path, work: Path) -> tuple[Measure, dict[str, Any]]:
    out, log = work / f"{mode}.json", work / f"{mode}.log"
    measured = spawn([sys.executable, "-c", BOOT, str(ROOT), mode, str(report), str(out)], log)
    if measured.exit_code != 0 or not out.exists():
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"the {mode} child exited {measured.exit_code}: {' | '.join(tail)}")
    return measured, json.loads(out.read_text(encoding="utf-8"))


# -- the run -----------------------------------------------------------------------------------------------


def verdicts(figures: dict[str, Any]) -> list[Verdict]:
    first, again, rec = figures["seed"], figures["reseed"], figures["reconcile"]
    rows = figures["rows"]
    return [
        Verdict(
            f"seed of {rows:,} records: record items written = distinct record keys",
            f"{first['items_written']:,} written, {first['distinct_keys']:,} distinct keys",
            "equal (each item at most once, every record once)",
            first["items_written"] == first["distinct_keys"] and not first["already_seeded"],
        ),
        Verdict(
            f"re-seed of the same {rows:,} records (another sha256, later taken): record items written",
            f"{again['items_written']:,} (already_seeded={again['already_seeded']})",
            "0, and not skipped as already seeded",
            again["items_written"] == 0 and not again["already_seeded"] and again["sha256"] != first["sha256"],
        ),
        Verdict(
            f"reconcile compare only / convert, {rows:,} rows vs {rec['ledger_records']:,} records",
            f"{rec['compare_ratio']:.2f}x",
            f"<= {RATIO_TARGET}x",
            rec["compare_ratio"] <= RATIO_TARGET,
        ),
        Verdict(
            f"reconcile end to end (convert + ledger read + compare) / convert, {rows:,} rows ({figures['dynamodb']})",
            f"{rec['end_to_end_ratio']:.2f}x",
            f"<= {RATIO_TARGET}x",
            rec["end_to_end_ratio"] <= RATIO_TARGET,
        ),
        Verdict(
            f"reconcile end to end peak RSS, {rows:,} rows",
            f"{rec['peak_rss_mb']:.1f} MB",
            f"< {RSS_TARGET_MB:.0f} MB",
            rec["peak_rss_mb"] < RSS_TARGET_MB,
        ),
    ]


def table(figures: dict[str, Any]) -> list[str]:
    first, again, base, rec = figures["seed"], figures["reseed"], figures["baseline"], figures["reconcile"]
    rows = [
        ("seed #1: convert", first["convert_seconds"], ""),
        ("seed #1: seed (ledger writes)", first["seed_seconds"], f"{first['items_written']:,} items written"),
        ("seed #2: convert", again["convert_seconds"], ""),
        ("seed #2: seed (ledger writes)", again["seed_seconds"], f"{again['items_written']:,} items written"),
        ("baseline: convert_export alone", base["convert_seconds"], f"peak RSS {base['peak_rss_mb']:.1f} MB"),
        ("reconcile: convert", rec["convert_seconds"], ""),
        ("reconcile: read_snapshot", rec["read_snapshot_seconds"], f"{rec['ledger_records']:,} records"),
        ("  CPU of the reader (all threads)", rec["read_client_cpu_seconds"], ""),
        (f"  CPU of {figures['dynamodb']}", rec.get("read_server_cpu_seconds"), _bound(rec, figures["dynamodb"])),
        ("reconcile: compare only", rec["compare_seconds"], f"{rec['compare_ratio']:.2f}x baseline"),
        ("reconcile: end to end", rec["end_to_end_seconds"], f"{rec['end_to_end_ratio']:.2f}x baseline"),
        (
            "reconcile: end to end less the ledger read",
            rec["end_to_end_seconds"] - rec["read_snapshot_seconds"],
            f"{rec['end_to_end_less_read_ratio']:.2f}x baseline (information)",
        ),
        ("", None, f"peak RSS {rec['peak_rss_mb']:.1f} MB"),
    ]
    title = f"step ({figures['rows']:,} rows, {figures['dynamodb']})"
    lines = [f"  {title:<40}  {'seconds':>9}  notes"]
    for what, seconds, note in rows:
        shown = f"{seconds:>9.2f}" if seconds is not None else " " * 9
        lines.append(f"  {what:<40}  {shown}  {note}")
    return lines


def _bound(rec: dict[str, Any], dynamodb: str) -> str:
    """Which side the read's wall time measures: the two run on separate cores, so the busier one bounds it.
    On DynamoDB itself the server side is spread over partitions, and the reader's CPU is what remains."""
    server = rec.get("read_server_cpu_seconds")
    if server is None:
        return "(no /proc: not measured)"
    if server > rec["read_client_cpu_seconds"]:
        return f"the read waited on {dynamodb}: its figure is the emulator's speed more than ours"
    return "the read was bound by our own CPU"


def run() -> bool:
    report, redownload = report_file(ROWS, "\n"), report_file(ROWS, "\r\n")
    figures: dict[str, Any] = {"rows": ROWS, "profile": PROFILE, "python": sys.version.split()[0]}
    with aws_stack() as stack, tempfile.TemporaryDirectory(prefix="bench-seed-reconcile-") as work:
        print(f"seed_reconcile: {ROWS:,}-row {PROFILE} report, ledger on {stack.dynamodb} (PB_BENCH_ROWS)", flush=True)
        figures["dynamodb"] = stack.dynamodb
        create_table(TABLE)
        store = bench_store()
        started = time.perf_counter()
        figures["seed"] = seed_report(store, report, TAKEN, count_keys=True)
        print(f"  seed #1 took {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        figures["reseed"] = seed_report(store, redownload, RETAKEN, count_keys=False)
        print(f"  seed #2 (the second download) took {time.perf_counter() - started:.1f} s", flush=True)

        measured, base = measure("convert", report, Path(work))
        figures["baseline"] = {**base, "child_seconds": measured.seconds, "peak_rss_mb": measured.peak_rss_mb}
        server_cpu = server_cpu_seconds(stack.dynamodb_pid)  # the child's only DynamoDB work is the read
        measured, rec = measure("reconcile", report, Path(work))
        figures["reconcile"] = {**rec, "child_seconds": measured.seconds, "peak_rss_mb": measured.peak_rss_mb}
        after = server_cpu_seconds(stack.dynamodb_pid)
        if server_cpu is not None and after is not None:
            figures["reconcile"]["read_server_cpu_seconds"] = after - server_cpu
    baseline = figures["baseline"]["convert_seconds"]
    figures["reconcile"]["compare_ratio"] = figures["reconcile"]["compare_seconds"] / baseline
    figures["reconcile"]["end_to_end_ratio"] = figures["reconcile"]["end_to_end_seconds"] / baseline
    without_read = figures["reconcile"]["end_to_end_seconds"] - figures["reconcile"]["read_snapshot_seconds"]
    figures["reconcile"]["end_to_end_less_read_ratio"] = without_read / baseline  # information, not a target

    judged = verdicts(figures)
    figures["targets"] = [asdict(verdict) for verdict in judged]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    for line in table(figures):
        print(line)
    for verdict in judged:
        print(f"{'PASS' if verdict.passed else 'FAIL'}  {verdict.what}: {verdict.value} (target {verdict.target})")
    print(f"figures written to {RESULTS.relative_to(ROOT)}", flush=True)
    return all(verdict.passed for verdict in judged)


if __name__ == "__main__":
    raise SystemExit(0 if run() else 1)
