"""Commit a run: record in the ledger what was actually delivered, after delivery succeeded.

Idempotent by construction.  The ledger after a commit is a function of (ledger before, delivered rows, run
id) only: each record item's contents are fully determined by its row and the run id, items the ledger
already holds are skipped, and the converter guarantees one row per key.  So a second commit of the same
run, or a retry after a crash half-way (re-reading the half-written ledger), writes exactly the items still
missing and ends where one clean commit would.  A committed run is recognised by its run item and not
touched again; the feed head stops a stale plan from overwriting a newer run's commit.

A commit may also stop early on purpose, at a request boundary, when the caller's time runs out (``stop``):
a district's first night writes every record, which can take longer than one Lambda invocation.  The run is
then left ``committing``; the next call reads the ledger again and writes only what is still missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any

from programs_bridge.ledger.model import SEED_ORIGIN, Row, RowFacts, check_feed, is_seed_run, row_facts
from programs_bridge.ledger.plan import Plan
from programs_bridge.ledger.snapshot import LedgerSnapshot
from programs_bridge.ledger.store import Item, LedgerStore, RunRecord, Usage, records_pk, shard_of
from programs_bridge.programs_txt.layout import Layout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommitResult:
    run_id: str
    already_committed: bool
    #: Records this run changed in the ledger so far, over every attempt (earlier attempts' writes are
    #: counted from the records' ``last_run``); ``usage`` is this call's share.
    records_written: int
    usage: Usage
    #: False when ``stop`` ended the commit early: call again to finish it.
    complete: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "already_committed": self.already_committed,
            "complete": self.complete,
            "records_written": self.records_written,
            "ledger_write": self.usage.to_json(),
        }


def record_item(feed: str, facts: RowFacts, first_run: str, run_id: str) -> Item:
    """The ledger item for one delivered row; deterministic, so re-writing it is harmless."""
    state = "open" if facts.is_open else "closed"
    return _item(feed, facts.key_text, state, facts.end_date, facts.fields_hash, first_run, run_id)


def missing_items(snapshot: LedgerSnapshot, missing: Iterable[int], *, feed: str, run_id: str) -> Iterator[Item]:
    """Items marking the open records this full export left out (``missing_run``), the ones not marked yet:
    a record goes on missing night after night, and is written once (pure).  The rest of the record stays as
    the ledger holds it, ``last_run`` included: leaving a record out changes nothing Illuminate holds."""
    for ordinal in missing:
        if not snapshot.missing_flags[ordinal]:
            item = _item(feed, snapshot.keys[ordinal], "open", "", snapshot.hashes[ordinal],
                         snapshot.first_run(ordinal), snapshot.last_run(ordinal))  # fmt: skip
            item["missing_run"] = {"S": run_id}
            yield item


def _item(feed: str, key_text: str, state: str, end_date: str, fields_hash: int, first_run: str, last_run: str) -> Item:
    """One record item.  A record a seed first wrote keeps its ``origin`` whoever rewrites it."""
    item: Item = {
        "pk": {"S": records_pk(feed, shard_of(key_text))},
        "sk": {"S": key_text},
        "state": {"S": state},
        "end_date": {"S": end_date},
        "fields_hash": {"S": f"{fields_hash:016x}"},
        "first_run": {"S": first_run},
        "last_run": {"S": last_run},
    }
    if is_seed_run(first_run):
        item["origin"] = {"S": SEED_ORIGIN}
    return item


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
    planned_head: str | None = None,
    stop: Callable[[], bool] | None = None,
    missing: Iterable[int] = (),
) -> CommitResult:
    """Record ``delivered`` (the rows of the programs.txt that was sent) as run ``run``.

    Pass the plan's ``snapshot`` when committing right after delivery in the same process: the ledger is
    not read again.  Leave it out on a retry, and the ledger is read again so that only what is still
    missing gets written; then pass ``planned_head``, the head the plan was made against (None: the feed
    had none), so that a plan another run has committed over since raises StaleLedgerError instead of
    rolling the ledger back.  (Re-reading the head here would let any stale plan through.)
    ``stop`` is asked between write requests; once it answers yes the commit returns incomplete.
    ``missing``: the snapshot ordinals the plan of a full export found missing, marked on their records (a
    commit resumed without the plan's snapshot leaves the marking to the next full export).
    """
    check_feed(feed)
    status = store.run_status(feed, run.run_id)
    if status == "committed":
        log.info("ledger commit: run already committed, nothing written")
        # A retry after a crash between this commit and its caller's bookkeeping: count what it wrote.
        written = store.read_snapshot(feed)[0].changed_by(run.run_id) if snapshot is None else 0
        return CommitResult(run.run_id, True, written, Usage())
    earlier = 0
    expected = planned_head
    if snapshot is None:
        snapshot, _ = store.read_snapshot(feed)
        if status == "committing":  # an earlier attempt wrote part of it
            earlier = snapshot.changed_by(run.run_id)
    else:
        expected = snapshot.head_run
    store.claim(feed, run, expected)
    items = chain(
        changed_items(delivered, layout, snapshot, feed=feed, run_id=run.run_id),
        missing_items(snapshot, missing, feed=feed, run_id=run.run_id),
    )
    usage, complete = store.write_items(items, stop)
    if complete:
        store.mark_committed(feed, run.run_id)
    log.info(
        "ledger commit: %d record item(s) written in %d request(s)%s",
        usage.items,
        usage.requests,
        "" if complete else "; stopped early, to be continued",
    )
    return CommitResult(run.run_id, False, earlier + usage.items, usage, complete)


def commit_plan(store: LedgerStore, plan: Plan, run: RunRecord, rows: Iterable[Row]) -> CommitResult:
    """Commit what ``plan`` delivered: the planned ``rows`` (walked again) with the policy applied."""
    return commit(store, run, plan.rows_to_send(rows), plan.layout, feed=plan.feed, snapshot=plan.snapshot,
                  missing=plan.classification.missing)  # fmt: skip
