"""Record keys, the facts the ledger keeps about a row, and the names of the decisions.

A record key travels as one string (its four parts joined by a tab, which programs.txt can never contain),
because a million 4-tuples of strings cost about twice the memory of a million joined strings.  The other
fields are kept only as a 64-bit hash: the ledger must notice *that* a record changed, never *what* it said.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

from programs_bridge.programs_txt.layout import COLUMNS, KEY_FIELDS, Field, Layout, record_key

#: One row of a converted programs.txt: the physical line of the source it came from, and its fields
#: ordered by the run's Layout.
Row = tuple[int, Sequence[str]]

#: Student, program, start date (``MM/DD/YYYY``), site: Illuminate's record key, normalised by the converter.
RecordKey = tuple[str, str, str, str]

#: Report names of the four key parts, in key order.  The start date is reported as Program Start Date even
#: when Eligibility Start Date stood in for it, because that is the key Illuminate holds.
KEY_NAMES: tuple[str, str, str, str] = (
    Field.IMPORT_STUDENT_ID.value,
    Field.PROGRAM_ID.value,
    Field.PROGRAM_START_DATE.value,
    Field.SITE_ID.value,
)

_SEPARATOR = "\t"
_FEED_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class Decision(StrEnum):
    """What a row (or, for ``missing``, a ledger record) means against what was sent before."""

    NEW = "new"
    UNCHANGED = "unchanged"
    UPDATED = "updated"
    EXIT = "exit"
    DUPLICATE_RISK = "duplicate_risk"
    REOPEN = "reopen"
    MISSING = "missing"


#: Decisions as small integers, so a million rows' decisions fit in a one-byte-per-row ``bytearray``.
DECISIONS: tuple[Decision, ...] = tuple(Decision)
DECISION_CODE: dict[Decision, int] = {decision: code for code, decision in enumerate(DECISIONS)}


class Policy(StrEnum):
    """What a ``duplicate_risk`` row does; chosen per feed."""

    HOLD = "hold"  # left out of programs.txt, reported (default: a held row costs a day, a duplicate costs a clean-up)
    SEND = "send"  # sent anyway, reported
    REPAIR = "repair"  # re-keyed to the one open record it must mean, reported; held when that is ambiguous


class ExportKind(StrEnum):
    """A ``full`` export holds everything the SIS has, so a record it leaves out has vanished; a ``delta`` does not."""

    FULL = "full"
    DELTA = "delta"


def check_feed(feed: str) -> str:
    """Feed names become part of DynamoDB keys; keep them to a safe, separator-free alphabet."""
    if not _FEED_NAME.fullmatch(feed):
        raise ValueError("feed name must be 1-64 characters of letters, digits, '_', '.' or '-'")
    return feed


def encode_key(key: RecordKey) -> str:
    return _SEPARATOR.join(key)


def decode_key(text: str) -> RecordKey:
    student, program, start, site = text.split(_SEPARATOR)
    return (student, program, start, site)


def key_json(key: RecordKey) -> dict[str, str]:
    """A key as the district report shows it (the report goes to the district's own bucket, never to logs)."""
    return dict(zip(KEY_NAMES, key, strict=True))


def family(key: RecordKey) -> str:
    """Student and program with leading zeros folded: the records one row could be confused with.

    Folding zeros makes an Excel-stripped ID (``4521`` for ``004521``) land in the same family, so it is caught
    as a duplicate risk instead of passing as a brand-new student.
    """
    return f"{key[0].lstrip('0')}{_SEPARATOR}{key[1].lstrip('0')}"


def differing_fields(row_key: RecordKey, ledger_key: RecordKey) -> tuple[str, ...]:
    """Names of the key parts that differ: what the clerk must look at to see why the keys do not match."""
    return tuple(name for name, a, b in zip(KEY_NAMES, row_key, ledger_key, strict=True) if a != b)


@dataclass(frozen=True, slots=True)
class RowFacts:
    """What the ledger needs from one row: its key, whether it is open, and a hash of everything else."""

    key: RecordKey
    key_text: str
    end_date: str
    fields_hash: int

    @property
    def is_open(self) -> bool:
        return not self.end_date


@cache
def _other_positions(layout: Layout) -> tuple[int, ...]:
    """Positions of the non-key fields in Illuminate's canonical column order (-1 = the layout leaves it out).

    Hashing in canonical order, not layout order, means re-ordering a district's columns does not make every
    record look updated.
    """
    positions = []
    for column in COLUMNS:
        if column.field in KEY_FIELDS:
            continue
        position = layout.index(column.field)
        positions.append(-1 if position is None else position)
    return tuple(positions)


def fields_hash(fields: Sequence[str], layout: Layout) -> int:
    """A 64-bit BLAKE2b of the other fields; a changed record with an unchanged hash is a 1-in-2**64 event."""
    text = "\x1f".join(fields[p] if p >= 0 else "" for p in _other_positions(layout))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def row_facts(fields: Sequence[str], layout: Layout) -> RowFacts:
    key = record_key(fields, layout)
    end_position = layout.index(Field.PROGRAM_END_DATE)
    end_date = fields[end_position] if end_position is not None else ""
    return RowFacts(key, encode_key(key), end_date, fields_hash(fields, layout))


def can_rekey(layout: Layout, key: RecordKey) -> bool:
    """Whether a row of ``layout`` can carry ``key``: a site-keyed record needs the Site ID column."""
    return not key[3] or layout.index(Field.SITE_ID) is not None


def rekey(fields: Sequence[str], layout: Layout, key: RecordKey) -> list[str]:
    """The row with its key fields rewritten to ``key`` (the ``repair`` policy); check ``can_rekey`` first.

    The start date goes to Program Start Date when the layout has it (it wins over Eligibility Start Date
    in ``record_key``), else to Eligibility Start Date.
    """
    out = list(fields)
    fields_of_key = (Field.IMPORT_STUDENT_ID, Field.PROGRAM_ID, _start_field(layout), Field.SITE_ID)
    for field, value in zip(fields_of_key, key, strict=True):
        position = layout.index(field)
        if position is not None:
            out[position] = value
    return out


def _start_field(layout: Layout) -> Field:
    if layout.index(Field.PROGRAM_START_DATE) is not None:
        return Field.PROGRAM_START_DATE
    return Field.ELIGIBILITY_START_DATE


def json_ready(counts: dict[Decision, int]) -> dict[str, Any]:
    """Counts keyed by decision name, every class present (zero included) so dashboards need no defaults."""
    return {decision.value: counts.get(decision, 0) for decision in DECISIONS}


#: The ``origin`` of a record the ledger learned from Illuminate's own report (``seed.py``), not a delivery.
SEED_ORIGIN = "illuminate-report"


def is_seed_run(run_id: str) -> bool:
    """Whether ``run_id`` is a seed's (``seed.seed_run_id``): a record it first wrote came from Illuminate."""
    return "-seed-" in run_id


def is_unseed_run(run_id: str) -> bool:
    """Whether ``run_id`` is an undo of a seed's (``unseed.unseed_run_id``)."""
    return "-unseed-" in run_id


#: The status of a seed to be seeded again: the undo of another took out records its report may list.
RESEED = "reseed"


def unfinished_change(head_run: str | None, status_of: Callable[[str], str | None]) -> str | None:
    """``head_run`` when it is a seed or an undo of one that was cut short (a crash, Ctrl-C) and so still
    holds the feed head uncommitted: the ledger holds only part of what it should.  ``status_of`` (a run's
    status, ``LedgerStore.run_status`` for one feed: a GetItem) is asked only when the head is a seed's or
    an undo's."""
    if head_run is None or not (is_seed_run(head_run) or is_unseed_run(head_run)):
        return None
    return head_run if status_of(head_run) != "committed" else None


@dataclass(frozen=True)
class PendingChanges:
    """What a seed or an undo left to finish, which every export waits for (``pending_changes``)."""

    #: The seed, or undo of one, that holds the feed head but was cut short: the ledger is half taught.
    unfinished: str | None = None
    #: Seeds marked ``reseed`` by the undo of another: the ledger lacks records their reports may list
    #: (``unseed.py``) until each is seeded again.
    seeds_to_repeat: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.unfinished is not None or bool(self.seeds_to_repeat)


def pending_changes(head_run: str | None, statuses: Callable[[], Mapping[str, str]]) -> PendingChanges:
    """What the feed's last seed or undo left to finish.  Only a seed or an undo leaves anything, and each
    moves the head, so ``statuses`` (every run's status, ``LedgerStore.run_statuses`` for one feed: one
    Query) is asked only when the head is a seed's or an undo's: a nightly commit never pays for it.  A seed
    re-seeded takes the head back, and the others still marked are found from it."""
    if head_run is None or not (is_seed_run(head_run) or is_unseed_run(head_run)):
        return PendingChanges()
    known = statuses()
    repeat = tuple(sorted(run for run, status in known.items() if status == RESEED and is_seed_run(run)))
    return PendingChanges(unfinished_change(head_run, known.get), repeat)
