"""Commit a run: record in the ledger what was actually delivered, after delivery succeeded.

Idempotent by construction.  The ledger after a commit is a function of (ledger before, delivered rows, run
id) only: each record item's contents are fully determined by its row and the run id, items the ledger
already holds are skipped, and the converter guarantees one row per key.  So a second commit of the same
run, or a retry after a crash half-way (re-reading the half-written ledger), writes exactly the items still
missing and ends where one clean commit would.  A committed run is recognised by its run item and not
touched again; the feed head stops a stale plan from overwriting a newer run's commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from programs_bridge.layout import Layout
from programs_bridge.ledger.model import Row, RowFacts, check_feed, row_facts
from programs_bridge.ledger.plan import Plan
from programs_bridge.ledger.snapshot import LedgerSnapshot
from programs_bridge.ledger.store import Item, LedgerStore, RunRecord, Usage, records_pk, shard_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommitResult:
    run_id: str
    already_committed: bool
    records_written: int
    usage: Usage

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "already_committed": self.already_committed,
            "records_written": self.records_written,
            "ledger_write": self.usage.to_json(),
        }


def record_item(feed: str, facts: RowFacts, first_run: str, run_id: str) -> Item:
    """The ledger item for one delivered row; deterministic, so re-writing it is harmless."""
    return {
        "pk": {"S": records_pk(feed, shard_of(facts.key_text))},
        "sk": {"S": facts.key_text},
        "state": {"S": "open" if facts.is_open else "closed"},
        "end_date": {"S": facts.end_date},
        "fields_hash": {"S": f"{facts.fields_hash:016x}"},
        "first_run": {"S": first_run},
        "last_run": {"S": run_id},
    }


def changed_items(
    delivered: Iterable[Row], layout: Layout, snapshot: LedgerSnapshot, *, feed: str, run_id: str
) -> Iterator[Item]:
    """Items for the delivered rows whose record the ledger does not already hold as they are (pure).

    ``last_run`` is therefore the last run that *changed* the record: stamping every record every night
    would turn a nightly full export into a million writes.
    """
    for _line, fields in delivered:
        facts = row_facts(fields, layout)
        if snapshot.holds(facts.key_text, facts.fields_hash, facts.is_open):
            continue
        ordinal = snapshot.find(facts.key_text)
        first_run = snapshot.first_run(ordinal) if ordinal is not None else run_id
        yield record_item(feed, facts, first_run, run_id)


def commit(
    store: LedgerStore,
    run: RunRecord,
    delivered: Iterable[Row],
    layout: Layout,
    *,
    feed: str,
    snapshot: LedgerSnapshot | None = None,
) -> CommitResult:
    """Record ``delivered`` (the rows of the programs.txt that was sent) as run ``run``.

    Pass the plan's ``snapshot`` when committing right after delivery in the same process; leave it out on
    a retry, and the ledger is read again so that only what is still missing gets written.
    """
    check_feed(feed)
    if store.run_status(feed, run.run_id) == "committed":
        log.info("ledger commit: run already committed, nothing written")
        return CommitResult(run.run_id, True, 0, Usage())
    if snapshot is None:
        snapshot, _ = store.read_snapshot(feed)
    store.claim(feed, run, snapshot.head_run)
    usage = store.write_items(changed_items(delivered, layout, snapshot, feed=feed, run_id=run.run_id))
    store.mark_committed(feed, run.run_id)
    log.info("ledger commit: %d record item(s) written in %d request(s)", usage.items, usage.requests)
    return CommitResult(run.run_id, False, usage.items, usage)


def commit_plan(store: LedgerStore, plan: Plan, run: RunRecord, rows: Iterable[Row]) -> CommitResult:
    """Commit what ``plan`` delivered: the planned ``rows`` (walked again) with the policy applied."""
    return commit(store, run, plan.rows_to_send(rows), plan.layout, feed=plan.feed, snapshot=plan.snapshot)
