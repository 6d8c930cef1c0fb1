"""Undoing a seed: take out of a feed's ledger the records a wrong report put there.

A seed from the wrong report (another feed's, one saved in Excel so every Import Student ID lost its zeros,
an old one) teaches the ledger records Illuminate does not hold; every later night is then checked against
them.  ``ledger unseed RUN`` takes back what the seed ``RUN`` did, as far as the ledger can tell:

- a record the seed first wrote and nothing has changed since is **removed**;
- a record the seed first wrote that a later run changed (the bridge has sent it since) is **kept**: it is
  what Illuminate now holds, whatever the report said;
- a record the seed *corrected* (it was known before, and the report changed it) is **left as it is**: the
  ledger keeps no history, so its earlier state cannot be restored.  They are counted; seeding the right
  report corrects them again.

A seed that found a record the seed being undone had written already wrote nothing for it (that is what
keeps seeding idempotent), so the ledger cannot tell which of the removed records another seed's report
also lists.  Every other seed of the feed is therefore marked ``reseed`` and named in the result: seeding
its report again (the same command) writes back what it lists and the undo took out, and until then it can
be neither skipped as seeded before nor undone.

The seed's run is marked ``undone``, so the same report can be seeded again later (read another way, say
with a mapping that pads the IDs Excel stripped).  The undo is a run of its own and moves the feed head like
a commit, so it never interleaves with a nightly commit; when it leaves the ledger empty it removes the
head too, and the feed's first night waits for a seed again (``needs_seed``), as before the seed.  Cut short
(a crash), it is finished by running it again.  ``plan_unseed`` is pure; ``unseed`` wires it to the store.
"""

from __future__ import annotations

import hashlib
import logging
import re
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from programs_bridge.ledger.model import RESEED, check_feed, is_seed_run, is_unseed_run, unfinished_change
from programs_bridge.ledger.snapshot import LedgerSnapshot
from programs_bridge.ledger.store import LedgerStore, RunRecord, Usage

log = logging.getLogger(__name__)

#: Resolution ids an undo report lists (the count is complete).
LISTED_RESOLUTIONS = 100
#: A seed's run id (``seed.seed_run_id``), checked before one is quoted back.
SEED_RUN_SHAPE = re.compile(r"\d{8}T\d{6}Z-seed-[0-9a-f]{8}")


class UnseedError(ValueError):
    """The run named is not a seed this feed's ledger can undo (unknown, not a seed, unfinished, undone)."""


def unseed_run_id(now: datetime, seed_run: str) -> str:
    """The undo's own run id: sorts among the others by when it ran, names the seed it undoes by a hash."""
    digest = hashlib.sha256(seed_run.encode()).hexdigest()[:8]
    return f"{now:%Y%m%dT%H%M%SZ}-unseed-{digest}"


@dataclass
class UnseedPlan:
    """What undoing one seed does to a snapshot: the records to remove (ordinals) and the counts."""

    seed_run: str
    removed: array[int] = field(default_factory=lambda: array("I"))
    counts: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        names = ("removed", "kept_changed_since", "corrected_left_as_is")
        return {"seed_run": self.seed_run, "counts": {name: self.counts.get(name, 0) for name in names}}


def plan_unseed(snapshot: LedgerSnapshot, seed_run: str) -> UnseedPlan:
    """Which records undoing ``seed_run`` removes, keeps or cannot restore (pure: no I/O)."""
    plan = UnseedPlan(seed_run)
    seed = snapshot.run_index(seed_run)
    if seed is None:
        return plan
    for ordinal, (first, last) in enumerate(zip(snapshot.first_run_index, snapshot.last_run_index, strict=True)):
        if first == seed and last == seed:
            plan.removed.append(ordinal)
        elif first == seed:
            plan.counts["kept_changed_since"] += 1
        elif last == seed:
            plan.counts["corrected_left_as_is"] += 1
    plan.counts["removed"] = len(plan.removed)
    return plan


@dataclass(frozen=True)
class UnseedResult:
    plan: UnseedPlan
    run_id: str
    #: The ledger holds no record any more, and the feed head was removed: the first night waits for a seed.
    feed_empty: bool
    #: ``same`` resolutions that send rows under a removed record: each must be resolved again.
    resolutions: list[str]
    usage: Usage
    #: The feed's other seeds, marked ``reseed``: their reports may list removed records; seed each again.
    reseed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.plan.to_json(),
            "run_id": self.run_id,
            "feed_empty": self.feed_empty,
            "resolutions_to_redo": len(self.resolutions),
            "resolution_ids": self.resolutions[:LISTED_RESOLUTIONS],
            "seeds_to_repeat": self.reseed,
            "ledger_write": self.usage.to_json(),
        }


