"""The night a district lives with (issue 13): a big ledger, a few hundred changes, through the real handler.

A feed's first night (``PB_BENCH_ROWS`` rows, default 1,000,000, a clean PowerSchool export) is sent and
committed, so the ledger holds one record per row.  The second night is the same export a day later: 1% of
its rows now exited (an exit date and code on a row that was open) and ``NEW_ROWS`` new rows at the end.
Both nights run through ``lambda_handler`` on the local stack (``bench.stack``: moto, with dynalite for
DynamoDB when installed; a real sshd), each in a child of its own (``bench_pipeline.bench_feed``).

Targets for the second night: the handler under 5 minutes, the handler child's peak RSS under 1 GB, and the
ledger records it writes equal to the changes (the exits plus the new rows: nothing unchanged is rewritten).
Each stage's seconds, the ledger read's requests and read units, and the records written are printed and
kept in ``bench/results/nightly.json``, with the first night's figures beside them (information: that night
writes a record per row, and on moto its commit takes far longer than on DynamoDB).
"""

from __future__ import annotations

import csv
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import bench_rows
from bench.bench_pipeline import bench_feed
from programs_bridge.local.synthetic import EXIT_CODES, PROFILES, REFERENCE_DATE, records

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results" / "nightly.json"
PROFILE = "powerschool"
SEED = 21
NEW_ROWS = 300
EXIT_SHARE = 0.01
SECONDS_TARGET = 300
RSS_MB_TARGET = 1024

#: PowerSchool's columns the second night changes (``local.synthetic._powerschool``), and its open values.
EXIT_DATE, EXIT_CODE = 9, 10
OPEN = ("", "1/1/1900")
EXIT_STRIDE = 50


@dataclass(frozen=True)
class Nights:
    """The two exports, and what the second changes: the records its commit must write."""

    first: Path
    second: Path
    exits: int
    new_rows: int

    @property
    def changes(self) -> int:
        return self.exits + self.new_rows


def nights(rows: int) -> Nights:
    """Night 1 is the first ``rows`` records of a synthetic export of ``rows + NEW_ROWS``; night 2 is all of
    them, with open rows on a stride exited on the reference date until ``EXIT_SHARE`` of the rows are.  Made
    on first use and reused (the counts are kept beside the files)."""
    stem = DATA / f"nightly-{PROFILE}-{rows}"
    first, second, counts = (
        stem.with_name(stem.name + "-night1.csv"),
        stem.with_name(stem.name + "-night2.csv"),
        stem.with_suffix(".json"),
    )
    if not counts.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        print(f"generating {first.name} and {second.name} ...", flush=True)
        exits = _write_nights(first, second, rows)
        counts.write_text(json.dumps({"exits": exits, "new_rows": NEW_ROWS}) + "\n")
    written = json.loads(counts.read_text())
    return Nights(first, second, written["exits"], written["new_rows"])


def _write_nights(first: Path, second: Path, rows: int) -> int:
    """Write both nights in one pass over the synthetic records (see ``nights``); return night 2's exits."""
    wanted = round(rows * EXIT_SHARE)
    exit_date = f"{REFERENCE_DATE.month}/{REFERENCE_DATE.day}/{REFERENCE_DATE.year}"
    exits = 0
    with first.open("w", encoding="utf-8", newline="") as one, second.open("w", encoding="utf-8", newline="") as two:
        night1, night2 = csv.writer(one, lineterminator="\n"), csv.writer(two, lineterminator="\n")
        night1.writerow(PROFILES[PROFILE].header)
        night2.writerow(PROFILES[PROFILE].header)
        for position, record in enumerate(records(PROFILE, rows + NEW_ROWS, seed=SEED)):
            fields = list(record.fields)
            if position < rows:
                night1.writerow(fields)
                # Open rows on a stride, until 1% of the rows are exited (more than half the rows are open).
                if exits < wanted and position % EXIT_STRIDE == 0 and fields[EXIT_DATE] in OPEN:
                    fields[EXIT_DATE], fields[EXIT_CODE] = exit_date, EXIT_CODES[0]
                    exits += 1
            night2.writerow(fields)
    return exits


def run() -> bool:
    rows = bench_rows()
    plan = nights(rows)
    with bench_feed() as feed:
        first = feed.night(plan.first)
        print(
            f"nightly: night 1, {rows:,} rows: {first['status']} in {first['handler_seconds']} s, "
            f"{first['commit'].get('records_written', 0):,} records written (the ledger's fixture)",
            flush=True,
        )
        second = feed.night(plan.second)
    written = second["commit"].get("records_written", -1)
    read = second["ledger_read"]
    print(f"nightly: night 2, {rows + NEW_ROWS:,} rows ({plan.exits:,} exits, {plan.new_rows} new): {second['status']}")
    for stage, seconds in second["stages_seconds"].items():
        print(f"  {stage:<10} {seconds:>8.1f} s")
    print(
        f"  ledger read: {read.get('requests', 0):,} requests, {read.get('items', 0):,} records, "
        f"{read.get('consumed_units', 0):,.0f} read units reported ({read.get('estimated_units', 0):,.0f} estimated)"
    )
    targets = {
        "second_night_delivered": second["status"] == "delivered",
        "second_night_under_5_minutes": second["handler_seconds"] < SECONDS_TARGET,
        "second_night_under_1_gb": second["peak_rss_mb"] < RSS_MB_TARGET,
        "records_written_equal_changes": written == plan.changes,
    }
    print(
        f"  handler {second['handler_seconds']} s (target < {SECONDS_TARGET}), peak RSS {second['peak_rss_mb']} MB "
        f"(target < {RSS_MB_TARGET}), records written {written:,} (target = {plan.changes:,} changes)"
    )
    for name, met in targets.items():
        print(f"  {'PASS' if met else 'FAIL'} {name}")
    figures: dict[str, Any] = {
        "rows": rows,
        "dynamodb": feed.dynamodb,
        "changes": {"exits": plan.exits, "new_rows": plan.new_rows},
        "first_night": first,
        "second_night": second,
        "targets": targets,
        "python": platform.python_version(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    return all(targets.values())


if __name__ == "__main__":
    raise SystemExit(0 if run() else 1)
