"""Reconcile: compare what Illuminate holds (its own report of program records) with what the ledger says.

Four kinds of finding, each naming the records involved:

(a) ``duplicates``: Illuminate holds the same student and program (leading zeros folded, as ``family``
    folds them) open more than once, or under date ranges that overlap.  Only a person can fix that in
    Illuminate: each finding says which record to keep (below) and which to delete.
(b) ``exits_not_landed``: a record open in Illuminate that the ledger says a bridge run exited: the exit
    row never landed.  A row can fix that: an exit row with the exact key Illuminate holds and the end date
    the SIS gave (the ledger's ``end_date``, looked up for these records only, ``fix_rows``).  A record the
    ledger learned was closed from an earlier Illuminate report (a seed run) is listed, not fixed: Illuminate
    itself said it was closed, so it was reopened there since.
(c) ``dropped_by_import``: a record a bridge run sent (its ``last_run`` is not a seed run; open or closed)
    that the report does not list: Illuminate's import dropped it.  A report may cover some programs or
    schools only, so only records whose Program ID *and* Site ID both occur in the report are considered.
(d) ``entered_by_hand``: a record the report lists that the ledger never heard of: information only.

(b) also ``open_not_exported``: a record open in Illuminate, and open in the ledger, that the latest full
    export no longer lists (the commit of a full export marks the records it left out, ``missing_run``, and
    the commit of one that lists them again clears the mark).  The SIS ended or dropped it without an exit
    row, so no row can fix it: a person finds out which and exits it.

Which record of a duplicate to keep: the one the SIS stands behind, i.e. the one a bridge run changed
last (run ids sort by time); failing that a record the ledger learned from a seed; failing that the
earliest start date, then the first report line.  The others are to delete.  When the ledger holds more
than one of them open as sent by the bridge, the SIS itself lists them all (a concurrent enrolment, or a
duplicate in the SIS too), and the finding says to check the SIS before deleting anything.

Memory, for a million report rows against a million-record ledger: the report's rows are walked once;
per row 20 bytes of packed arrays (family hash, ledger ordinal, line, end date), plus the key text of the
rows the ledger does not know; per ledger record one byte (listed or not).  Families seen twice are found
with a 16 MiB bitset of hash slots, so only their rows (and a few false suspects) are ever grouped.
Findings are listed up to ``LIST_LIMIT`` each; counts are always complete.  Pure: no I/O here.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, islice
from typing import Any

from programs_bridge.convert.headers import PERSON_FIELDS
from programs_bridge.ledger.model import Row, decode_key, encode_key, family, is_seed_run, key_json
from programs_bridge.ledger.snapshot import LedgerSnapshot
from programs_bridge.programs_txt.layout import Field, Layout, record_key

#: Findings of each kind listed by key; counts are always exact.
LIST_LIMIT = 1000
#: Keys asked of the ledger at once for the fix file's end dates (BatchGetItem takes at most 100).
END_DATE_BATCH = 100
#: What an open record's end "date" sorts as: after every real date.
OPEN_END = 99_999_999

_SLOT_BITS = 27  # a 16 MiB bitset: ~0.7% false suspects at a million families
_SLOTS = (1 << _SLOT_BITS) - 1


def day_number(date: str) -> int:
    """``MM/DD/YYYY`` (the converter's form) as YYYYMMDD, so dates compare as integers; 0 when empty."""
    if len(date) != 10:
        return 0
    try:
        return int(date[6:10] + date[0:2] + date[3:5])
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True)
class Member:
    """One record of a duplicate: its report line and where its key lives (``ref``, see ``Reconciliation``)."""

    line: int
    ref: int
    start: int
    end: int

    @property
    def is_open(self) -> bool:
        return self.end == OPEN_END


@dataclass(frozen=True, slots=True)
class Duplicate:
    kind: str  # "open_twice" | "overlapping"
    members: tuple[Member, ...]
    keep: Member
    #: How many members the ledger holds open as a bridge run last sent them (>1: check the SIS first).
    sis_open: int


