"""A report with a finding on every row is written and read back as a stream: the pipeline never holds it
whole (``make bench`` measures the handler's memory on a 2M-row one; these check the streaming itself)."""

from __future__ import annotations

import io
import json

import boto3

from programs_bridge.local.moto_server import MotoServer
from programs_bridge.pipeline.storage import Storage
from programs_bridge.report.conversion import report_text, split_report

FINDING = {"line": 0, "column": "Students.DOB", "code": "bad_date", "severity": "error", "message": "not a date"}


def findings(n: int) -> list[str]:
    return [json.dumps({**FINDING, "line": line}) for line in range(2, n + 2)]


def test_a_report_written_in_pieces_is_the_json_a_reader_expects_and_splits_back_into_head_and_findings() -> None:
    head = {"run_id": "r1", "status": "rejected", "counts": {"rows_read": 3}, "ledger": {"nested": [1, 2]}}
    for lines in (findings(3), []):
        text = "".join(report_text(head, lines))
        assert json.loads(text) == {**head, "issues": [json.loads(line) for line in lines]}
        spooled = io.StringIO()
        assert split_report(io.StringIO(text), spooled) == head
        assert spooled.getvalue().splitlines() == lines


def test_a_report_larger_than_one_upload_part_goes_up_in_parts_and_reads_back_line_by_line(aws: MotoServer) -> None:
    boto3.client("s3").create_bucket(Bucket="reports-bucket")
    storage = Storage("reports-bucket")
    lines = findings(120_000)  # about 11 MB: three parts of S3's 5 MiB minimum
    storage.put_stream("reports/r1.json", report_text({"status": "rejected"}, lines), "application/json")
    stored = storage.lines("reports/r1.json")
    assert stored is not None
    spooled = io.StringIO()
    assert split_report(stored, spooled) == {"status": "rejected"}
    assert spooled.getvalue().splitlines() == lines
    uploads = boto3.client("s3").list_multipart_uploads(Bucket="reports-bucket").get("Uploads", [])
    assert uploads == []  # completed, nothing left dangling
