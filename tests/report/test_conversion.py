"""The converter's report: what a clerk and a script read about one file."""

import json
from pathlib import Path

from convert.test_convert import ROWS, run
from programs_bridge.report.conversion import save_report


def test_the_json_report_lists_every_finding_with_its_place(tmp_path: Path) -> None:
    conversion, _ = run(tmp_path, [*ROWS, "1,2,3"], max_reject_share=1.0)
    report_path = tmp_path / "report.json"
    save_report(conversion, report_path)
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["status"] == "partial"
    assert report["encoding"] == "utf-8" and report["delimiter"] == ","
    assert (report["rows_read"], report["rows_written"], report["rows_rejected"]) == (4, 3, 1)
    [issue] = report["issues"]
    assert {k: issue[k] for k in ("line", "column", "code", "severity")} == {
        "line": 5,
        "column": None,
        "code": "field_count",
        "severity": "error",
    }
    assert "has 3 fields but the header has 11" in issue["message"]
    assert report["findings_by_code"] == {"field_count": 1}
