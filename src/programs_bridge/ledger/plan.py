"""Plan a run: read the feed's ledger, classify the file, decide what the policy does.  Writes nothing.

The plan is what the dry-run CLI prints and what the pipeline acts on: ``rows_to_send`` walks the rows again
and yields the programs.txt the policy allows (held rows left out, repaired rows re-keyed), and ``report``
is the JSON-ready section of the run report.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from programs_bridge.ledger.classify import Classification, ConcurrentEnrolment, DuplicateRisk, classify
from programs_bridge.ledger.model import (
    Decision,
    ExportKind,
    Policy,
    RecordKey,
    Row,
    can_rekey,
    check_feed,
    json_ready,
    key_json,
    rekey,
)
from programs_bridge.ledger.snapshot import LedgerSnapshot
from programs_bridge.ledger.store import LedgerError, LedgerStore, Usage
from programs_bridge.programs_txt.layout import Layout

log = logging.getLogger(__name__)

#: How many duplicate risks, concurrent enrolments and missing records the report lists by key; counts are
#: always exact.
REPORT_LIST_LIMIT = 1000


class Action(StrEnum):
    HELD = "held"
    SENT = "sent"
    REPAIRED = "repaired"


@dataclass(frozen=True, slots=True)
class RiskOutcome:
    """What the policy did with one duplicate-risk row, and why (for ``repair`` that fell back to hold)."""

    risk: DuplicateRisk
    action: Action
    reason: str | None = None

    @property
    def repaired_to(self) -> RecordKey | None:
        return self.risk.matches[0].key if self.action is Action.REPAIRED else None


def decide(risk: DuplicateRisk, policy: Policy, layout: Layout) -> RiskOutcome:
    """The policy applied to one duplicate risk.  Repair needs exactly one open record to aim at."""
    if policy is Policy.SEND:
        return RiskOutcome(risk, Action.SENT)
    if policy is Policy.HOLD:
        return RiskOutcome(risk, Action.HELD)
    if len(risk.matches) != 1:
        return RiskOutcome(risk, Action.HELD, f"{len(risk.matches)} open records match; repair needs exactly one")
    if not can_rekey(layout, risk.matches[0].key):
        return RiskOutcome(risk, Action.HELD, "the layout has no Site ID column to carry the open record's site")
    return RiskOutcome(risk, Action.REPAIRED)


@dataclass
class Plan:
    feed: str
    layout: Layout
    kind: ExportKind
    policy: Policy
    snapshot: LedgerSnapshot
    classification: Classification
    read_usage: Usage
    outcomes: dict[int, RiskOutcome]  # by row position
    #: ``missing`` of the run that last committed to the feed (the ledger keeps its counts): records an
    #: earlier export already left out, which the shrink guard (``shrink.py``) does not count again.
    previously_missing: int = 0

    def rows_to_send(self, rows: Iterable[Row]) -> Iterator[Row]:
        """The rows of the final programs.txt: the same rows as planned, with the policy applied.

        Raises LedgerError if ``rows`` are not the rows that were planned (count or a risk's line differ),
        because applying one file's decisions to another would send the wrong records.
        """
        count = 0
        for position, (line, fields) in enumerate(rows):
            count += 1
            outcome = self.outcomes.get(position)
            if outcome is None:
                yield line, fields
                continue
            if outcome.risk.line != line:
                raise LedgerError(f"row {position + 1} is not the row that was planned; plan again")
            if outcome.action is Action.SENT:
                yield line, fields
            elif outcome.repaired_to is not None:
                yield line, rekey(fields, self.layout, outcome.repaired_to)
        if count != self.classification.rows:
            raise LedgerError(f"planned {self.classification.rows} rows but was given {count}; plan again")

    def action_counts(self) -> dict[str, int]:
        counts = {action.value: 0 for action in Action}
        for outcome in self.outcomes.values():
            counts[outcome.action.value] += 1
        return counts

    def report(self, limit: int = REPORT_LIST_LIMIT) -> dict[str, Any]:
        """The ledger section of the run report.  It names record keys: it goes to the district's bucket."""
        classification = self.classification
        risks = list(self.outcomes.values())
        concurrent = classification.concurrent
        missing = classification.missing
        rows = classification.rows
        return {
            "feed": self.feed,
            "export": self.kind.value,
            "policy": self.policy.value,
            "layout": self.layout.name,
            "rows": rows,
            "ledger_records": len(self.snapshot),
            "ledger_head_run": self.snapshot.head_run,
            "counts": json_ready(classification.counts),
            "duplicate_risk_actions": self.action_counts(),
            "rows_to_send": rows - self.action_counts()[Action.HELD.value],
            "duplicate_risks": [_risk_json(outcome) for outcome in risks[:limit]],
            # Warnings: new rows sent beside an open record the same full export lists still open.
            "concurrent_enrolment_count": len(concurrent),
            "concurrent_enrolments": [_concurrent_json(enrolment) for enrolment in concurrent[:limit]],
            "missing": [{"key": key_json(self.snapshot.key(ordinal))} for ordinal in missing[:limit]],
            "listed_limit": limit,
            "truncated": {
                "duplicate_risks": len(risks) > limit,
                "concurrent_enrolments": len(concurrent) > limit,
                "missing": len(missing) > limit,
            },
            "ledger_read": {
                **self.read_usage.to_json(),
                # Strongly consistent, so the plan sees the previous run's whole commit: one unit per 4 KB.
                "consistent": True,
                # What one strongly consistent GetItem per row would have cost, for comparison.
                "per_row_read_units": 1.0 * rows,
            },
        }


def _risk_json(outcome: RiskOutcome) -> dict[str, Any]:
    risk = outcome.risk
    data: dict[str, Any] = {
        "line": risk.line,
        "key": key_json(risk.key),
        "action": outcome.action.value,
        "open_records": [{"key": key_json(m.key), "differs": list(m.differs)} for m in risk.matches],
    }
    if outcome.reason:
        data["reason"] = outcome.reason
    if outcome.repaired_to is not None:
        data["repaired_to"] = key_json(outcome.repaired_to)
    return data


def _concurrent_json(enrolment: ConcurrentEnrolment) -> dict[str, Any]:
    """A concurrent enrolment as the report lists it: keys and the key parts that differ, never a name."""
    return {
        "line": enrolment.line,
        "key": key_json(enrolment.key),
        "open_records": [{"key": key_json(m.key), "differs": list(m.differs)} for m in enrolment.matches],
    }


def plan_rows(
    rows: Iterable[Row],
    layout: Layout,
    snapshot: LedgerSnapshot,
    *,
    feed: str,
    kind: ExportKind = ExportKind.FULL,
    policy: Policy = Policy.HOLD,
    read_usage: Usage | None = None,
    previously_missing: int = 0,
) -> Plan:
    """The pure half of planning: classify ``rows`` against an already-read snapshot and apply the policy."""
    classification = classify(rows, layout, snapshot, kind)
    outcomes = {risk.row: decide(risk, policy, layout) for risk in classification.duplicate_risks}
    usage = read_usage or Usage()
    return Plan(feed, layout, kind, policy, snapshot, classification, usage, outcomes, previously_missing)


def make_plan(
    store: LedgerStore,
    rows: Iterable[Row],
    layout: Layout,
    *,
    feed: str,
    kind: ExportKind = ExportKind.FULL,
    policy: Policy = Policy.HOLD,
) -> Plan:
    """Read the feed's ledger and plan ``rows`` against it (one pass over the rows, no writes).

    For a full export it also reads the ``missing`` count of the run that last committed (one GetItem), the
    baseline the shrink guard compares with."""
    snapshot, usage = store.read_snapshot(check_feed(feed))
    previously_missing = 0
    if kind is ExportKind.FULL and snapshot.head_run is not None:
        previously_missing = store.run_counts(feed, snapshot.head_run, usage).get("missing", 0)
    plan = plan_rows(
        rows, layout, snapshot, feed=feed, kind=kind, policy=policy, read_usage=usage,
        previously_missing=previously_missing,
    )  # fmt: skip
    counts = plan.classification.counts
    log.info(
        "ledger plan: %d rows against %d records; %s",
        plan.classification.rows,
        len(snapshot),
        ", ".join(f"{decision.value}={counts.get(decision, 0)}" for decision in Decision),
    )
    return plan
