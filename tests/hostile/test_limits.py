"""Limits with a name: a file past what any export holds stops there, says which limit and which line.

Before these limits, a gigabyte of ``A`` without a line break (a megabyte gzipped) took 2.1 GB of memory, a
ten-megabyte unquoted value was reported as "a quote opened on line 6 is never closed" when there was no
quote, and millions of delimiter-only lines vanished from every count.  The limits (``ReadLimits``, README
"What it reads") are far beyond any real export; each refusal is a LimitError whose ``code`` says which way
the file went past, ``limit`` names the setting and ``line`` the physical line.

Hostile inputs are generated on the fly, gzip bombs as one small member written many times (gzip streams
may hold several), so no test writes more than a few megabytes or runs for more than a second or two.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from programs_bridge.cli.main import main
from programs_bridge.convert.reader import ExportReader, LimitError, ReadLimits

MIB = 1 << 20
HEADER = b"Student_Number,Last_Name,First_Name,ProgramID\n"
ROWS = b"00123,Lee,Ann,101\n00456,Kim,Bo,127\n00789,Ray,Cy,144\n00790,Roe,Di,101\n"  # lines 2-5
FIRST_ROWS = ROWS.splitlines(keepends=True)


def gzip_bomb(path: Path, block: bytes, repeats: int, *, before: bytes = b"", after: bytes = b"") -> Path:
    """``before``, then ``block`` ``repeats`` times, gzipped: each block one small member written again."""
    member = gzip.compress(block, compresslevel=9)
    with path.open("wb") as out:
        if before:
            out.write(gzip.compress(before))
        for _ in range(repeats):
            out.write(member)
        out.write(after)
    return path


def refusal(path: Path, **options: object) -> LimitError:
    """The LimitError that reading ``path`` to the end raises."""
    with pytest.raises(LimitError) as raised, ExportReader(path, **options) as reader:  # type: ignore[arg-type]
        for _ in reader.rows():
            pass
    return raised.value


def write(tmp_path: Path, data: bytes, name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- size: the file, one line, one value, the header -----------------------------------------------------

#: Opens the file in a child process whose address space is capped at 1 GiB (today's limits must stop long
#: before; without them the reader ran out), and prints what was refused and the child's own peak memory
#: (VmHWM: the high-water mark of this process alone, unlike ru_maxrss, which a child inherits from pytest).
READ_IN_A_CHILD = """
import json, resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from programs_bridge.convert.reader import ExportReader, LimitError
try:
    ExportReader(Path(sys.argv[1])).close()
    outcome = {"refused": None}
except LimitError as exc:
    outcome = {"refused": exc.code, "limit": exc.limit, "line": exc.line, "message": str(exc)}
status = Path("/proc/self/status").read_text()
outcome["peak_kib"] = int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1])
print(json.dumps(outcome))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak memory from /proc (Linux)")
def test_a_gigabyte_without_a_line_break_stops_at_the_line_limit_in_little_memory(tmp_path: Path) -> None:
    bomb = gzip_bomb(tmp_path / "export.csv.gz", b"A" * MIB, 1024)  # 1 GiB of text, about 1 MB on disk
    assert bomb.stat().st_size < 2 * MIB

    child = subprocess.run(
        [sys.executable, "-c", READ_IN_A_CHILD, str(bomb)], capture_output=True, text=True, timeout=120, check=False
    )

    assert child.returncode == 0, child.stderr[-2000:]
    outcome = json.loads(child.stdout)
    assert (outcome["refused"], outcome["limit"], outcome["line"]) == ("line_too_long", "max_line_bytes", 1)
    assert outcome["message"].startswith("line 1 is longer than 1 MiB")
    assert outcome["peak_kib"] < 150 * 1024, f"peak {outcome['peak_kib'] / 1024:.0f} MiB"


