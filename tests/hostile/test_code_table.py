"""A code table that cannot be read exactly is refused as configuration, with its reason, never half-read.

The Student Programs code table decides which rows are rejected (``unknown_program``), so a table read
wrongly rejects good rows or lets bad ones through, every night, until someone notices.  An unclosed quote
silently swallowed every code after it; a NUL or a workbook saved under a .csv name was read as codes; a
value past the csv module's limit crashed the command with a traceback.  Each is now a ``CodeTableError``:
exit 64 from the command, a ``config`` failure from the pipeline, with the line and the reason.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pipeline.conftest import BUCKET, FEED, Stack, stack  # noqa: F401  (stack: the pipeline's end-to-end fixture)
from programs_bridge.cli.main import main
from programs_bridge.convert.codetable import CodeTableError, load_code_table

HEADER = "Student_Number,Last_Name,First_Name,DOB,ProgramID,Enter_Date,Exit_Date,SchoolID"
GOOD = "918273645,Quillfeather,Ysolde,3/4/2012,144,8/15/2025,,101"
TABLE = "Code Key,Description,System Key\n144,Special Education,\n101,504 Plan,504_plan\n"

MALFORMED = {
    "an unclosed quote": (
        b'Code Key,Description\n144,"Special Education\n101,504 Plan\n181,Free Meal\n',
        'the row starting on line 2 cannot be read: a quoted value is never closed (a stray " quote)',
    ),
    "text after a closing quote": (
        b'Code Key,Description\n"144"A,Special Education\n',
        "the row starting on line 2 cannot be read: a closing quote is followed by more text",
    ),
    "a value past the csv limit": (
        b"Code Key,Description\n144," + b"x" * 200_000 + b"\n",
        "the row starting on line 2 cannot be read: a value is longer than any code or description",
    ),
    "a NUL": (b"Code Key,Description\n14\x004,Special Education\n", "line 2 holds a NUL character"),
    "UTF-16 without a byte-order mark": (TABLE.encode("utf-16-le"), "line 1 holds a NUL character"),
    "random bytes": (random.Random(9).randbytes(4096), "is not a text CSV"),
    "a workbook": (b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 4, "is not a text CSV"),
    "a file far too big": (TABLE.encode() + b"999,Other\n" * 120_000, "far more than a code table's few rows"),
}


def write(tmp_path: Path, raw: bytes) -> Path:
    path = tmp_path / "codes.csv"
    path.write_bytes(raw)
    return path


@pytest.mark.parametrize("damage", sorted(MALFORMED))
def test_a_malformed_code_table_is_refused_with_its_reason(tmp_path: Path, damage: str) -> None:
    raw, reason = MALFORMED[damage]
    with pytest.raises(CodeTableError) as caught:
        load_code_table(write(tmp_path, raw))
    assert reason in str(caught.value)
    assert str(tmp_path / "codes.csv") in str(caught.value)


@pytest.mark.parametrize("damage", sorted(MALFORMED))
def test_the_command_exits_64_with_the_reason_and_no_traceback(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    raw, reason = MALFORMED[damage]
    export = tmp_path / "export.csv"
    export.write_text(f"{HEADER}\n{GOOD}\n", encoding="utf-8")
    out = tmp_path / "programs.txt"
    code = main(["convert", str(export), "-o", str(out), "--code-table", str(write(tmp_path, raw))])
    err = capsys.readouterr().err
    assert code == 64
    assert "Traceback" not in err and reason in err
    assert not out.exists()


def test_a_code_table_saved_as_unicode_text_with_invisible_characters_still_reads(tmp_path: Path) -> None:
    """Excel's "Unicode Text" is UTF-16 with a byte-order mark; a pasted code can carry a zero-width space."""
    table = load_code_table(write(tmp_path, TABLE.replace("144,", "\u200b144\u200b,").encode("utf-16")))
    assert "144" in table and table.code_504 == "101"


@pytest.mark.parametrize("damage", ["an unclosed quote", "random bytes"])
def test_the_pipeline_fails_a_run_on_a_malformed_code_table_as_config_and_keeps_the_export(
    stack: Stack,  # noqa: F811
    damage: str,
) -> None:
    raw, reason = MALFORMED[damage]
    stack.s3.put_object(Bucket=BUCKET, Key="config/codes.csv", Body=raw)
    stack.put_config('code_table = "codes.csv"\n' + stack.config())
    event = stack.drop(f"{HEADER}\n{GOOD}\n")
    assert len(stack.invoke(event)["batchItemFailures"]) == 1
    [report] = stack.reports()
    assert report["status"] == "failed" and report["failure"] == "config"
    assert "config/codes.csv" in report["reason"] and reason in report["reason"]
    assert len(stack.keys(f"incoming/{FEED}/")) == 1
    assert stack.delivered() is None


def test_the_pipeline_fails_a_run_on_a_feed_configuration_that_is_not_text_as_config(
    stack: Stack,  # noqa: F811
) -> None:
    stack.s3.put_object(Bucket=BUCKET, Key=f"config/{FEED}.toml", Body=random.Random(3).randbytes(512))
    assert len(stack.invoke(stack.drop(f"{HEADER}\n{GOOD}\n"))["batchItemFailures"]) == 1
    [report] = stack.reports()
    assert report["status"] == "failed" and report["failure"] == "config"
    assert f"config/{FEED}.toml is not UTF-8 text" in report["reason"]
