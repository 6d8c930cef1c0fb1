"""The ledger test harness: synthetic rows, and nightly runs played against a table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from programs_bridge.ledger.commit import CommitResult, commit_plan
from programs_bridge.ledger.model import ExportKind, Policy, Row
from programs_bridge.ledger.plan import Plan, make_plan
from programs_bridge.ledger.store import LedgerStore, RunRecord
from programs_bridge.programs_txt.layout import STANDARD, Field, Layout

FEED = "district-a"


def enrolment(
    student: str,
    program: str,
    start: str,
    site: str = "12",
    end: str = "",
    *,
    exit_code: str = "",
    year: str = "2025-2026",
    layout: Layout = STANDARD,
) -> list[str]:
    """A synthetic programs.txt row in ``layout``; names and birth dates are made up."""
    values = {
        Field.IMPORT_STUDENT_ID: student,
        Field.STATE_STUDENT_ID: "",
        Field.LAST_NAME: "Testperson",
        Field.FIRST_NAME: "Alex",
        Field.MIDDLE_NAME: "",
        Field.BIRTH_DATE: "01/02/2015",
        Field.PROGRAM_ID: program,
        Field.ELIGIBILITY_START_DATE: "",
        Field.ELIGIBILITY_END_DATE: "",
        Field.PROGRAM_START_DATE: start,
        Field.PROGRAM_END_DATE: end,
        Field.ACADEMIC_YEAR: year,
        Field.ELIGIBILITY_CODE: "",
        Field.EXIT_CODE: exit_code,
        Field.SITE_ID: site,
    }
    return [values[f] for f in layout.fields]


def numbered(rows: list[list[str]]) -> list[Row]:
    """Rows as the converter hands them over: source line (the header is line 1) and fields."""
    return [(line, fields) for line, fields in enumerate(rows, start=2)]


@dataclass
class Night:
    plan: Plan
    sent: list[Row]
    committed: CommitResult | None

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = self.plan.report()["counts"]
        return counts

    @property
    def report(self) -> dict[str, Any]:
        return self.plan.report()


@dataclass
class Ledger:
    """Plays nightly runs against the table: plan, deliver (the rows_to_send), commit."""

    store: LedgerStore
    feed: str = FEED
    nights: int = field(default=0)

    def run(
        self,
        rows: list[list[str]],
        *,
        kind: ExportKind = ExportKind.FULL,
        policy: Policy = Policy.HOLD,
        layout: Layout = STANDARD,
        deliver: bool = True,
        run_id: str | None = None,
    ) -> Night:
        self.nights += 1
        run_id = run_id or f"run-{self.nights:03d}"
        source = numbered(rows)
        plan = make_plan(self.store, iter(source), layout, feed=self.feed, kind=kind, policy=policy)
        sent = list(plan.rows_to_send(iter(source)))
        committed = None
        if deliver:
            committed = commit_plan(self.store, plan, self.run_record(run_id, plan), iter(source))
        return Night(plan, sent, committed)

    def run_record(self, run_id: str, plan: Plan | None = None) -> RunRecord:
        counts = plan.report()["counts"] if plan else {}
        return RunRecord(run_id, f"exports/{run_id}.csv", "v1", "0" * 64, f"reports/{run_id}.json", counts)

    def items(self) -> list[dict[str, Any]]:
        """Every item in the table, sorted, for comparing whole ledgers."""
        client = self.store.client
        items: list[dict[str, Any]] = []
        for page in client.get_paginator("scan").paginate(TableName=self.store.table, ConsistentRead=True):
            items.extend(page["Items"])
        return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))

    def record(self, key: tuple[str, str, str, str]) -> dict[str, Any] | None:
        wanted = "\t".join(key)
        return next((item for item in self.items() if item["sk"]["S"] == wanted), None)
