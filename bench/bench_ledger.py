"""The ledger against a 1M-record feed, on the local DynamoDB (``bench.stack``).

Over HTTP, as the code meets DynamoDB: dynalite when ``make bench`` could install it, moto otherwise.

Targets (issue 3):
- re-planning and committing an unchanged 1M-row full export writes 0 record items;
- reading the ledger consumes at most 1/10 of the read units of one eventually-consistent read per row;
- classifying 1M rows against 1M records, excluding I/O, takes at most 2x the converter alone (compared with
  ``bench/results/convert.json`` when the convert benchmark has run), and the whole plan peaks at <= 600 MB.

Read units are *estimated* from the bytes read with DynamoDB's published rules (0.5 unit per started 4 KB of a
Query page, eventually consistent), because moto reports a flat 0.5 per request; the flat figure is reported
too.  ``PB_BENCH_ROWS`` runs a smaller feed.  The plan and the unchanged commit run in a fresh child process
so that its peak RSS is the plan's own, not the seeding's.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import bench_rows
from bench.stack import aws_stack, ledger_store
from programs_bridge.ledger.classify import classify
from programs_bridge.ledger.commit import commit
from programs_bridge.ledger.model import Row
from programs_bridge.ledger.snapshot import LedgerSnapshot
from programs_bridge.ledger.store import LedgerStore, RunRecord, create_table
from programs_bridge.programs_txt.layout import STANDARD, Layout

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "ledger.json"
ROWS = bench_rows()
TABLE = "bench-ledger"
FEED = "bench"
READ_SHARE_TARGET = 0.10
RSS_TARGET_MB = 600.0
CONVERT_RATIO_TARGET = 2.0

PROGRAMS = ("101", "108", "113", "122", "127", "135", "144", "181", "191", "300")
SITES = ("12", "14", "16", "20", "31", "")


def synthetic_rows(count: int, layout: Layout = STANDARD) -> Iterator[Row]:
    """A deterministic full export: student IDs with leading zeros, a spread of programs, dates and sites.

    Generated, not read from disk, so that the plan can stream it twice without holding it.
    """
    for n in range(count):
        student = f"{n // 3:08d}"
        start = f"{(n % 12) + 1:02d}/{(n % 28) + 1:02d}/2025"
        end = f"06/{(n % 28) + 1:02d}/2026" if n % 7 == 0 else ""
        values = {
            "import_student_id": student,
            "state_student_id": f"{9_000_000_000 + n // 3}",
            "last_name": "Benchperson",
            "first_name": "Sam",
            "middle_name": "",
            "birth_date": "03/04/2014",
            "program_id": PROGRAMS[n % len(PROGRAMS)],
            "eligibility_start_date": "",
            "eligibility_end_date": "",
            "program_start_date": start,
            "program_end_date": end,
            "academic_year": "2025-2026",
            "eligibility_code": "",
            "exit_code": "230" if end else "",
            "site_id": SITES[n % len(SITES)],
        }
        yield n + 2, [values[field.value] for field in layout.fields]


def bench_store() -> LedgerStore:
    return ledger_store(TABLE)


def run_record(run_id: str) -> RunRecord:
    return RunRecord(run_id, f"exports/{run_id}.csv", "v1", "0" * 64, f"reports/{run_id}.json", {})


def seed(rows: int) -> dict[str, Any]:
    """Commit the export once against an empty ledger: the first night, and the bench's fixture."""
    store = bench_store()
    started = time.perf_counter()
    result = commit(store, run_record("seed"), synthetic_rows(rows), STANDARD, feed=FEED, snapshot=LedgerSnapshot())
    seconds = time.perf_counter() - started
    return {
        "seed_seconds": round(seconds, 1),
        "seed_items_per_second": round(result.records_written / seconds),
        "seed_requests": result.usage.requests,
    }