@dataclass
class Reconciliation:
    """The findings of one report against one snapshot; lists capped at ``limit``, counts complete.

    A ``ref`` locates a report row's key: ``>= 0`` is the ledger ordinal, ``< 0`` is ``-1 - i`` for the i-th
    key the ledger does not know (kept in ``unknown_keys``).
    """

    snapshot: LedgerSnapshot
    limit: int = LIST_LIMIT
    rows: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    duplicates: list[Duplicate] = field(default_factory=list)
    #: (line, ordinal, fixable) of each record open in Illuminate that the ledger says was exited.
    exits_not_landed: list[tuple[int, int, bool]] = field(default_factory=list)
    #: (line, ordinal) of each record open in Illuminate and the ledger that the latest full export left out.
    open_not_exported: list[tuple[int, int]] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)  # ledger ordinals
    entered_by_hand: list[tuple[int, int]] = field(default_factory=list)  # (line, ref)
    unknown_keys: list[str] = field(default_factory=list)
    program_ids: set[str] = field(default_factory=set)
    site_ids: set[str] = field(default_factory=set)

    def key_text(self, ref: int) -> str:
        return self.snapshot.keys[ref] if ref >= 0 else self.unknown_keys[-1 - ref]

    @property
    def findings(self) -> int:
        """Findings that need someone to act: (a), (b) and (c); (d) is information."""
        c = self.counts
        return c["duplicates"] + c["exits_not_landed"] + c["open_not_exported"] + c["dropped_by_import"]

    @property
    def matched_none(self) -> bool:
        """Not one of the report's records is in the ledger, which holds some: far likelier another feed's
        report, or one read in another layout (so no key compares equal), than a district whose every record
        was entered by hand."""
        return self.rows > 0 and len(self.snapshot) > 0 and self.counts["entered_by_hand"] == self.rows

    def to_json(self) -> dict[str, Any]:
        """The reconcile section of the report.  It names record keys: it goes to the district's bucket."""
        limit = self.limit
        names = (
            "duplicates", "duplicate_records", "exits_not_landed", "exits_fixable", "open_not_exported",
            "dropped_by_import", "entered_by_hand",
        )  # fmt: skip
        return {
            "rows": self.rows,
            "ledger_records": len(self.snapshot),
            "ledger_head_run": self.snapshot.head_run,
            "matched_none": self.matched_none,
            "counts": {name: self.counts[name] for name in names},
            "duplicates": [self._duplicate_json(d) for d in self.duplicates[:limit]],
            "exits_not_landed": [self._exit_json(*e) for e in self.exits_not_landed[:limit]],
            "open_not_exported": [
                {"line": line, "key": key_json(self.snapshot.key(ordinal))}
                for line, ordinal in self.open_not_exported[:limit]
            ],
            "dropped_by_import": [self._dropped_json(o) for o in self.dropped[:limit]],
            "dropped_by_import_scope": {
                "program_ids": sorted(self.program_ids),
                "site_ids": sorted(self.site_ids),
                "rule": "only ledger records whose Program ID and Site ID both occur in the report are compared",
            },
            "entered_by_hand": [
                {"line": line, "key": key_json(decode_key(self.key_text(ref)))}
                for line, ref in self.entered_by_hand[:limit]
            ],
            "listed_limit": limit,
            "truncated": {
                "duplicates": self.counts["duplicates"] > limit,
                "exits_not_landed": self.counts["exits_not_landed"] > limit,
                "open_not_exported": self.counts["open_not_exported"] > limit,
                "dropped_by_import": self.counts["dropped_by_import"] > limit,
                "entered_by_hand": self.counts["entered_by_hand"] > limit,
            },
        }

    def _member_json(self, member: Member) -> dict[str, Any]:
        data: dict[str, Any] = {
            "line": member.line,
            "key": key_json(decode_key(self.key_text(member.ref))),
            "open_in_illuminate": member.is_open,
        }
        if member.ref >= 0:
            data["ledger"] = {
                "state": "open" if self.snapshot.is_open(member.ref) else "closed",
                "last_run": self.snapshot.last_run(member.ref),
            }
        else:
            data["ledger"] = None
        return data

    def _duplicate_json(self, duplicate: Duplicate) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": duplicate.kind,
            "records": [self._member_json(m) for m in duplicate.members],
            "keep": {"line": duplicate.keep.line, "key": key_json(decode_key(self.key_text(duplicate.keep.ref)))},
            "delete": [
                {"line": m.line, "key": key_json(decode_key(self.key_text(m.ref)))}
                for m in duplicate.members
                if m is not duplicate.keep
            ],
        }
        if duplicate.sis_open > 1:
            data["check_sis_first"] = (
                f"the ledger holds {duplicate.sis_open} of these open as the SIS last sent them: the SIS lists "
                "them all (a concurrent enrolment, or a duplicate in the SIS too); check there before deleting"
            )
        return data

    def _exit_json(self, line: int, ordinal: int, fixable: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "line": line,
            "key": key_json(self.snapshot.key(ordinal)),
            "exited_by_run": self.snapshot.last_run(ordinal),
            "fixable": fixable,
        }
        if not fixable:
            data["reason"] = (
                "the ledger learned it was closed from an earlier Illuminate report (a seed run): it was "
                "reopened in Illuminate since, so no exit row is written"
            )
        return data

    def _dropped_json(self, ordinal: int) -> dict[str, Any]:
        return {
            "key": key_json(self.snapshot.key(ordinal)),
            "state": "open" if self.snapshot.is_open(ordinal) else "closed",
            "last_run": self.snapshot.last_run(ordinal),
        }