def test_a_decompression_bomb_stops_at_max_bytes_without_reading_further(tmp_path: Path) -> None:
    # 64 MiB of valid 4-byte rows, then a damaged member: read beyond the limit, it would say "damaged".
    bomb = gzip_bomb(tmp_path / "export.csv", b"1,2\n" * (MIB // 4), 64, before=b"A,B\n", after=b"\x1f\x8b\x08\x00junk")

    refused = refusal(bomb, limits=ReadLimits(max_bytes=4 * MIB))

    assert (refused.code, refused.limit) == ("file_too_large", "max_bytes")
    assert refused.line == 4 * MIB // 4 + 1  # the line holding the first byte past the limit
    assert str(refused) == (
        "the file holds more than 4 MiB of text once decompressed, more than any export should (limit max_bytes); "
        f"reading stopped on line {refused.line:d}: is this the right file?"
    )


def test_a_ten_megabyte_unquoted_value_is_named_as_too_long_not_as_an_open_quote(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROWS + b"00999,Lee," + b"A" * (10 * MIB) + b",101\n00998,Kim,Bo,101\n")

    refused = refusal(path)

    assert (refused.code, refused.limit, refused.line) == ("line_too_long", "max_line_bytes", 6)
    assert str(refused).startswith("line 6 is longer than 1 MiB, more than any export's rows (limit max_line_bytes)")
    assert "quote" not in str(refused)


@pytest.mark.parametrize("size", [100_000, 200_000], ids=["under csv's own limit", "over csv's own limit"])
def test_a_value_longer_than_max_field_bytes_names_its_row_and_the_limit(tmp_path: Path, size: int) -> None:
    path = write(tmp_path, HEADER + ROWS + b"00999,Lee," + b"A" * size + b",101\n00998,Kim,Bo,101\n")

    refused = refusal(path)

    assert (refused.code, refused.limit, refused.line) == ("value_too_large", "max_field_bytes", 6)
    assert str(refused).startswith("the row starting on line 6 has a value longer than 64 KiB")
    assert "quote" not in str(refused)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_a_value_too_large_on_a_last_line_without_a_line_break_is_refused_too(tmp_path: Path, encoding: str) -> None:
    text = (HEADER + ROWS).decode() + "00999,Lee," + "A" * 100_000 + ",101"  # no line break at the end
    path = write(tmp_path, text.encode(encoding))

    refused = refusal(path)

    assert (refused.code, refused.line) == ("value_too_large", 6)


def test_a_quoted_value_spanning_lines_past_max_field_bytes_names_the_row_it_starts_in(tmp_path: Path) -> None:
    note = b"\n".join([b"x" * 49] * 2_000)  # 100,000 bytes over 2,000 lines, each of them short
    path = write(tmp_path, HEADER + ROWS + b'00999,"' + note + b'",Ann,101\n00998,Kim,Bo,101\n')

    refused = refusal(path)

    assert (refused.code, refused.line) == ("value_too_large", 6)
    assert str(refused).startswith("the row starting on line 6 has a value longer than 64 KiB that runs over 2000")


def test_a_row_of_endless_small_quoted_values_stops_at_max_line_bytes(tmp_path: Path) -> None:
    # Each value is a quoted line break: no value is long, no line is long, but the row never ends.
    path = write(tmp_path, HEADER + FIRST_ROWS[0] + b'00999,"\n",' * 200_000 + b"101\n")

    refused = refusal(path)

    assert (refused.code, refused.limit, refused.line) == ("line_too_long", "max_line_bytes", 3)
    assert str(refused).startswith("the row starting on line 3 runs over")


def test_a_header_with_more_columns_than_max_columns_is_refused(tmp_path: Path) -> None:
    header = ",".join(f"Column {n}" for n in range(600)).encode() + b"\n"

    refused = refusal(write(tmp_path, header + b"1" + b",1" * 599 + b"\n"))

    assert (refused.code, refused.limit, refused.line) == ("too_many_columns", "max_columns", 1)
    assert "has 600 columns, more than the 500" in str(refused)


def test_each_limit_can_be_set_and_a_nonsensical_one_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROWS)

    assert refusal(path, limits=ReadLimits(max_columns=3)).code == "too_many_columns"
    with ExportReader(path, limits=ReadLimits(max_columns=4, max_line_bytes=1024, max_field_bytes=1024)) as reader:
        assert len(list(reader.rows())) == 4
    with pytest.raises(ValueError, match="max_line_bytes must be a whole number from 1,024 to"):
        ReadLimits(max_line_bytes=100)


def test_a_limit_refusal_reaches_the_clerk_as_one_sentence_with_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = b"Students.Student_Number,Students.Last_Name,Students.First_Name,Students.DOB,SPEnrollments.ProgramID,"
    path = write(tmp_path, header + b"SPEnrollments.Enter_Date\n1,Lee,Ann,3/4/2012,101,8/15/2025\n" + b"9" * 2 * MIB)

    assert main(["convert", str(path), "-o", str(tmp_path / "programs.txt")]) == 2

    err = capsys.readouterr().err
    assert "line 3 is longer than 1 MiB" in err and "(limit max_line_bytes)" in err
    assert "Traceback" not in err
    assert not (tmp_path / "programs.txt").exists()


# --- every physical line is counted ----------------------------------------------------------------------


def test_every_physical_line_is_counted_blank_and_delimiter_only_ones_included(tmp_path: Path) -> None:
    leftovers = b",,,,,,,,\n" * 200_000 + b"\n" * 1_000 + b'"",,"",\n' * 10
    data = b"\n,,,\n" + HEADER + b"".join(FIRST_ROWS[:2]) + leftovers + b'00999,"Lee\nJr",Ann,101\n' + leftovers

    with ExportReader(write(tmp_path, data)) as reader:
        rows = list(reader.rows())
    counts = reader.counts

    assert len(rows) == counts.rows == 3
    assert counts.blank == 2 + 2 * 201_010
    assert counts.continued == 1
    assert counts.lines == data.count(b"\n") == 1 + counts.rows + counts.blank + counts.damaged + counts.continued


def test_a_gzip_stream_of_delimiter_only_lines_is_counted_not_lost(tmp_path: Path) -> None:
    bomb = gzip_bomb(tmp_path / "export.csv.gz", b",,,,,,,,,,\n" * 100_000, 2, before=HEADER + ROWS)

    with ExportReader(bomb) as reader:
        rows = list(reader.rows())

    assert (len(rows), reader.counts.blank, reader.counts.lines) == (4, 200_000, 200_005)


def test_a_conversion_refused_at_a_limit_says_which_limit_in_its_report(tmp_path: Path) -> None:
    from datetime import date

    from programs_bridge.convert.engine import ConvertOptions, convert_export
    from programs_bridge.report.conversion import report_head

    path = write(tmp_path, HEADER + ROWS)
    options = ConvertOptions(today=date(2026, 9, 1), read_limits=ReadLimits(max_columns=3))
    conversion = convert_export(path, tmp_path / "programs.txt", options)
    head = report_head(conversion)
    assert (head["status"], head["reason_code"]) == ("rejected", "too_many_columns")
    assert "(limit max_columns)" in head["reason"]