def plan_and_commit_unchanged(rows: int) -> dict[str, Any]:
    """In a fresh process: read the ledger, classify the unchanged export, commit it; time and memory.

    The peak is this process's own from here on (VmHWM, reset first): a spawned process starts its count at
    its parent's peak, and the parent has just seeded a million records."""
    Path("/proc/self/clear_refs").write_text("5")  # Linux: restart the peak count (as bench_pipeline does)
    store = bench_store()
    started = time.perf_counter()
    snapshot, usage = store.read_snapshot(FEED)
    read_seconds = time.perf_counter() - started

    started = time.perf_counter()
    for _ in synthetic_rows(rows):
        pass
    walk_seconds = time.perf_counter() - started
    started = time.perf_counter()
    classification = classify(synthetic_rows(rows), STANDARD, snapshot)
    classify_seconds = time.perf_counter() - started

    started = time.perf_counter()
    result = commit(store, run_record("unchanged"), synthetic_rows(rows), STANDARD, feed=FEED, snapshot=snapshot)
    commit_seconds = time.perf_counter() - started
    status = Path("/proc/self/status").read_text().splitlines()
    peak_kb = int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
    return {
        "ledger_records": len(snapshot),
        "read_seconds": round(read_seconds, 1),
        "read": usage.to_json(),
        "counts": {decision.value: count for decision, count in classification.counts.items()},
        "row_walk_seconds": round(walk_seconds, 2),
        "classify_seconds_with_walk": round(classify_seconds, 2),
        "classify_seconds": round(classify_seconds - walk_seconds, 2),
        "classify_us_per_row": round((classify_seconds - walk_seconds) / rows * 1e6, 2),
        "unchanged_commit_records_written": result.records_written,
        "unchanged_commit_requests": result.usage.requests,
        "unchanged_commit_seconds": round(commit_seconds, 1),
        "plan_peak_rss_mb": round(peak_kb / 1024, 1),
    }


def converter_seconds_per_row() -> float | None:
    """The converter's own time per row at its largest size, from ``bench/results/convert.json`` if the
    convert benchmark has run on this machine (it writes ``{"convert": {"<rows>": {"seconds": ...}}}``)."""
    path = HERE / "results" / "convert.json"
    if not path.exists():
        return None
    runs = json.loads(path.read_text()).get("convert", {})
    if not runs:
        return None
    rows = max(runs, key=int)
    return float(runs[rows]["seconds"]) / int(rows)


def run() -> bool:
    with aws_stack() as stack:
        print(f"ledger: {ROWS:,} rows against a {ROWS:,}-record ledger on {stack.dynamodb}", flush=True)
        create_table(TABLE)
        figures: dict[str, Any] = {"rows": ROWS, "dynamodb": stack.dynamodb, **seed(ROWS)}
        print(f"  seeded in {figures['seed_seconds']} s ({figures['seed_items_per_second']} items/s)", flush=True)
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            figures |= pool.apply(plan_and_commit_unchanged, (ROWS,))

    per_row_units = 0.5 * ROWS
    figures["per_row_read_units"] = per_row_units
    figures["read_share_of_per_row"] = round(figures["read"]["estimated_units"] / per_row_units, 4)
    converter = converter_seconds_per_row()
    figures["converter_us_per_row"] = round(converter * 1e6, 2) if converter else None
    verdicts = {
        "unchanged_commit_writes_0_records": figures["unchanged_commit_records_written"] == 0,
        "read_share_at_most_1_10": figures["read_share_of_per_row"] <= READ_SHARE_TARGET,
        "plan_peak_rss_at_most_600_mb": figures["plan_peak_rss_mb"] <= RSS_TARGET_MB,
    }
    if converter:
        verdicts["classify_at_most_2x_converter"] = figures["classify_us_per_row"] <= CONVERT_RATIO_TARGET * (
            converter * 1e6
        )
    figures["targets"] = verdicts
    figures["python"] = sys.version.split()[0]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2), flush=True)
    return all(verdicts.values())


if __name__ == "__main__":
    raise SystemExit(0 if run() else 1)
