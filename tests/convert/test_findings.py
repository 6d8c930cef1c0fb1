from dataclasses import fields

from programs_bridge.convert.findings import Finding, warning


def test_a_finding_in_the_report_carries_every_field_it_has() -> None:
    """``to_json`` is written out by hand (for speed): a field added to Finding must reach the report too."""
    finding = warning(7, "Exit_Date", "end_before_start", "the end date is before the start date")
    data = finding.to_json()
    assert list(data) == [f.name for f in fields(Finding)]
    assert data == {
        "line": 7,
        "column": "Exit_Date",
        "code": "end_before_start",
        "severity": "warning",
        "message": "the end date is before the start date",
    }
