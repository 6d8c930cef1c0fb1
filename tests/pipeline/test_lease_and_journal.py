"""The per-feed lease and the run journal, against DynamoDB on the moto server."""

from __future__ import annotations

import pytest

from programs_bridge.ledger.store import create_table
from programs_bridge.local.moto_server import MotoServer
from programs_bridge.pipeline.journal import Journal, LastDelivered, RunEntry, Stage
from programs_bridge.pipeline.lease import FeedBusy, FeedLease

TABLE = "pb-ledger"


@pytest.fixture
def table(aws: MotoServer) -> str:
    create_table(TABLE)
    return TABLE


def test_a_held_feed_is_busy_for_others_but_not_for_other_feeds(table: str) -> None:
    lease = FeedLease(table, clock=lambda: 1000.0)
    with lease.hold("district", "first", 60):
        with pytest.raises(FeedBusy), lease.hold("district", "second", 60):
            pass
        with lease.hold("north", "second", 60):
            pass
    with lease.hold("district", "second", 60):  # released on exit
        pass


def test_an_expired_lease_can_be_taken_over_and_the_old_holder_does_not_release_it(table: str) -> None:
    now = [1000.0]
    lease = FeedLease(table, clock=lambda: now[0])
    with lease.hold("district", "crashed", 60):
        now[0] = 1061.0  # the first holder's time ran out (a Lambda timeout, say)
        with lease.hold("district", "retry", 60):
            pass
    now[0] = 1062.0
    with lease.hold("district", "third", 60):
        pass


def entry(ref: str = "ref-1") -> RunEntry:
    return RunEntry(ref, f"run-{ref}", Stage.STARTED, "in_progress", "reports/x.json", "processed/x.txt", ())


def test_the_journal_returns_the_run_already_begun_for_the_same_object(table: str) -> None:
    journal = Journal(table)
    first = journal.begin("district", entry())
    journal.freeze("district", "ref-1", ("import_student_id", "program_id"), planned_head="run-0")
    again = journal.begin("district", entry())
    assert again.run_id == first.run_id and again.stage is Stage.PLANNED
    assert again.layout == ("import_student_id", "program_id")
    assert again.planned_head == "run-0"


def test_a_plan_made_against_no_head_remembers_that_and_can_be_made_again_until_delivered(table: str) -> None:
    journal = Journal(table)
    journal.begin("district", entry())
    journal.freeze("district", "ref-1", ("import_student_id",), planned_head=None)
    frozen = journal.entry("district", "ref-1")
    assert frozen is not None and frozen.stage is Stage.PLANNED and frozen.planned_head is None
    assert journal.replan("district", "ref-1")
    found = journal.entry("district", "ref-1")
    assert found is not None and found.stage is Stage.STARTED
    journal.freeze("district", "ref-1", ("import_student_id",), planned_head="run-0")
    journal.advance("district", "ref-1", Stage.DELIVERED, "in_progress")
    assert not journal.replan("district", "ref-1")  # once delivered, the plan is what was sent
    found = journal.entry("district", "ref-1")
    assert found is not None and found.stage is Stage.DELIVERED


def test_stages_only_move_forward(table: str) -> None:
    journal = Journal(table)
    journal.begin("district", entry())
    journal.advance("district", "ref-1", Stage.COMMITTED, "in_progress")
    journal.advance("district", "ref-1", Stage.PLANNED, "in_progress")  # a late, stale update
    found = journal.entry("district", "ref-1")
    assert found is not None and found.stage is Stage.COMMITTED


def test_the_last_delivered_export_is_remembered_per_feed(table: str) -> None:
    journal = Journal(table)
    assert journal.last_delivered("district") is None
    journal.set_delivered("district", LastDelivered("run-1", "ab" * 32, "2026-09-01T02:00:00Z"))
    assert journal.last_delivered("district") == LastDelivered("run-1", "ab" * 32, "2026-09-01T02:00:00Z")
    assert journal.last_delivered("north") is None