def reconcile(
    rows: Iterable[Row],
    layout: Layout,
    snapshot: LedgerSnapshot,
    *,
    on_exit_not_landed: Callable[[Row], object] | None = None,
    limit: int = LIST_LIMIT,
) -> Reconciliation:
    """Compare the converted rows of Illuminate's report with ``snapshot``; the rows are walked once.

    ``on_exit_not_landed`` receives every (b) row a fix row can mend (the report row as converted), so the
    caller can spool them for ``fix_rows`` without this function holding them.
    """
    result = Reconciliation(snapshot, limit)
    counts = result.counts
    end_position = layout.index(Field.PROGRAM_END_DATE)
    find = snapshot.ordinals.get
    open_flags, missing_flags = snapshot.open_flags, snapshot.missing_flags
    last_runs = snapshot.last_run_index
    seed_runs = bytes(1 if is_seed_run(run) else 0 for run in snapshot.runs)
    seen = bytearray(len(snapshot))
    bits = bytearray(1 << (_SLOT_BITS - 3))
    suspects: set[int] = set()
    family_hashes = array("q")
    refs = array("i")
    lines = array("i")
    ends = array("I")
    programs, sites, unknown = result.program_ids, result.site_ids, result.unknown_keys

    for line, fields in rows:
        key = record_key(fields, layout)
        key_text = encode_key(key)
        programs.add(key[1])
        sites.add(key[3])
        end = fields[end_position] if end_position is not None else ""
        family_hash = hash(family(key))
        slot = family_hash & _SLOTS
        if bits[slot >> 3] & (1 << (slot & 7)):
            suspects.add(family_hash)
        else:
            bits[slot >> 3] |= 1 << (slot & 7)
        ordinal = find(key_text)
        if ordinal is None:
            ref = -1 - len(unknown)
            unknown.append(key_text)
            counts["entered_by_hand"] += 1
            if len(result.entered_by_hand) < limit:
                result.entered_by_hand.append((line, ref))
        else:
            ref = ordinal
            seen[ordinal] = 1
            if not end and not open_flags[ordinal]:
                fixable = not seed_runs[last_runs[ordinal]]
                counts["exits_not_landed"] += 1
                if len(result.exits_not_landed) < limit:
                    result.exits_not_landed.append((line, ordinal, fixable))
                if fixable:
                    counts["exits_fixable"] += 1
                    if on_exit_not_landed is not None:
                        on_exit_not_landed((line, fields))
            elif not end and missing_flags[ordinal]:
                counts["open_not_exported"] += 1
                if len(result.open_not_exported) < limit:
                    result.open_not_exported.append((line, ordinal))
        family_hashes.append(family_hash)
        refs.append(ref)
        lines.append(line)
        ends.append(day_number(end) if end else OPEN_END)
    result.rows = len(refs)
    del bits

    _find_duplicates(result, family_hashes, refs, lines, ends, suspects)
    _find_dropped(result, seen, seed_runs)
    return result


