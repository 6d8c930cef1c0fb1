"""Plan a run: read the feed's ledger, classify the file, decide what the policy does.  Writes nothing.

The plan is what the dry-run CLI prints and what the pipeline acts on: ``rows_to_send`` walks the rows again
and yields the programs.txt the clerk's resolutions and the policy allow (held rows left out, repaired or
resolved rows re-keyed), and ``report`` is the JSON-ready section of the run report.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

from programs_bridge.ledger.classify import Classification, ConcurrentEnrolment, DuplicateRisk, classify
from programs_bridge.ledger.model import (
    Decision,
    ExportKind,
    PendingChanges,
    Policy,
    RecordKey,
    Row,
    can_rekey,
    check_feed,
    decode_key,
    encode_key,
    json_ready,
    key_json,
    pending_changes,
    rekey,
)
from programs_bridge.ledger.resolutions import Choice, Held, Resolution, lost_zeros, resolution_id
from programs_bridge.ledger.snapshot import LedgerSnapshot
from programs_bridge.ledger.store import LedgerError, LedgerStore, Usage
from programs_bridge.programs_txt.layout import Layout, key_positions, record_key

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
    #: The resolution that decided the row (``new``), instead of the policy.
    resolved_by: str | None = None

    @property
    def repaired_to(self) -> RecordKey | None:
        return self.risk.matches[0].key if self.action is Action.REPAIRED else None


def decide(risk: DuplicateRisk, policy: Policy, layout: Layout, resolution: Resolution | None = None) -> RiskOutcome:
    """The policy applied to one duplicate risk, unless a clerk resolved the row as ``new`` (then it is sent
    whatever the policy).  Repair needs exactly one open record to aim at."""
    if resolution is not None and resolution.choice is Choice.NEW:
        return RiskOutcome(risk, Action.SENT, "resolved as a new record", resolution.id)
    if policy is Policy.SEND:
        return RiskOutcome(risk, Action.SENT)
    if policy is Policy.HOLD:
        return RiskOutcome(risk, Action.HELD)
    if len(risk.matches) != 1:
        return RiskOutcome(risk, Action.HELD, f"{len(risk.matches)} open records match; repair needs exactly one")
    if not can_rekey(layout, risk.matches[0].key):
        return RiskOutcome(risk, Action.HELD, "the layout has no Site ID column to carry the open record's site")
    if lost_zeros(risk.key[0], risk.matches[0].key[0]):
        return RiskOutcome(risk, Action.HELD, "the open record's Import Student ID lost its leading zeros (Excel): "
                           "repair would send the damaged ID; correct the record in Illuminate")  # fmt: skip
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
    #: The feed's resolutions of held rows, by the row's record key (``resolutions.py``).
    resolutions: Mapping[str, Resolution] = field(default_factory=dict)
    #: What the resolutions did before classification (``same`` re-keyed, ``never`` left out).
    resolved: ResolutionTally = field(default_factory=lambda: ResolutionTally())
    #: Ids of ``same`` resolutions not applied: the record they send rows under is no longer in the ledger.
    stale_resolutions: list[str] = field(default_factory=list)
    #: What a seed or an undo left to finish (``make_plan``): a seed cut short, or seeds to repeat after an
    #: undo; the ledger then lacks records Illuminate holds, and an export checked against it could open the
    #: duplicates a seed prevents.
    pending: PendingChanges = field(default_factory=PendingChanges)

    def rows_to_send(self, rows: Iterable[Row]) -> Iterator[Row]:
        """The rows of the final programs.txt: the same rows as planned, with the resolutions and the policy
        applied.

        Raises LedgerError if ``rows`` are not the rows that were planned (count or a risk's line differ),
        because applying one file's decisions to another would send the wrong records.
        """
        count = 0
        blocked = self.resolved.blocked()
        for position, (line, fields) in enumerate(apply_resolutions(rows, self.layout, self.resolutions)):
            count += 1
            if position in blocked:
                continue  # re-keyed onto a key this file also lists itself: sending both would repeat the key
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

    def held(self, run_id: str) -> Iterator[Held]:
        """The rows this plan holds, for the ledger to remember until a clerk resolves them."""
        for outcome in self.outcomes.values():
            if outcome.action is Action.HELD:
                risk = outcome.risk
                matches = tuple(encode_key(m.key) for m in risk.matches)
                yield Held(_risk_id(risk), encode_key(risk.key), matches, risk.line, run_id)

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
        blocked = self.resolved.blocked()
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
            "ledger_unfinished_run": self.pending.unfinished,
            "ledger_seeds_to_repeat": list(self.pending.seeds_to_repeat),
            "counts": json_ready(classification.counts),
            "duplicate_risk_actions": self.action_counts(),
            "rows_to_send": rows - self.action_counts()[Action.HELD.value] - len(blocked),
            "duplicate_risks": [_risk_json(outcome) for outcome in risks[:limit]],
            # Rows a clerk's resolution decided: re-keyed onto the open record, left out, or sent as new.
            "resolved": {
                Choice.SAME.value: self.resolved.counts[Choice.SAME.value] - len(blocked),
                Choice.NEVER.value: self.resolved.counts[Choice.NEVER.value],
                Choice.NEW.value: sum(1 for outcome in risks if outcome.resolved_by is not None),
            },
            # Risks whose open record is this row's key with the Student ID's leading zeros stripped: the ledger
            # learned Excel-damaged IDs (a seed from a report saved in Excel), to be seeded again padded.
            "zeros_lost_in_ledger": sum(
                1 for o in risks if any(lost_zeros(o.risk.key[0], m.key[0]) for m in o.risk.matches)
            ),
            # ``same`` rows left out: the file lists the open record's key itself, open or not.
            "resolutions_not_applied": [
                {
                    "line": line,
                    "reason": "this file also lists the open record the row was resolved onto, under "
                    "its own key: both cannot be sent; the row is left out (correct the SIS, or resolve it again)",
                }
                for line in sorted(blocked.values())[:limit]
            ],
            # ``same`` resolutions whose open record left the ledger (an unseed took it out): their rows are
            # planned as they are, held again if they are still a risk, to be resolved again.
            "resolutions_stale": self.stale_resolutions[:limit],
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
        "id": _risk_id(risk),
        "key": key_json(risk.key),
        "action": outcome.action.value,
        "open_records": [{"key": key_json(m.key), "differs": list(m.differs)} for m in risk.matches],
    }
    if outcome.reason:
        data["reason"] = outcome.reason
    if outcome.repaired_to is not None:
        data["repaired_to"] = key_json(outcome.repaired_to)
    if outcome.resolved_by is not None:
        data["resolved_by"] = outcome.resolved_by
    return data


def _risk_id(risk: DuplicateRisk) -> str:
    """The held row's resolution id: its record key's, the same every night."""
    return resolution_id(encode_key(risk.key))


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
    resolutions: Mapping[str, Resolution] | None = None,
) -> Plan:
    """The pure half of planning: apply the resolutions, classify ``rows`` against an already-read snapshot
    and apply the policy."""
    resolutions = resolutions or {}
    # A ``same`` names the open record the row was confused with when it was resolved.  Once that record has
    # left the ledger (``ledger unseed``), re-keying onto it would send a key nobody vouches for: the row is
    # planned as it is instead, and held again if it is still a risk.
    stale = sorted(
        r.id for r in resolutions.values() if r.choice is Choice.SAME and snapshot.find(r.target_key) is None
    )
    if stale:
        resolutions = {key: r for key, r in resolutions.items() if r.id not in stale}
    resolved = ResolutionTally()
    classification = classify(apply_resolutions(rows, layout, resolutions, resolved), layout, snapshot, kind)
    outcomes = {
        risk.row: decide(risk, policy, layout, resolutions.get(encode_key(risk.key)))
        for risk in classification.duplicate_risks
    }
    usage = read_usage or Usage()
    return Plan(feed, layout, kind, policy, snapshot, classification, usage, outcomes, previously_missing,
                resolutions, resolved, stale)  # fmt: skip


@dataclass
class ResolutionTally:
    """What ``apply_resolutions`` did to one file: counts by choice, and where ``same`` re-keyed rows."""

    counts: Counter[str] = field(default_factory=Counter)
    #: target key -> [(position, line)] of the rows re-keyed onto it
    rekeyed: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    #: target keys that a row of the file carries itself
    listed: set[str] = field(default_factory=set)

    def blocked(self) -> dict[int, int]:
        """position -> line of the re-keyed rows whose target the file also lists: left out, since the key
        would be in programs.txt twice (and Illuminate keeps the later row)."""
        return {pos: line for target, rows in self.rekeyed.items() if target in self.listed for pos, line in rows}


def apply_resolutions(
    rows: Iterable[Row], layout: Layout, resolutions: Mapping[str, Resolution], tally: ResolutionTally | None = None
) -> Iterator[Row]:
    """The rows with the clerk's decisions applied, before anything is classified (pure).

    ``same``: the row goes under the open record's key (``rekey``), on this night and every later one, so its
    exit lands on that record even after the record is closed; ``never``: the row is left out (and counted);
    ``new``: unchanged here, and sent by ``decide`` whatever the policy.  No resolutions: the rows as they are.
    ``tally`` learns what was done, including re-keyed rows whose target the file lists itself
    (``ResolutionTally.blocked``), which ``rows_to_send`` then leaves out.
    """
    if not resolutions:
        yield from rows
        return
    tally = tally if tally is not None else ResolutionTally()
    targets = {r.target_key for r in resolutions.values() if r.choice is Choice.SAME}
    # A handful of resolutions against a million rows: only a row of one of their students can need one, and
    # its student ID is one index away, where its whole key is five.
    students = {decode_key(key)[0] for key in (*resolutions, *targets)}
    student_at = key_positions(layout)[0]
    position = 0
    for line, fields in rows:
        if fields[student_at] not in students:
            yield line, fields
            position += 1
            continue
        key_text = encode_key(record_key(fields, layout))
        if key_text in targets:
            tally.listed.add(key_text)
        resolution = resolutions.get(key_text)
        if resolution is not None and resolution.choice is not Choice.NEW:
            tally.counts[resolution.choice.value] += 1
            if resolution.choice is Choice.NEVER:
                continue
            target = decode_key(resolution.target_key)
            if can_rekey(layout, target):
                tally.rekeyed.setdefault(resolution.target_key, []).append((position, line))
                fields = rekey(fields, layout, target)
        yield line, fields
        position += 1


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
    resolutions = {r.row_key: r for r in store.resolutions(feed, usage)}
    previously_missing = 0
    if kind is ExportKind.FULL and snapshot.head_run is not None:
        previously_missing = store.run_counts(feed, snapshot.head_run, usage).get("missing", 0)
    plan = plan_rows(
        rows, layout, snapshot, feed=feed, kind=kind, policy=policy, read_usage=usage,
        previously_missing=previously_missing, resolutions=resolutions,
    )  # fmt: skip
    plan.pending = pending_changes(snapshot.head_run, partial(store.run_statuses, feed))
    counts = plan.classification.counts
    log.info(
        "ledger plan: %d rows against %d records; %s",
        plan.classification.rows,
        len(snapshot),
        ", ".join(f"{decision.value}={counts.get(decision, 0)}" for decision in Decision),
    )
    return plan
