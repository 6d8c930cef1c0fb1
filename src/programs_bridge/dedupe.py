"""The same record key twice in one file, found without memory that grows with the file.

Illuminate keys a program record on student + program + start date + site.  Two rows with one key in the same
file either say the same thing (merge them: keep one, warn) or contradict each other (Illuminate would keep
whichever came last, silently: reject both and let the clerk decide).

Pass 1 (while converting) sets one bit per key hash in a fixed 16 MiB bitset and spools each written row's
hash to disk; a row whose bit is already set makes its hash a *suspect*.  Only when there are suspects does
pass 2 re-read the staged rows, group the rows with a suspect hash by hash and then by their exact key (so a
hash collision can never merge two different records) and decide.  A clean file, the nightly norm, costs one
hash and a few bit operations a row.  At a million rows a few thousand false suspects are the norm too, so
pass 2 picks the suspect rows out with C-level iterators (``itertools.compress``) and only those few reach
Python code.
"""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import compress, count, islice
from typing import IO

from programs_bridge.findings import Finding, error, warning
from programs_bridge.layout import Layout, record_key

_BITS = 1 << 27  # 16 MiB: ~0.7% false suspects at 1M rows, each costing only a dictionary entry in pass 2
_SLOTS = _BITS - 1  # a hash's slot is its low 27 bits
_READ_ITEMS = 1 << 16  # spool items per read in pass 2 (even: the spool holds pairs)


@dataclass
class DuplicateVerdict:
    """What pass 2 decided: staged row numbers (0-based) to drop, and the findings to report."""

    drop: set[int] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    merged: int = 0
    rejected: int = 0


class DuplicateFinder:
    def __init__(self) -> None:
        self._bits = bytearray(_BITS >> 3)
        self._spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.suspects: set[int] = set()

    def add(self, keys: Sequence[tuple[str, ...]], source_lines: Sequence[int]) -> None:
        """Record a batch of written rows' keys and export lines (call in output order).

        In batches because hashing and spooling then run in C over the whole batch; only the bit test is
        Python, and a loop here costs less than a method call per row.
        """
        digests = list(map(hash, keys))
        bits, suspects = self._bits, self.suspects
        for digest in digests:
            index = (digest & _SLOTS) >> 3  # the slot's byte ...
            mask = 1 << (digest & 7)  # ... and its bit in that byte
            if bits[index] & mask:
                suspects.add(digest)
            else:
                bits[index] |= mask
        pairs = array("q", bytes(16 * len(digests)))  # the spool interleaves (hash, line), filled in C
        pairs[0::2] = array("q", digests)
        pairs[1::2] = array("q", source_lines)
        pairs.tofile(self._spool)

    def entries(self) -> Iterator[tuple[int, int]]:
        """(key hash, source line) of every row added, in order; read back from the spool."""
        for chunk in self._chunks():
            yield from zip(chunk[0::2], chunk[1::2], strict=True)

    def _chunks(self) -> Iterator[array[int]]:
        """The spool in chunks of interleaved (key hash, source line) pairs."""
        self._spool.flush()
        self._spool.seek(0)
        while True:
            chunk = array("q")
            with suppress(EOFError):  # at the end, fromfile keeps what it could read and raises
                chunk.fromfile(self._spool, _READ_ITEMS)
            if not chunk:
                return
            yield chunk

    def resolve(self, staged_rows: Iterable[bytes], layout: Layout) -> DuplicateVerdict:
        """Pass 2 over the staged rows (UTF-8 lines as written, without header), in the order they were added."""
        verdict, suspects = DuplicateVerdict(), self.suspects
        if not suspects:
            return verdict
        # Grouped by hash first, as raw bytes: most suspects are alone with their hash, and memory at this
        # point must stay as flat as in pass 1; only rows sharing a hash are decoded and keyed exactly.
        groups: dict[int, list[tuple[int, int, bytes]]] = {}
        rows = iter(staged_rows)
        first = 0
        for chunk in self._chunks():
            digests = chunk[0::2]
            # Row number, source line, hash and bytes of each row whose hash is a suspect, picked in C.
            numbered = zip(
                count(first), chunk[1::2], digests, islice(rows, len(digests)), strict=False
            )  # count: endless
            for index, source_line, digest, raw in compress(numbered, map(suspects.__contains__, digests)):
                groups.setdefault(digest, []).append((index, source_line, raw.rstrip(b"\r\n")))
            first += len(digests)
        for rows_of_hash in groups.values():
            if len(rows_of_hash) > 1:
                by_key: dict[tuple[str, ...], list[tuple[int, int, bytes]]] = {}
                for row in rows_of_hash:
                    by_key.setdefault(record_key(row[2].decode("utf-8").split("\t"), layout), []).append(row)
                for rows_of_key in by_key.values():
                    if len(rows_of_key) > 1:
                        _judge(rows_of_key, verdict)
        verdict.findings.sort(key=lambda f: f.line or 0)
        return verdict

    def close(self) -> None:
        self._spool.close()


def _judge(rows: list[tuple[int, int, bytes]], verdict: DuplicateVerdict) -> None:
    lines = [line for _, line, _ in rows]
    if len({text for _, _, text in rows}) == 1:
        first = lines[0]
        for index, line, _ in rows[1:]:
            verdict.drop.add(index)
            verdict.merged += 1
            verdict.findings.append(
                warning(
                    line,
                    None,
                    "duplicate_merged",
                    f"same program record as line {first}, with identical values: sent once",
                )
            )
        return
    for index, line, _ in rows:
        others = ", ".join(str(other) for other in lines if other != line)
        verdict.drop.add(index)
        verdict.rejected += 1
        verdict.findings.append(
            error(
                line,
                None,
                "duplicate_conflict",
                f"same record key (student, program, start date, site) as line {others} but different "
                "values: Illuminate would keep only one of them, so all are left out; fix the SIS so one remains",
            )
        )
