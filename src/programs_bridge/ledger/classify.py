"""The pure classification: rows of this file against the feed's ledger, one decision per row and record.

One pass over the rows (they are streamed and may be walked once).  A row whose key is unknown but whose
student and program have an open record elsewhere is only a *candidate* duplicate risk until the pass ends,
because the same file may exit that record further down: a transfer done right sends the old key with an
end date and the new key without one, and both rows are right.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from programs_bridge.ledger.model import (
    DECISION_CODE,
    DECISIONS,
    Decision,
    ExportKind,
    RecordKey,
    Row,
    decode_key,
    differing_fields,
    family,
    row_facts,
)
from programs_bridge.ledger.snapshot import LedgerSnapshot
from programs_bridge.programs_txt.layout import Layout

_UNSEEN, _SEEN, _EXITED = 0, 1, 2


@dataclass(frozen=True, slots=True)
class OpenMatch:
    """An open ledger record a duplicate-risk row would fail to close, and the key parts that differ."""

    ordinal: int
    key: RecordKey
    differs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DuplicateRisk:
    row: int  # 0-based position of the row in the stream
    line: int  # physical source line, for the clerk
    key: RecordKey
    matches: tuple[OpenMatch, ...]


@dataclass
class Classification:
    """Decisions for every row (one byte each, by stream position) and for every vanished record."""

    decisions: bytearray
    duplicate_risks: list[DuplicateRisk]
    missing: array[int]  # ledger ordinals
    counts: Counter[Decision]

    def decision(self, row: int) -> Decision:
        return DECISIONS[self.decisions[row]]

    @property
    def rows(self) -> int:
        return len(self.decisions)


class _FamilyIndex:
    """Open ledger records sorted by family, searched by bisection: 4 bytes a record, not a dict of lists."""

    def __init__(self, snapshot: LedgerSnapshot) -> None:
        keys = snapshot.keys
        opened = (ordinal for ordinal in range(len(keys)) if snapshot.open_flags[ordinal])
        self._keys = keys
        self._order = array("I", sorted(opened, key=lambda ordinal: family(decode_key(keys[ordinal]))))

    def _family(self, ordinal: int) -> str:
        return family(decode_key(self._keys[ordinal]))

    def open_records(self, key: RecordKey) -> list[int]:
        wanted = family(key)
        position = bisect_left(self._order, wanted, key=self._family)
        found = []
        while position < len(self._order) and self._family(self._order[position]) == wanted:
            found.append(self._order[position])
            position += 1
        return found


def classify(
    rows: Iterable[Row], layout: Layout, snapshot: LedgerSnapshot, kind: ExportKind = ExportKind.FULL
) -> Classification:
    families = _FamilyIndex(snapshot)
    seen = bytearray(len(snapshot))
    decisions = bytearray()
    candidates: list[tuple[int, int, RecordKey, list[int]]] = []
    for position, (line, fields) in enumerate(rows):
        facts = row_facts(fields, layout)
        ordinal = snapshot.find(facts.key_text)
        if ordinal is None:
            matches = families.open_records(facts.key)
            if matches:
                candidates.append((position, line, facts.key, matches))
            decision = Decision.NEW
        else:
            was_open = snapshot.is_open(ordinal)
            if was_open and not facts.is_open:
                decision = Decision.EXIT
            elif not was_open and facts.is_open:
                decision = Decision.REOPEN
            elif snapshot.hashes[ordinal] == facts.fields_hash:
                decision = Decision.UNCHANGED
            else:
                decision = Decision.UPDATED
            seen[ordinal] = _EXITED if decision is Decision.EXIT else max(seen[ordinal], _SEEN)
        decisions.append(DECISION_CODE[decision])

    risks = _resolve(candidates, snapshot, seen, decisions)
    named = {match.ordinal for risk in risks for match in risk.matches}
    missing = array("I")
    if kind is ExportKind.FULL:
        missing.extend(
            ordinal
            for ordinal in range(len(snapshot))
            if snapshot.open_flags[ordinal] and seen[ordinal] == _UNSEEN and ordinal not in named
        )
    counts = Counter(DECISIONS[code] for code in decisions)
    counts[Decision.MISSING] = len(missing)
    return Classification(decisions, risks, missing, counts)


def _resolve(
    candidates: list[tuple[int, int, RecordKey, list[int]]],
    snapshot: LedgerSnapshot,
    seen: bytearray,
    decisions: bytearray,
) -> list[DuplicateRisk]:
    """Turn candidates into duplicate risks, now that every exit in the file is known."""
    risks = []
    for position, line, key, ordinals in candidates:
        still_open = [ordinal for ordinal in ordinals if seen[ordinal] != _EXITED]
        if not still_open:
            continue  # every record it could be confused with is exited by this same file: a transfer
        matches = tuple(
            OpenMatch(ordinal, snapshot.key(ordinal), differing_fields(key, snapshot.key(ordinal)))
            for ordinal in still_open
        )
        risks.append(DuplicateRisk(position, line, key, matches))
        decisions[position] = DECISION_CODE[Decision.DUPLICATE_RISK]
    return risks