def _find_duplicates(
    result: Reconciliation, family_hashes: array[int], refs: array[int], lines: array[int], ends: array[int],
    suspects: set[int],
) -> None:  # fmt: skip
    """Group the rows of families seen more than once, exactly (by family text), and sweep each by date."""
    if not suspects:
        return
    groups: dict[str, list[Member]] = {}
    picked = compress(range(len(refs)), map(suspects.__contains__, family_hashes))
    for row in picked:
        key = decode_key(result.key_text(refs[row]))
        member = Member(lines[row], refs[row], day_number(key[2]), ends[row])
        groups.setdefault(family(key), []).append(member)
    found: list[Duplicate] = []
    for members in groups.values():
        if len(members) > 1:
            found.extend(_clusters(result, members))
    found.sort(key=lambda d: min(m.line for m in d.members))
    result.counts["duplicates"] = len(found)
    result.counts["duplicate_records"] = sum(len(d.members) for d in found)
    result.duplicates = found[: result.limit]


def _clusters(result: Reconciliation, members: list[Member]) -> Iterator[Duplicate]:
    """Records of one family whose date ranges overlap, transitively: each cluster of two or more is one
    duplicate.  Two records starting the same day overlap whatever their ends; an open record never ends."""
    members.sort(key=lambda m: (m.start, m.line))
    cluster = [members[0]]
    reach = members[0].end
    for member in members[1:]:
        if member.start < reach or member.start == cluster[-1].start:
            cluster.append(member)
            reach = max(reach, member.end)
            continue
        if len(cluster) > 1:
            yield _duplicate(result, cluster)
        cluster, reach = [member], member.end
    if len(cluster) > 1:
        yield _duplicate(result, cluster)


def _duplicate(result: Reconciliation, cluster: list[Member]) -> Duplicate:
    snapshot = result.snapshot
    sent = [m for m in cluster if m.ref >= 0 and not is_seed_run(result.snapshot.last_run(m.ref))]
    if sent:
        keep = max(sent, key=lambda m: (result.snapshot.last_run(m.ref), -m.start, -m.line))
    else:
        # Learnt from a seed and unchanged since: of the ones open in the ledger, the latest full export still
        # lists those not marked missing (a row it sends every night writes nothing; only open records are
        # ever marked), so the SIS stands behind them.  Failing that, open before closed (deleting every open
        # record would end an enrolment the SIS may hold), then a seeded record before one entered by hand.
        listed = [m for m in cluster if m.ref >= 0 and snapshot.is_open(m.ref) and not snapshot.missing_flags[m.ref]]
        keep = min(listed or cluster, key=lambda m: (not m.is_open, m.ref < 0, m.start, m.line))
    sis_open = sum(1 for m in sent if snapshot.is_open(m.ref))
    kind = "open_twice" if sum(1 for m in cluster if m.is_open) > 1 else "overlapping"
    members = tuple(sorted(cluster, key=lambda m: m.line))
    return Duplicate(kind, members, keep, sis_open)


