"""The same record key twice in one file, found without memory that grows with the file.

Illuminate keys a program record on student + program + start date + site.  Two rows with one key in the same
file either say the same thing (merge them: keep one, warn) or contradict each other (Illuminate would keep
whichever came last, silently: reject both and let the clerk decide).  Two rows whose keys differ only in
letter case (Import Student ID ``ab123`` and ``AB123``, or a Program ID) are both sent, with a warning that
Illuminate may take them for one record.

Pass 1 (while converting) hashes each written row's key with Import Student ID and Program ID case-folded,
sets one bit per hash in a fixed 16 MiB bitset and spools the hash and the export line to disk; a row whose
bit is already set makes its hash a *suspect*.  Suspect hashes are kept in a set while there are few of
them, then in a 2 MiB bitset of their own, so pass 1 stays flat however many rows repeat.  A clean file, the
nightly norm, costs one hash and a few bit operations a row.

Only when there are suspects does pass 2 run.  It re-reads the staged rows, picks out the rows with a
suspect hash with C-level iterators (``itertools.compress``; at a million rows a few thousand false
suspects are the norm, and only those reach Python code) and spreads them over temporary *partition*
files by hash, as many as it takes for one partition's tables to fit in ``_PARTITION_BUDGET``.  Each
partition is read once, to learn per exact key its first and second line, its row count and whether all
its rows are identical (a few slots a key, never a list of its rows), per case-folded key its first line
and spelling, and to spool each row's key number; each row is then decided from that spool.  Keys are
compared exactly, so a hash collision can never merge two different records.  A partition that turns out
to hold more distinct keys than its budget (a skewed file) is split in sixteen and each part decided
alone.  The decisions (five integers a decided row) are spooled, merged back into line order and only
then written to the finding log, with the dropped rows marked in a bitmap of one bit a staged row.
Memory is the bitsets, one partition's tables and a few MiB of buffers; disk is about the picked rows'
size, freed partition by partition.
"""

from __future__ import annotations

import heapq
import os
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from itertools import chain, compress, count, islice, repeat
from operator import and_, itemgetter, lshift, rshift
from typing import IO

from programs_bridge.convert.finding_log import FindingLog
from programs_bridge.convert.findings import Finding, error, warning
from programs_bridge.programs_txt.layout import COLUMN_BY_FIELD, KEY_FIELDS, Layout, key_positions, record_keys

_BITS = 1 << 27  # 16 MiB: ~0.7% false suspects at 1M rows, each costing only a little work in pass 2
_SLOTS = _BITS - 1  # a hash's slot is its low 27 bits
_READ_ITEMS = 1 << 16  # spool items per read in pass 2 (even: the spool holds pairs)

_SUSPECTS_IN_SET = 1 << 15  # distinct suspect hashes kept exactly (~2 MB); beyond, a bitset of slots
_SUSPECT_BITS = 1 << 24  # 2 MiB: with a million suspect hashes, ~6% of rows picked for nothing
_SUSPECT_SLOTS = _SUSPECT_BITS - 1

_PARTITION_BUDGET = 12 << 20  # bytes of one partition's tables (pass 1's freed bitset is 16 MiB)
_KEY_COST = 640  # bytes those tables take at most per distinct key, beyond its row text (measured: 600)
_MAX_PARTITIONS = 256  # open files at once; beyond ~5M distinct suspect keys, partitions split themselves
_SPLIT = 16  # parts of a partition that proved too big
_MAX_SPLITS = 4  # a partition split this often is decided whatever it holds (only equal 64-bit hashes)
_CHECK_EVERY = 1 << 12  # new keys between checks of a partition's size
_ROWS_PER_READ = 1 << 12  # rows of a partition's row order held at a time

_BUFFERS = 1 << 20  # bytes of file buffers shared by all partitions, each between these two:
_MIN_BUFFER, _MAX_BUFFER = 1 << 13, 1 << 17

_DECISION = 5  # int32 items per decision: staged row, export line, kind, line referred to, detail
_DECISIONS_BUFFERED = 1 << 11  # decisions held before they are written
_MERGED, _CONFLICT, _CASE = 1, 2, 3

