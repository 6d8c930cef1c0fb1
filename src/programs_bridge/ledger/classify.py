"""The pure classification: rows of this file against the feed's ledger, one decision per row and record.

One pass over the rows (they are streamed and may be walked once).  A row whose key is unknown but whose
student and program have an open record elsewhere is only a *candidate* duplicate risk until the pass ends,
because the same file may exit that record further down: a transfer done right sends the old key with an
end date and the new key without one, and both rows are right.

In a full export the same file may also list that open record itself, still open: then the SIS holds both
records (a concurrent enrolment at a second site), and the row, if it is open too, is sent as ``new`` with
a warning (``ConcurrentEnrolment``) instead of being held.  A delta export lists only changes, so an open
record it does not list proves nothing and the candidate stays a duplicate risk there.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

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

#: What this file did to each ledger record, one byte a record (``seen``): not listed; listed with an end
#: date that closes nothing (a closed record listed closed); listed with no end date (sent still open);
#: exited by this file.  An exit sticks, whatever else the file says about the key (the converter sends one
#: row per key, so that never happens in practice).
_UNSEEN, _SEEN, _LISTED_OPEN, _EXITED = 0, 1, 2, 3


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


@dataclass(frozen=True, slots=True)
class ConcurrentEnrolment:
    """A row sent as ``new`` although its student and program have open records under other keys, because the
    same full export lists every one of those records still open: the SIS holds both (a second site).  A
    warning for the clerk, not a risk; ``matches`` are the open records listed beside it."""

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
    #: ``new`` rows sent beside an open record the same full export lists (warnings; not a ``Decision``, so
    #: not in ``counts``, whose names the run report relies on).
    concurrent: list[ConcurrentEnrolment] = field(default_factory=list)

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
    candidates: list[tuple[int, int, RecordKey, bool, list[int]]] = []
    for position, (line, fields) in enumerate(rows):
        facts = row_facts(fields, layout)
        ordinal = snapshot.find(facts.key_text)
        if ordinal is None:
            matches = families.open_records(facts.key)
            if matches:
                candidates.append((position, line, facts.key, facts.is_open, matches))
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
            if seen[ordinal] != _EXITED:
                listed = _LISTED_OPEN if facts.is_open else _SEEN
                seen[ordinal] = _EXITED if decision is Decision.EXIT else listed
        decisions.append(DECISION_CODE[decision])

    risks, concurrent = _resolve(candidates, snapshot, seen, decisions, kind)
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
    return Classification(decisions, risks, missing, counts, concurrent)


def _resolve(
    candidates: list[tuple[int, int, RecordKey, bool, list[int]]],
    snapshot: LedgerSnapshot,
    seen: bytearray,
    decisions: bytearray,
    kind: ExportKind,
) -> tuple[list[DuplicateRisk], list[ConcurrentEnrolment]]:
    """Turn candidates into duplicate risks or concurrent enrolments, now that the whole file is known.

    The open records a candidate matches are sorted out by what the file did to them:

    - *exited* by this file: not open any more (a transfer); they drop out;
    - *listed still open* by a **full** export (a row with exactly that key and no end date, unchanged or
      updated): the SIS holds that record beside the candidate's, so the candidate cannot be its duplicate;
    - *not listed*: the open record the candidate may be a re-keyed copy of.

    An open candidate (no end date) whose every remaining match is listed still open is a concurrent
    enrolment: it stays ``new`` (sent) and the listed records are named in a warning.  If any match is not
    listed, the candidate is a duplicate risk naming only the unlisted matches: those are what it would
    duplicate (and what ``repair`` may re-key it onto), while re-keying it onto a record the file sends with
    its own row would give the file two rows of one key.  A candidate that brings an end date is not a
    concurrent enrolment (two records *open* at once) but the mis-keyed exit this check exists for, so when
    every match is listed it is still a risk, naming them all, as before.  A delta export proves nothing by
    leaving a record out, so there every remaining match is named, as before.
    """
    risks = []
    concurrent = []
    full = kind is ExportKind.FULL
    for position, line, key, is_open, ordinals in candidates:
        still_open = [ordinal for ordinal in ordinals if seen[ordinal] != _EXITED]
        if not still_open:
            continue  # every record it could be confused with is exited by this same file: a transfer
        unlisted = [ordinal for ordinal in still_open if seen[ordinal] != _LISTED_OPEN] if full else still_open
        named = unlisted or still_open
        matches = tuple(
            OpenMatch(ordinal, snapshot.key(ordinal), differing_fields(key, snapshot.key(ordinal))) for ordinal in named
        )
        if not unlisted and is_open:
            concurrent.append(ConcurrentEnrolment(position, line, key, matches))  # stays ``new``: sent
            continue
        risks.append(DuplicateRisk(position, line, key, matches))
        decisions[position] = DECISION_CODE[Decision.DUPLICATE_RISK]
    return risks, concurrent
