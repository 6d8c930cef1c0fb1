"""Resolutions of held rows: ids stable per record key, choices bound and kept in the ledger (moto over HTTP)."""

from __future__ import annotations

import pytest

from programs_bridge.ledger.model import encode_key
from programs_bridge.ledger.resolutions import (
    Choice,
    Held,
    ResolutionError,
    looks_like_id,
    resolution_id,
    resolve,
)

from .harness import FEED, Ledger

ROW = encode_key(("004521", "144", "08/18/2025", "12"))  # the SIS's re-keyed start date
OPEN = encode_key(("004521", "144", "08/15/2025", "12"))  # the record Illuminate holds open
OTHER = encode_key(("004521", "144", "08/15/2025", "14"))


def test_an_id_is_the_same_for_the_same_key_and_has_a_printable_shape() -> None:
    assert resolution_id(ROW) == resolution_id(ROW) != resolution_id(OPEN)
    assert looks_like_id(resolution_id(ROW))
    assert not looks_like_id("004521") and not looks_like_id("Lee-Ann!")


def test_same_binds_the_row_to_the_one_open_record_it_matched() -> None:
    held = Held(resolution_id(ROW), ROW, (OPEN,), 7, "run-1")
    resolution = resolve(held, Choice.SAME, open_in_ledger={OPEN}, note="SIS re-keyed it", by="clerk")
    assert (resolution.row_key, resolution.target_key, resolution.note) == (ROW, OPEN, "SIS re-keyed it")
    assert resolve(held, Choice.NEW, open_in_ledger=()).target_key == ""


def test_same_is_refused_once_the_open_record_has_left_the_ledger() -> None:
    """A seed undone after the row was held took the record out: re-keying onto it would send a key nobody
    vouches for, the duplicate the hold was there to prevent."""
    held = Held(resolution_id(ROW), ROW, (OPEN,), 7, "run-1")
    with pytest.raises(ResolutionError, match="no longer open in the ledger"):
        resolve(held, Choice.SAME, open_in_ledger={OTHER})
    assert resolve(held, Choice.NEW, open_in_ledger=()).choice is Choice.NEW


def test_same_is_refused_for_a_row_matching_two_open_records() -> None:
    held = Held(resolution_id(ROW), ROW, (OPEN, OTHER), 7, "run-1")
    with pytest.raises(ResolutionError, match="matches 2 open records"):
        resolve(held, Choice.SAME, open_in_ledger={OPEN, OTHER})
    assert resolve(held, Choice.NEVER, open_in_ledger=()).choice is Choice.NEVER


def test_held_rows_and_resolutions_are_kept_in_the_ledger(ledger: Ledger) -> None:
    held = Held(resolution_id(ROW), ROW, (OPEN,), 7, "run-1")
    ledger.store.put_held(FEED, [held])
    ledger.store.put_held(FEED, [Held(held.id, ROW, (OPEN,), 9, "run-2")])  # held again the next night
    assert ledger.store.held(FEED, held.id) == Held(held.id, ROW, (OPEN,), 9, "run-2")
    assert ledger.store.held(FEED, "zzzzzzzz") is None
    resolution = resolve(held, Choice.SAME, open_in_ledger={OPEN}, note="n", by="clerk", at="2026-09-02T10:00:00Z")
    ledger.store.put_resolution(FEED, resolution)
    assert ledger.store.resolutions(FEED) == [resolution]
    assert ledger.store.resolutions("another-feed") == []


def test_same_is_not_applied_when_the_file_also_lists_the_open_record_itself(ledger: Ledger) -> None:
    """Re-keying onto a key the same file sends would put that key in programs.txt twice (Illuminate keeps the
    later row): the resolved row is left out and the report says why."""
    from programs_bridge.ledger.resolutions import Choice, Held, resolution_id, resolve

    from .harness import enrolment

    ann_open = enrolment("004521", "144", "08/15/2025", "12")
    rekeyed_exit = enrolment("004521", "144", "08/18/2025", "12", end="06/05/2026")
    ledger.run([ann_open], run_id="20260901T020000Z-night001")
    held = Held(resolution_id(ROW), ROW, (OPEN,), 2, "night002")
    ledger.store.put_resolution(FEED, resolve(held, Choice.SAME, open_in_ledger={OPEN}))
    alone = ledger.run([rekeyed_exit], run_id="20260903T020000Z-night003", deliver=False)
    assert [fields[10] for _, fields in alone.sent] == ["06/05/2026"] and alone.sent[0][1][9] == "08/15/2025"
    both = ledger.run([rekeyed_exit, ann_open], run_id="20260904T020000Z-night004")
    assert both.sent == [(3, ann_open)]
    assert both.report["resolutions_not_applied"][0]["line"] == 2 and both.report["resolved"]["same"] == 0
    assert both.report["rows_to_send"] == 1 == len(both.sent)  # the row left out is not counted as sent


def test_a_same_whose_open_record_left_the_ledger_is_not_applied(ledger: Ledger) -> None:
    """Recorded, then the record was taken out (an unseed): the row is planned under its own key, and the
    report names the resolution that was not applied."""
    from .harness import enrolment

    ledger.run([enrolment("004521", "144", "08/15/2025", "12")], run_id="20260901T020000Z-night001")
    held = Held(resolution_id(ROW), ROW, (OPEN,), 2, "night002")
    ledger.store.put_resolution(FEED, resolve(held, Choice.SAME, open_in_ledger={OPEN}))
    ledger.store.delete_records(FEED, [OPEN])
    rekeyed_exit = enrolment("004521", "144", "08/18/2025", "12", end="06/05/2026")
    night = ledger.run([rekeyed_exit], run_id="20260903T020000Z-night003", deliver=False)
    assert night.sent == [(2, rekeyed_exit)]  # its own key, not the removed record's
    assert night.report["resolutions_stale"] == [held.id] and night.report["resolved"]["same"] == 0


def test_neither_same_nor_repair_moves_a_row_towards_an_id_that_lost_its_zeros_in_excel(ledger: Ledger) -> None:
    """Seeded from a report saved in Excel, the open record says 4521; the SIS's own row says 004521."""
    from programs_bridge.ledger.model import Policy

    from .harness import enrolment

    damaged = encode_key(("4521", "144", "08/15/2025", "12"))
    with pytest.raises(ResolutionError, match="without its leading zeros"):
        resolve(Held(resolution_id(ROW), ROW, (damaged,), 2, "run-1"), Choice.SAME, open_in_ledger={damaged})
    ledger.run([enrolment("4521", "144", "08/15/2025", "12")], run_id="20260901T020000Z-night001")
    night = ledger.run([enrolment("004521", "144", "08/15/2025", "12", end="06/05/2026")], policy=Policy.REPAIR,
                       run_id="20260902T020000Z-night002", deliver=False)  # fmt: skip
    [risk] = night.report["duplicate_risks"]
    assert risk["action"] == "held" and "lost its leading zeros" in risk["reason"]
    assert night.report["zeros_lost_in_ledger"] == 1


def test_an_id_is_never_all_digits_so_a_student_id_is_never_taken_for_one() -> None:
    assert not looks_like_id("22334455")
    assert all(not resolution_id(f"{n:06d}\t144\t08/15/2025\t12").isdigit() for n in range(2000))