_STUDENT, _PROGRAM = 0, 1  # the key fields whose letter case may differ (the others are digits)
_CASE_LABELS = {
    1 << _STUDENT: COLUMN_BY_FIELD[KEY_FIELDS[_STUDENT]].label,
    1 << _PROGRAM: COLUMN_BY_FIELD[KEY_FIELDS[_PROGRAM]].label,
}

Key = tuple[str, str, str, str]
_STUDENT_OF, _PROGRAM_OF = itemgetter(_STUDENT), itemgetter(_PROGRAM)
_RowKey = tuple[bytes, bytes, bytes, bytes]


class RowSet:
    """Staged row numbers (0-based) as one bit each: 125 KB a million rows, read back in C."""

    def __init__(self, rows: int) -> None:
        self._bits = bytearray((rows + 7) >> 3)
        self._count = 0

    def add(self, index: int) -> None:
        byte, mask = index >> 3, 1 << (index & 7)
        if not self._bits[byte] & mask:
            self._bits[byte] |= mask
            self._count += 1

    def __len__(self) -> int:
        return self._count

    def kept(self) -> Iterator[bool]:
        """One flag per staged row, in order, True for a row *not* in the set, and True forever after the
        last: for ``itertools.compress`` over the staged rows or their export lines."""
        return chain(chain.from_iterable(map(_KEPT.__getitem__, self._bits)), repeat(True))


#: For each byte of a RowSet: the eight "kept" flags of its rows.
_KEPT: tuple[tuple[bool, ...], ...] = tuple(tuple(not byte >> bit & 1 for bit in range(8)) for byte in range(256))


@dataclass
class DuplicateVerdict:
    """What pass 2 decided: the staged rows to drop, and how many were merged and rejected.

    The findings themselves went to the finding log as they were decided, in line order.
    """

    drop: RowSet
    merged: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class PassOne:
    """What pass 1 learnt, all pass 2 needs beside the spool: handed over by ``staging_process``, whose
    process ran pass 1 (its hashes are its own, and they are only ever compared with each other)."""

    rows: int
    repeats: int
    suspects: array[int]
    """The suspect hashes, while they are few; empty when ``suspect_bits`` holds them."""
    suspect_bits: bytes | None


