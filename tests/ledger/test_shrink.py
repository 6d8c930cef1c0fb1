"""The shrink guard's verdict on its own: pure numbers in, one verdict out (the pipeline tests run it live)."""

from __future__ import annotations

import pytest

from programs_bridge.ledger.model import ExportKind
from programs_bridge.ledger.shrink import Exemption, ShrinkRule, judge

FULL, DELTA = ExportKind.FULL, ExportKind.DELTA


def test_a_full_export_that_leaves_out_half_the_open_records_fires() -> None:
    verdict = judge(FULL, open_records=1000, missing=500)
    assert verdict.fires and verdict.exempt is None
    assert (verdict.listed_before, verdict.dropped, verdict.share) == (1000, 500, 0.5)
    assert "leaves out 500 of the 1,000 open records" in verdict.describe()
    assert "stopped half-way" in verdict.describe()


@pytest.mark.parametrize(
    ("missing", "fires"),
    [(200, False), (201, True)],  # the default share is 20%, strictly more fires
)
def test_the_default_share_is_a_strict_twenty_percent(missing: int, fires: bool) -> None:
    assert judge(FULL, open_records=1000, missing=missing).fires is fires


@pytest.mark.parametrize(("missing", "fires"), [(50, False), (51, True)])
def test_a_small_feed_is_never_held_below_fifty_missing_records(missing: int, fires: bool) -> None:
    """Forty of sixty open records gone is 67%, but a feed that small is never held."""
    assert judge(FULL, open_records=60, missing=missing).fires is fires
    assert not judge(FULL, open_records=60, missing=40).fires


def test_a_delta_export_an_empty_ledger_and_a_disabled_guard_are_exempt() -> None:
    delta = judge(DELTA, open_records=1000, missing=900)
    empty = judge(FULL, open_records=0, missing=0)
    off = judge(FULL, open_records=1000, missing=900, rule=ShrinkRule(enabled=False))
    exemptions = [v.exempt for v in (delta, empty, off)]
    assert exemptions == [Exemption.DELTA_EXPORT, Exemption.EMPTY_LEDGER, Exemption.DISABLED]
    assert not any(v.fires for v in (delta, empty, off))
    assert "delta export" in delta.describe() and "turned off" in off.describe()


def test_records_an_earlier_export_already_left_out_are_not_counted_again() -> None:
    """300 records vanished last month and stay open in the ledger (a missing record is never made an exit):
    a night that lists everything else is normal, not a 30% shrink."""
    steady = judge(FULL, open_records=1000, missing=300, previously_missing=300)
    assert not steady.fires and steady.dropped == 0 and steady.listed_before == 700
    assert "300 more were already missing" in steady.describe()
    # 250 more of the 700 the last export listed are gone tonight: that is a shrink.
    assert judge(FULL, open_records=1000, missing=550, previously_missing=300).fires
    # Some that were missing came back, others went: only the difference counts.
    assert not judge(FULL, open_records=1000, missing=250, previously_missing=300).fires


def test_the_thresholds_are_the_feeds_to_set() -> None:
    lenient = ShrinkRule(max_missing_share=0.6)
    assert not judge(FULL, open_records=1000, missing=500, rule=lenient).fires
    strict = ShrinkRule(max_missing_share=0.05, min_missing=5)
    assert judge(FULL, open_records=100, missing=6, rule=strict).fires
    with pytest.raises(ValueError, match="max_missing_share"):
        ShrinkRule(max_missing_share=0)
    with pytest.raises(ValueError, match="min_missing"):
        ShrinkRule(min_missing=-1)


def test_the_report_section_holds_counts_and_thresholds() -> None:
    section = judge(FULL, open_records=1000, missing=500).to_json()
    assert section == {
        "enabled": True, "fires": True, "exempt": None, "open_records": 1000, "missing": 500,
        "previously_missing": 0, "listed_before": 1000, "dropped": 500, "share": 0.5,
        "max_missing_share": 0.2, "min_missing": 50, "compared_with": "last_export",
        "summary": section["summary"],
    }  # fmt: skip
    assert section["summary"].startswith("this full export leaves out 500")
