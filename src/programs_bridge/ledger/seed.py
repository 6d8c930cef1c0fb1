"""Seeding: teach a feed's ledger what Illuminate already holds, from a report of Illuminate's own records.

The ledger knows only what the bridge sent, so on a district's first night it would check an export
against nothing, and every exit whose key differs from a record loaded by hand years ago would open a
duplicate.  Seeding loads Illuminate's records (an ``illuminate-report`` export, or the programs.txt files
the district uploaded by hand, converted exactly as a nightly export is, so keys compare equal) into the
ledger as if the bridge had sent them: afterwards an exit of a seeded key is an ``exit`` and a re-keyed
exit is a ``duplicate_risk`` naming the seeded record.

A seed is a run of its own, with an id that sorts by time like a nightly run's: ``YYYYMMDDTHHMMSSZ`` of
when the report was taken, then ``-seed-`` and the report's hash.  Per record of the report:

- unknown to the ledger: written, ``origin`` = ``illuminate-report``;
- known, and the ledger already says the same (state and fields): nothing is written, which is what makes
  seeding the same report twice write nothing (and a report's run, once committed, is not applied again);
- known, last changed by a run *after* the report was taken (the bridge sent something newer): kept, and
  counted and listed as a conflict: the report is older news;
- known, last changed before the report was taken: the report wins, because it says what Illuminate holds.

The seed moves the feed head like any commit (so a seed and a nightly commit never interleave) and keeps
its counts on its run item.  Records a report does not list are left alone: a report may cover only some
programs or schools.  ``plan_seed`` is pure; ``seed`` wires it to the store.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from programs_bridge.ledger.commit import record_item
from programs_bridge.ledger.model import Row, check_feed, is_seed_run, key_json, row_facts, unfinished_change
from programs_bridge.ledger.snapshot import LedgerSnapshot
from programs_bridge.ledger.store import Item, LedgerStore, RunRecord, Usage
from programs_bridge.programs_txt.layout import Layout

log = logging.getLogger(__name__)


#: Conflicts a report lists by key (the counts are complete).
LISTED_CONFLICTS = 100


def seed_run_id(taken: datetime, sha256: str, reading: str = "") -> str:
    """A seed's run id: sorts among nightly run ids by when the report was taken.  ``reading`` names how the
    report was read (mapping, layout): the same file read another way (a mapping that pads the IDs Excel
    stripped) is another seed, not one already applied."""
    digest = hashlib.sha256(f"{sha256}\0{reading}".encode()).hexdigest() if reading else sha256
    return f"{taken.astimezone(UTC):%Y%m%dT%H%M%SZ}-seed-{digest[:8]}"


class SeedError(ValueError):
    """The feed cannot be seeded now: a seed or an undo that did not finish holds it."""


@dataclass(frozen=True, slots=True)
class Conflict:
    """A record the bridge changed after the report was taken: the ledger keeps what the bridge sent."""

    line: int
    key: dict[str, str]
    last_run: str


@dataclass
class SeedPlan:
    """What seeding one report would do; filled as its items are walked (so memory stays flat)."""

    run_id: str
    counts: Counter[str] = field(default_factory=Counter)
    conflicts: list[Conflict] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        names = ("records_read", "new", "updated", "unchanged", "conflicts")
        return {
            "run_id": self.run_id,
            "counts": {name: self.counts.get(name, 0) for name in names},
            "conflicts": [
                {"line": c.line, "key": c.key, "last_run": c.last_run} for c in self.conflicts[:LISTED_CONFLICTS]
            ],
        }


def seed_items(
    rows: Iterable[Row], layout: Layout, snapshot: LedgerSnapshot, plan: SeedPlan, *, feed: str
) -> Iterator[Item]:
    """The ledger items seeding ``rows`` writes, counting every record into ``plan`` (pure: no I/O)."""
    for line, fields in rows:
        facts = row_facts(fields, layout)
        plan.counts["records_read"] += 1
        ordinal = snapshot.find(facts.key_text)
        if ordinal is None:
            plan.counts["new"] += 1
            yield record_item(feed, facts, plan.run_id, plan.run_id)
            continue
        if snapshot.says(facts.key_text, facts.fields_hash, facts.is_open):  # a missing mark is not the report's
            if snapshot.last_run(ordinal) == plan.run_id:  # an attempt of this seed cut short wrote it: counted
                plan.counts["new" if snapshot.first_run(ordinal) == plan.run_id else "updated"] += 1
            else:
                plan.counts["unchanged"] += 1
            continue
        last_run = snapshot.last_run(ordinal)
        if last_run > plan.run_id and not is_seed_run(last_run):
            plan.counts["conflicts"] += 1
            if len(plan.conflicts) < LISTED_CONFLICTS:
                plan.conflicts.append(Conflict(line, key_json(facts.key), last_run))
            continue
        plan.counts["updated"] += 1
        yield record_item(feed, facts, snapshot.first_run(ordinal), plan.run_id)


@dataclass(frozen=True)
class SeedResult:
    plan: SeedPlan
    #: The report's run was committed before: nothing was read from it or written.
    already_seeded: bool
    usage: Usage
    #: False: ``stop`` said the time was up before every item was written; seed the same report again.
    complete: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            **self.plan.to_json(), "already_seeded": self.already_seeded, "complete": self.complete,
            "ledger_write": self.usage.to_json(),
        }  # fmt: skip


def seed(
    store: LedgerStore,
    rows: Iterable[Row],
    layout: Layout,
    *,
    feed: str,
    run: RunRecord,
    stop: Callable[[], bool] | None = None,
) -> SeedResult:
    """Seed ``feed`` with the converted rows of Illuminate's report, as run ``run`` (``seed_run_id``).

    Reads the feed's ledger, claims the feed head from the run it saw (StaleLedgerError when a nightly
    commit landed in between: seed again), streams the items the report adds or corrects, records the
    seed's counts on its run item and marks it committed.  A seed cut short (a crash, or ``stop``, asked
    between write requests, saying the time is up: the result is then not ``complete``) is finished by
    seeding the same report again: what the earlier attempts wrote is counted as they would have counted it.
    """
    check_feed(feed)
    plan = SeedPlan(run.run_id)
    if store.run_status(feed, run.run_id) == "committed":
        log.info("ledger seed: this report was seeded before, nothing written")
        # Its counts as that seed recorded them: conflicts it found then are still conflicts now.
        plan.counts.update({k: v for k, v in store.run_counts(feed, run.run_id).items() if k != "missing"})
        return SeedResult(plan, True, Usage())
    snapshot, _ = store.read_snapshot(feed)
    unfinished = unfinished_change(snapshot.head_run, partial(store.run_status, feed))
    if unfinished is not None and unfinished != run.run_id:  # taken over, it could never be finished nor undone
        raise SeedError(
            f"{unfinished} holds feed {feed!r} but did not finish: run it again to its end (the same command) "
            "before seeding another report"
        )
    # The shrink guard compares the next export with the head run's ``missing``: a seed lists no export, so
    # it carries the last one's figure over instead of resetting it.
    missing = store.run_counts(feed, snapshot.head_run).get("missing", 0) if snapshot.head_run else 0
    store.claim(feed, run, snapshot.head_run)
    usage, complete = store.write_items(seed_items(rows, layout, snapshot, plan, feed=feed), stop)
    if not complete:
        log.info("ledger seed: %d record item(s) written, the rest in a later attempt", usage.items)
        return SeedResult(plan, False, usage, complete=False)
    store.set_run_counts(feed, run.run_id, {**plan.counts, "missing": missing})
    store.mark_committed(feed, run.run_id)
    log.info("ledger seed: %d record item(s) written, %d conflict(s)", usage.items, plan.counts["conflicts"])
    return SeedResult(plan, False, usage)