class DuplicateFinder:
    def __init__(self, spool: IO[bytes] | None = None, *, learnt: PassOne | None = None) -> None:
        """``spool``: the file for the (hash, export line) pairs, a temporary file of its own if None.
        ``learnt``: pass 1 ran elsewhere, over ``spool`` (``staging_process``): the finder is ready for pass 2,
        and needs no pass 1 bitset of its own."""
        self._bits = bytearray(_BITS >> 3) if learnt is None else bytearray()
        self._spool: IO[bytes] = tempfile.TemporaryFile() if spool is None else spool  # noqa: SIM115 - close()
        self._suspects: set[int] = set() if learnt is None else set(learnt.suspects)
        self._suspect_bits: bytearray | None = None  # instead of the set, once it holds too many
        if learnt is not None and learnt.suspect_bits is not None:
            self._suspect_bits = bytearray(learnt.suspect_bits)
        self.rows = 0 if learnt is None else learnt.rows
        """Rows added so far."""
        self.repeats = 0 if learnt is None else learnt.repeats
        """Rows whose hash slot was already taken: a repeated key, a case variant or a false suspect."""

    def add(self, keys: Sequence[Key], source_lines: Sequence[int], *, folded: bool = False) -> None:
        """Record a batch of written rows' keys and export lines (call in output order).

        In batches because hashing and spooling then run in C over the whole batch; only the bit test is
        Python, and a loop here costs less than a method call per row (measured: a test-and-set built of
        C-level ``map`` calls is slower, and needs a loop anyway when two keys of a batch share a byte).
        ``folded``: the caller knows every key is its own case-folding (the converter's column path, whose
        Import Student IDs are digits and whose Program IDs it has checked), so the check is skipped.
        """
        digests = list(map(hash, keys if folded else _folded(keys)))
        bits, slots = self._bits, _SLOTS
        repeated = []
        for digest in digests:
            slot = digest & slots
            mask = 1 << (slot & 7)  # the slot's bit in its byte
            if bits[slot >> 3] & mask:
                repeated.append(digest)
            else:
                bits[slot >> 3] |= mask
        if repeated:
            self._suspect(repeated)
        pairs = array("q", bytes(16 * len(digests)))  # the spool interleaves (hash, line), filled in C
        pairs[0::2] = array("q", digests)
        pairs[1::2] = array("q", source_lines)
        pairs.tofile(self._spool)
        self.rows += len(digests)

    def pass_one(self) -> PassOne:
        """What pass 1 learnt, for a finder in another process (``learnt``); the spool is flushed for it."""
        self._spool.flush()
        bits = None if self._suspect_bits is None else bytes(self._suspect_bits)
        return PassOne(self.rows, self.repeats, array("q", self._suspects), bits)

    def _suspect(self, digests: list[int]) -> None:
        self.repeats += len(digests)
        if self._suspect_bits is None:
            self._suspects.update(digests)
            if len(self._suspects) <= _SUSPECTS_IN_SET:
                return
            digests, self._suspects = list(self._suspects), set()
            self._suspect_bits = bytearray(_SUSPECT_BITS >> 3)
        table = self._suspect_bits
        for digest in digests:
            table[(digest & _SUSPECT_SLOTS) >> 3] |= 1 << (digest & 7)

    def is_suspect(self, key: Key) -> bool:
        """Whether pass 2 will look at rows with this key (true of every repeated key)."""
        [digest] = map(hash, _folded([key]))
        return any(self._suspect_flags(array("q", [digest])))

    def _suspect_flags(self, digests: array[int]) -> Iterator[object]:
        """A truth value per hash: is it (possibly) a suspect?  Computed in C, whichever form they are in."""
        table = self._suspect_bits
        if table is None:
            return map(self._suspects.__contains__, digests)
        byte = map(table.__getitem__, map(rshift, map(and_, digests, repeat(_SUSPECT_SLOTS)), repeat(3)))
        return map(and_, byte, map(lshift, repeat(1), map(and_, digests, repeat(7))))

    def _distinct_suspects(self) -> int:
        if self._suspect_bits is None:
            return len(self._suspects)
        table, step = self._suspect_bits, 1 << 16  # a slice at a time: no 2 MiB integer
        return sum(int.from_bytes(table[at : at + step]).bit_count() for at in range(0, len(table), step))

    def source_lines(self) -> Iterator[array[int]]:
        """The export line of every row added, in order, in chunks; read back from the spool."""
        for chunk in self._chunks():
            yield chunk[1::2]

    def _chunks(self) -> Iterator[array[int]]:
        """The spool in chunks of interleaved (key hash, source line) pairs."""
        return _arrays(self._spool, "q", _READ_ITEMS)

    def resolve(
        self, staged_rows: Iterable[bytes], layout: Layout, findings: FindingLog, staged_bytes: int
    ) -> DuplicateVerdict:
        """Pass 2 over the staged rows (UTF-8 lines as written, without header), in the order they were added.

        Writes its findings to ``findings`` in line order; ``staged_bytes`` (the rows' size on disk) sizes
        the partitions.
        """
        verdict = DuplicateVerdict(RowSet(self.rows))
        if not self.repeats:
            return verdict
        self._bits = bytearray()  # pass 1 is over: its bitset goes back before pass 2 builds its tables
        row_bytes = staged_bytes // max(self.rows, 1) or 160
        distinct = self._distinct_suspects()
        # Distinct keys among the rows picked: a suspect hash's rows, the earlier row of another hash it
        # shared a slot with, and (with the bitset) rows that share a suspect's slot by chance.
        keys = 2 * distinct + (self.rows * distinct // _SUSPECT_BITS if self._suspect_bits is not None else 0)
        wanted = -(-keys * (row_bytes + _KEY_COST) // _PARTITION_BUDGET)
        positions = key_positions(layout)
        with ExitStack() as files:
            decisions = _Decisions(files.enter_context(tempfile.TemporaryFile()))
            partitions = _temporary_files(files, max(1, min(wanted, _MAX_PARTITIONS)))
            self._pick(staged_rows, partitions)
            for partition in partitions:
                _decide(partition, positions, decisions, splits=0)
                partition.close()  # its disk space back before the next one is read
            for index, line, kind, referred, detail in decisions.in_line_order():
                if kind == _CASE:
                    findings.add(_case_only(line, referred, detail))
                    continue
                verdict.drop.add(index)
                if kind == _MERGED:
                    verdict.merged += 1
                    findings.add(_merged(line, referred))
                else:
                    verdict.rejected += 1
                    findings.add(_conflict(line, referred, detail))
        return verdict

    def _pick(self, staged_rows: Iterable[bytes], partitions: Sequence[IO[bytes]]) -> None:
        """The rows with a suspect hash, spread over ``partitions`` by hash, each in output order: one
        ``staged row <TAB> export line <TAB> row`` line per row."""
        writes, parts = [file.write for file in partitions], len(partitions)
        rows = iter(staged_rows)
        first = 0
        for chunk in self._chunks():
            digests = chunk[0::2]
            # Hash, row number, source line and bytes of each row whose hash is a suspect, picked in C.
            numbered = zip(digests, count(first), chunk[1::2], islice(rows, len(digests)), strict=False)
            for digest, index, line, raw in compress(numbered, self._suspect_flags(digests)):
                writes[(digest >> 32) % parts](b"%d\t%d\t%b" % (index, line, raw))
            first += len(digests)

    def close(self) -> None:
        self._spool.close()


def _temporary_files(stack: ExitStack, count: int) -> list[IO[bytes]]:
    """``count`` temporary files closed with ``stack``, their buffers together at most about 2 MiB."""
    buffering = max(_MIN_BUFFER, min(_MAX_BUFFER, _BUFFERS // count))
    return [stack.enter_context(tempfile.TemporaryFile(buffering=buffering)) for _ in range(count)]


def keys_of_lines(lines: Sequence[str], positions: tuple[int, int, int, int, int]) -> list[Key]:
    """``layout.record_keys`` of rendered rows (without their line ends): how ``staging_process`` learns the
    keys of the rows it is sent as text.  Every rendered row has the layout's width, so the split rows
    transpose into its columns."""
    columns = list(zip(*map(str.split, lines, repeat("\t")), strict=True))
    return record_keys(columns, positions, len(lines))


def _folded(keys: Sequence[Key]) -> Sequence[Key]:
    """The keys as pass 1 hashes them: Import Student ID and Program ID case-folded, so that keys which
    differ only in letter case share a hash (and a partition in pass 2).  Most batches have no letter in
    either (digits are their own folding, and an unchanged tuple hashes alike), so a batch is folded only
    when one C-level check of all its IDs finds a letter that folding changes."""
    text = "".join(map(_STUDENT_OF, keys)) + "".join(map(_PROGRAM_OF, keys))
    if (text.isascii() and text.isdigit()) or text.casefold() == text:
        return keys
    return [(student.casefold(), program.casefold(), start, site) for student, program, start, site in keys]


# --- one partition ---------------------------------------------------------------------------------------


class _TooManyKeys(Exception):
    """A partition holds more distinct keys than its budget: split it."""


_Row = tuple[bytes, bytes, bytes, _RowKey, object]


def _rows(partition: IO[bytes], positions: tuple[int, int, int, int, int]) -> Iterator[_Row]:
    """A partition's rows as (staged row, export line, row text, exact record key, case-folded key).

    The row number and line stay bytes (only decided rows need them as numbers); the key is
    ``layout.record_key`` on bytes, and the folded key is the key itself when Import Student ID and Program
    ID are all digits (their own folding; and no other text folds to digits), else text case-folded.
    """
    student_at, program_at, start_at, eligibility_at, site_at = (at + 2 if at >= 0 else -1 for at in positions)
    partition.flush()
    partition.seek(0)
    for record in partition:
        fields = record.split(b"\t")  # staged row, export line, then the row's own fields
        fields[-1] = fields[-1].rstrip(b"\r\n")
        index, line, student, program = fields[0], fields[1], fields[student_at], fields[program_at]
        start = (fields[start_at] if start_at >= 0 else b"") or (fields[eligibility_at] if eligibility_at >= 0 else b"")
        key = (student, program, start, fields[site_at] if site_at >= 0 else b"")
        text = record[len(index) + len(line) + 2 :]
        if (student + program).isdigit():
            yield index, line, text, key, key
        else:
            yield index, line, text, key, (student.decode().casefold(), program.decode().casefold(), start, key[3])


def _decide(
    partition: IO[bytes], positions: tuple[int, int, int, int, int], decisions: _Decisions, splits: int
) -> None:
    """Decide every row of one partition (its rows in output order), or split it and decide each part."""
    with tempfile.TemporaryFile() as order:
        try:
            states = _learn(partition, positions, order, check=splits < _MAX_SPLITS)
        except _TooManyKeys:
            states = None  # split below, outside the handler: its traceback would keep _learn's tables alive
        if states is None:
            order.close()
            with ExitStack() as files:
                parts = _temporary_files(files, _SPLIT)
                _split(partition, parts, positions, splits)
                for part in parts:
                    _decide(part, positions, decisions, splits + 1)
                    part.close()
            return
        decisions.start_partition()
        add = decisions.add
        for chunk in _arrays(order, "i", 3 * _ROWS_PER_READ):
            for index, line, number in zip(*[iter(chunk)] * 3, strict=True):
                state = states[number]
                if state.rows > 1:
                    if state.text is None:  # the rows disagree: all of them are left out
                        referred = state.second_line if index == state.first_index else state.first_line
                        add(index, line, _CONFLICT, referred, state.rows - 2)
                        continue
                    if index != state.first_index:
                        add(index, line, _MERGED, state.first_line, 0)
                        continue
                if state.case_fields and index == state.first_index:
                    add(index, line, _CASE, state.case_line, state.case_fields)
        decisions.end_partition()


class _KeyState:
    """What pass 2 learns of one exact key in a partition: a handful of slots, not a list of its rows."""

    __slots__ = ("case_fields", "case_line", "first_index", "first_line", "rows", "second_line", "text")

    def __init__(self, index: int, line: int, text: bytes) -> None:
        self.first_index, self.first_line, self.second_line, self.rows = index, line, 0, 1
        self.text: bytes | None = text
        """The first row's text while every row of the key is identical to it; None once two differ."""
        self.case_line = self.case_fields = 0
        """The first line of an earlier key that differs from this one only in letter case, and which of
        its fields differ (``1 << _STUDENT | 1 << _PROGRAM``); 0 when there is none."""


def _learn(
    partition: IO[bytes], positions: tuple[int, int, int, int, int], order: IO[bytes], *, check: bool
) -> list[_KeyState]:
    """Each distinct exact key's ``_KeyState``, numbered in order of first appearance; and to ``order``,
    for each row, (staged row, export line, its key's number), so the second look needs no parsing."""
    numbers: dict[_RowKey, int] = {}
    states: list[_KeyState] = []
    folds: dict[object, tuple[int, _RowKey]] = {}  # per case-folded key: its first line and exact key
    rows, text_bytes = array("i"), 0
    for index, line, text, key, fold in _rows(partition, positions):
        number = numbers.get(key)
        if number is None:
            number = numbers[key] = len(states)
            state = _KeyState(int(index), int(line), text)
            states.append(state)
            earliest = folds.setdefault(fold, (state.first_line, key))
            if earliest[1] != key:
                state.case_line, state.case_fields = earliest[0], _case_fields(key, earliest[1])
            text_bytes += len(text)
            if check and not len(states) % _CHECK_EVERY and text_bytes + len(states) * _KEY_COST > _PARTITION_BUDGET:
                raise _TooManyKeys
        else:
            state = states[number]
            state.rows += 1
            if state.rows == 2:
                state.second_line = int(line)
            if state.text is not None and state.text != text:
                state.text = None
        rows.extend((int(index), int(line), number))
        if len(rows) >= 3 * _ROWS_PER_READ:
            rows.tofile(order)
            del rows[:]
    rows.tofile(order)
    return states


def _arrays(file: IO[bytes], typecode: str, items: int) -> Iterator[array[int]]:
    """A file of ``typecode`` items, from its start, ``items`` at a time."""
    file.flush()
    file.seek(0)
    while True:
        chunk = array(typecode)
        with suppress(EOFError):  # at the end, fromfile keeps what it could read and raises
            chunk.fromfile(file, items)
        if not chunk:
            return
        yield chunk


def _split(
    partition: IO[bytes], parts: Sequence[IO[bytes]], positions: tuple[int, int, int, int, int], splits: int
) -> None:
    """The partition's rows spread over ``parts`` by a hash of their folded key salted with the depth, so a
    part never gets all the keys again (rows of one folded key stay together, in output order)."""
    for index, line, text, _, fold in _rows(partition, positions):
        parts[hash((fold, splits)) % len(parts)].write(b"%b\t%b\t%b" % (index, line, text))


def _case_fields(key: _RowKey, other: _RowKey) -> int:
    return sum(1 << field for field in (_STUDENT, _PROGRAM) if key[field] != other[field])


class _Decisions:
    """Each partition's decisions, spooled in one file (a stretch per partition, each in output order), and
    merged back into output order, which is export line order."""

    def __init__(self, spool: IO[bytes]) -> None:
        self._spool = spool
        self._buffer = array("i")
        self._stretches: list[tuple[int, int]] = []
        self._start = 0

    def start_partition(self) -> None:
        self._start = self._spool.tell()

    def add(self, index: int, line: int, kind: int, referred: int, detail: int) -> None:
        self._buffer.extend((index, line, kind, referred, detail))
        if len(self._buffer) >= _DECISIONS_BUFFERED * _DECISION:
            self._flush()

    def _flush(self) -> None:
        self._buffer.tofile(self._spool)
        del self._buffer[:]

    def end_partition(self) -> None:
        self._flush()
        end = self._spool.tell()
        if end > self._start:
            self._stretches.append((self._start, end))

    def in_line_order(self) -> Iterator[tuple[int, ...]]:
        self._spool.flush()
        record = _DECISION * 4
        size = max(_MIN_BUFFER, min(_MAX_BUFFER, _BUFFERS // max(len(self._stretches), 1))) // record * record
        stretches = [self._read(start, end, size) for start, end in self._stretches]
        return stretches[0] if len(stretches) == 1 else heapq.merge(*stretches)

    def _read(self, start: int, end: int, size: int) -> Iterator[tuple[int, ...]]:
        """One stretch of the spool, ``size`` bytes (whole decisions) at a time."""
        descriptor = self._spool.fileno()
        while start < end:
            items = array("i", os.pread(descriptor, min(size, end - start), start))
            start += len(items) * 4
            yield from zip(*[iter(items)] * _DECISION, strict=True)


# --- what the clerk reads ---------------------------------------------------------------------------------


def _merged(line: int, first: int) -> Finding:
    return warning(
        line, None, "duplicate_merged", f"same program record as line {first}, with identical values: sent once"
    )


def _conflict(line: int, referred: int, more: int) -> Finding:
    others = f"line {referred}" + (f" and {more} other line{'s' if more > 1 else ''}" if more else "")
    return error(
        line,
        None,
        "duplicate_conflict",
        f"same record key (student, program, start date, site) as {others} but different values: Illuminate "
        "would keep only one of them, so all are left out; fix the source (the SIS, or Illuminate for its own "
        "report) so one remains",
    )


def _case_only(line: int, referred: int, fields: int) -> Finding:
    named = " and ".join(label for bit, label in _CASE_LABELS.items() if fields & bit)
    return warning(
        line,
        None,
        "duplicate_case_only",
        f"same record key as line {referred} except for letter case in {named}: Illuminate may treat them as "
        "one record; both were sent, so check which spelling the SIS should have",
    )
