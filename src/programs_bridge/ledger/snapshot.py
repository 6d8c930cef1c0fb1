"""A feed's ledger records held in memory compactly enough for a million of them.

One record costs its key string, a dict slot and a small int ordinal, plus 18 bytes of packed arrays (hash,
open and missing flags, first-run and last-run indexes): about 166 bytes, against 500+ for a dataclass or dict
per record.  The 600 MB budget for a whole 1M-row plan is the reason; everything else about a record is looked
up by ordinal.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from programs_bridge.ledger.model import RecordKey, decode_key


@dataclass
class LedgerSnapshot:
    """The ledger of one feed as read at plan time.  Build it with ``add``; treat it as read-only afterwards."""

    #: The run that last committed to this feed when the snapshot was read (None: nothing committed yet).
    #: Commit refuses to apply a plan made from a snapshot another run has moved on from.
    head_run: str | None = None
    ordinals: dict[str, int] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    hashes: array[int] = field(default_factory=lambda: array("Q"))
    open_flags: bytearray = field(default_factory=bytearray)
    first_run_index: array[int] = field(default_factory=lambda: array("I"))
    #: The run that last changed each record: a commit resumed in a later invocation counts what its
    #: earlier attempts already wrote from these.
    last_run_index: array[int] = field(default_factory=lambda: array("I"))
    runs: list[str] = field(default_factory=list)
    #: 1 for an open record that a full export left out (``missing``): marked by the commit of that export,
    #: cleared by the commit of one that lists it again.  What ``reconcile`` needs to say that Illuminate
    #: holds open a record the SIS no longer lists.
    missing_flags: bytearray = field(default_factory=bytearray)
    _run_index: dict[str, int] = field(default_factory=dict, repr=False)

    def add(
        self, key_text: str, fields_hash: int, is_open: bool, first_run: str, last_run: str = "", missing: bool = False
    ) -> None:
        ordinal = self.ordinals.setdefault(key_text, len(self.keys))
        if ordinal != len(self.keys):
            raise ValueError(f"ledger holds record #{ordinal} twice")
        self.keys.append(key_text)
        self.hashes.append(fields_hash)
        self.open_flags.append(1 if is_open else 0)
        self.first_run_index.append(self._run(first_run))
        self.last_run_index.append(self._run(last_run or first_run))
        self.missing_flags.append(1 if missing else 0)

    def _run(self, run_id: str) -> int:
        index = self._run_index.get(run_id)
        if index is None:
            index = self._run_index[run_id] = len(self.runs)
            self.runs.append(run_id)
        return index

    def __len__(self) -> int:
        return len(self.keys)

    def run_index(self, run_id: str) -> int | None:
        """The number ``first_run_index`` and ``last_run_index`` hold for ``run_id``; None: no record names it."""
        return self._run_index.get(run_id)

    def find(self, key_text: str) -> int | None:
        return self.ordinals.get(key_text)

    def is_open(self, ordinal: int) -> bool:
        return bool(self.open_flags[ordinal])

    def key(self, ordinal: int) -> RecordKey:
        return decode_key(self.keys[ordinal])

    def first_run(self, ordinal: int) -> str:
        return self.runs[self.first_run_index[ordinal]]

    def last_run(self, ordinal: int) -> str:
        """The run that last changed the record (a seed's, or a delivery's)."""
        return self.runs[self.last_run_index[ordinal]]

    def changed_by(self, run_id: str) -> int:
        """How many records ``run_id`` was the last to change."""
        index = self._run_index.get(run_id)
        return 0 if index is None else self.last_run_index.count(index)

    def says(self, key_text: str, fields_hash: int, is_open: bool) -> bool:
        """Whether the ledger holds the record with exactly these fields and this state."""
        ordinal = self.ordinals.get(key_text)
        return ordinal is not None and self._same(ordinal, fields_hash, is_open)

    def holds(self, key_text: str, fields_hash: int, is_open: bool) -> bool:
        """Whether a delivered row would change nothing in the ledger: it says exactly this about the record,
        and does not mark it missing (a row listing the record clears that mark)."""
        ordinal = self.ordinals.get(key_text)
        return ordinal is not None and not self.missing_flags[ordinal] and self._same(ordinal, fields_hash, is_open)

    def _same(self, ordinal: int, fields_hash: int, is_open: bool) -> bool:
        return self.hashes[ordinal] == fields_hash and bool(self.open_flags[ordinal]) == is_open