def _find_dropped(result: Reconciliation, seen: bytearray, seed_runs: bytes) -> None:
    """Ledger records a bridge run sent that the report does not list, within the report's programs and sites."""
    snapshot = result.snapshot
    last_runs = snapshot.last_run_index
    programs, sites = result.program_ids, result.site_ids
    ordinal = seen.find(0)
    while ordinal != -1:
        if not seed_runs[last_runs[ordinal]]:
            _student, program, _start, site = snapshot.key(ordinal)
            if program in programs and site in sites:
                result.counts["dropped_by_import"] += 1
                if len(result.dropped) < result.limit:
                    result.dropped.append(ordinal)
        ordinal = seen.find(0, ordinal + 1)


# -- the fix file ------------------------------------------------------------------------------------------


@dataclass
class FixCounts:
    """What went into the fix file, and what could not (listed by report line, capped like the findings)."""

    rows: int = 0
    #: The report row lacks a name or the birth date, which a programs.txt for Illuminate needs.
    no_person: list[int] = field(default_factory=list)
    no_person_count: int = 0
    #: The ledger holds the record closed but without an end date (should not happen).
    no_end_date: list[int] = field(default_factory=list)
    no_end_date_count: int = 0

    def left_out(self) -> str:
        """``; N left out because ...`` for each reason an exit that never landed has no row, or ``""``: said
        wherever the fix file's row count is, so a file of 0 rows is never left unexplained."""
        said = ""
        if self.no_person_count:
            said += (
                f"; {self.no_person_count:,} left out because the report has no names or birth date for them "
                "(take the report with Last Name, First Name and Birth Date)"
            )
        if self.no_end_date_count:
            said += f"; {self.no_end_date_count:,} left out: the ledger holds no end date for them"
        return said

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "skipped_no_name_or_birth_date": self.no_person_count,
            "skipped_no_name_or_birth_date_lines": self.no_person[:LIST_LIMIT],
            "skipped_no_end_date": self.no_end_date_count,
            "skipped_no_end_date_lines": self.no_end_date[:LIST_LIMIT],
        }


def can_fix(layout: Layout) -> bool:
    """An exit row needs a Program End Date column to carry the end date."""
    return layout.index(Field.PROGRAM_END_DATE) is not None


def exit_row(fields: Sequence[str], layout: Layout, end_date: str) -> list[str]:
    """The report row with the end date the SIS gave: its key stays exactly the key Illuminate holds."""
    position = layout.index(Field.PROGRAM_END_DATE)
    if position is None:
        raise ValueError(f"layout {layout.name!r} has no Program End Date column")
    out = list(fields)
    out[position] = end_date
    return out


def fix_rows(
    spooled: Iterable[Row],
    layout: Layout,
    end_dates: Callable[[list[str]], Mapping[str, str]],
    counts: FixCounts,
    *,
    batch: int = END_DATE_BATCH,
) -> Iterator[Row]:
    """Exit rows for the (b) rows ``reconcile`` handed out, ``batch`` at a time: ``end_dates`` (the store's
    ``record_end_dates`` for the feed) is asked for the ledger's end date of each batch's keys only."""
    person = [p for p in (layout.index(f) for f in PERSON_FIELDS) if p is not None]
    rows = iter(spooled)
    while chunk := list(islice(rows, batch)):
        complete = []
        for line, fields in chunk:
            if all(fields[p] for p in person):
                complete.append((line, fields, encode_key(record_key(fields, layout))))
            else:
                counts.no_person_count += 1
                if len(counts.no_person) < LIST_LIMIT:
                    counts.no_person.append(line)
        dates = end_dates([key for _, _, key in complete]) if complete else {}
        for line, fields, key in complete:
            end = dates.get(key, "")
            if not end:
                counts.no_end_date_count += 1
                if len(counts.no_end_date) < LIST_LIMIT:
                    counts.no_end_date.append(line)
                continue
            counts.rows += 1
            yield line, exit_row(fields, layout, end)