def unseed(store: LedgerStore, *, feed: str, seed_run: str, now: datetime) -> UnseedResult:
    """Undo the seed ``seed_run`` of ``feed`` (see the module's docstring); UnseedError when it cannot be.

    Reads the feed's ledger, claims the feed head from the run it saw (StaleLedgerError when a nightly
    commit landed in between: run it again), deletes the records, marks the seed ``undone`` and the undo
    committed, and removes the head when nothing is left."""
    check_feed(feed)
    if not SEED_RUN_SHAPE.fullmatch(seed_run):  # not echoed: what was typed may be anything, a student ID too
        raise UnseedError("that is not a seed's run id: they look like 20261201T080000Z-seed-1a2b3c4d, as ledger "
                          "seed printed it")  # fmt: skip
    statuses = store.run_statuses(feed)  # one Query: this seed's, the head's and the other seeds' statuses
    status = statuses.get(seed_run)
    if status is None:
        raise UnseedError(f"feed {feed!r} has no seed {seed_run!r}: is --feed right?")
    if status == "undone":
        raise UnseedError(f"seed {seed_run!r} was undone before: nothing to do")
    if status == RESEED:
        raise UnseedError(
            f"seed {seed_run!r} must be seeded again first (undoing another seed took out records its report may "
            "also list): seed the same report again, then undo it"
        )
    if status != "committed":
        raise UnseedError(
            f"seed {seed_run!r} did not finish ({status}): seed the same report again to finish it, then undo it"
        )
    snapshot, _ = store.read_snapshot(feed)
    run = RunRecord(unseed_run_id(now, seed_run), seed_run, "", "", "", {})
    unfinished = unfinished_change(snapshot.head_run, statuses.get)
    # An undo of this same seed cut short is what this finishes; any other change cut short must finish first.
    resumed = unfinished is not None and is_unseed_run(unfinished) and unfinished[-8:] == run.run_id[-8:]
    if unfinished is not None and not resumed:
        raise UnseedError(f"{unfinished} holds feed {feed!r} but did not finish: run it again to its end first")
    plan = plan_unseed(snapshot, seed_run)
    removing = bytearray(len(snapshot))
    for ordinal in plan.removed:
        removing[ordinal] = 1
    redo = sorted(r.id for r in store.resolutions(feed) if _removes(snapshot, removing, r.target_key))
    # The shrink guard compares the next export with the head run's ``missing``: carried over, as a seed does.
    missing = store.run_counts(feed, snapshot.head_run).get("missing", 0) if snapshot.head_run else 0
    store.claim(feed, run, snapshot.head_run)
    # The counts are recorded before anything is removed, and an attempt that finishes one cut short reports
    # the first attempt's, handed on: what it sees lacks what the earlier attempts removed.  (The earlier
    # attempt is the head run, so ``missing`` was read from it: its own figure, carried over.)
    earlier = store.run_counts(feed, unfinished) if resumed and unfinished is not None else {}
    if earlier:
        plan.counts = Counter({name: n for name, n in earlier.items() if name != "missing"})
    store.set_run_counts(feed, run.run_id, {**plan.counts, "missing": missing})
    # Marked before anything is removed: an undo cut short after its deletes finds nothing left to remove
    # when it is run again, and must still find the seeds it marked (listed again, as ``reseed``).
    others = {other: status for other, status in statuses.items() if is_seed_run(other) and other != seed_run}
    reseed = sorted(o for o, s in others.items() if s == RESEED or (plan.removed and s == "committed"))
    for other in reseed:
        if others[other] != RESEED:
            store.mark_run(feed, other, RESEED)
    usage = store.delete_records(feed, (snapshot.keys[ordinal] for ordinal in plan.removed))
    store.mark_committed(feed, run.run_id)
    empty = len(plan.removed) == len(snapshot) and store.release_head(feed, run.run_id)
    store.mark_run(feed, seed_run, "undone")  # last: an undo cut short before it is finished by running it again
    log.info("ledger unseed: %d record(s) removed, %d kept, %d left as corrected", len(plan.removed),
             plan.counts["kept_changed_since"], plan.counts["corrected_left_as_is"])  # fmt: skip
    return UnseedResult(plan, run.run_id, empty, redo, usage, reseed)


def _removes(snapshot: LedgerSnapshot, removing: bytearray, key_text: str) -> bool:
    """Whether the record ``key_text`` names (a ``same`` resolution's target; "" for the others) goes."""
    ordinal = snapshot.find(key_text) if key_text else None
    return ordinal is not None and bool(removing[ordinal])
