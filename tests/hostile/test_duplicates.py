"""Repeated records: a file appended to itself, one row a million times, keys that differ only in letter case.

Each is a real SIS or clerk mistake.  The bridge must send each record once (or refuse contradicting rows),
say which lines it means without quoting a student ID, and do it in memory that stays flat however many rows
repeat: the memory tests measure pass 2 of the duplicate finder at two sizes of the same shape, with its
budgets shrunk so that small files already take the paths a two-million-row file takes (the 2M figures
themselves are in ``make bench``).
"""

from __future__ import annotations

import gzip
import tracemalloc
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from conftest import PERSONAL_VALUES
from programs_bridge.convert import dedupe
from programs_bridge.convert import engine as convert
from programs_bridge.convert.engine import Conversion, ConvertOptions, Status, convert_export
from programs_bridge.local.synthetic import generate

HEADER = (
    "Student_Number,State_StudentNumber,Last_Name,First_Name,Middle_Name,DOB,ProgramID,"
    "Enter_Date,Exit_Date,ExitCode,SchoolID"
)
TODAY = date(2026, 9, 1)
LETTER_IDS = ("ab123", "AB123", "Ab123", "ab124", "xq5501", "XQ5501")
PERSONAL_VALUES.update(LETTER_IDS)  # the suite-wide log check looks for these too


def row(student: str, program: str = "144", end: str = "", site: str = "101") -> str:
    return f"{student},,Doe,Sam,,1/1/2012,{program},8/15/2025,{end},,{site}"


def run(tmp_path: Path, lines: list[str], **options: Any) -> tuple[Conversion, Path]:
    source = tmp_path / "export.csv"
    source.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return convert_file(source, tmp_path / "programs.txt", **options)


def convert_file(source: Path, destination: Path, **options: Any) -> tuple[Conversion, Path]:
    return convert_export(source, destination, ConvertOptions(today=TODAY, **options)), destination


def findings(conversion: Conversion, code: str) -> list[dict[str, Any]]:
    return [f for f in conversion.findings.as_dicts() if f["code"] == code]


# --- letter case -------------------------------------------------------------------------------------------


def test_ids_that_differ_only_in_letter_case_are_both_sent_with_a_warning_naming_both_lines(
    tmp_path: Path,
) -> None:
    lines = [row("004521"), row("ab123"), row("004522"), row("AB123")]
    more_than_case = [row("AB124"), row("ab123", site="102"), row("AB123", "145")]  # other records
    conversion, out = run(tmp_path, lines + more_than_case)
    assert conversion.status is Status.OK
    assert conversion.rows_written == 7
    text = out.read_text(encoding="utf-8")
    assert "ab123\t" in text and "AB123\t" in text
    [finding] = conversion.findings.as_dicts()
    assert (finding["code"], finding["severity"], finding["line"]) == ("duplicate_case_only", "warning", 5)
    assert finding["message"] == (
        "same record key as line 3 except for letter case in Import Student ID: Illuminate may treat them as "
        "one record; both were sent, so check which spelling the SIS should have"
    )


def test_program_ids_that_differ_only_in_letter_case_are_named_as_such(tmp_path: Path) -> None:
    conversion, _ = run(tmp_path, [row("004521", "gate"), row("004521", "GATE"), row("Ab123", "Gate")])
    assert conversion.rows_written == 3
    [finding] = conversion.findings.as_dicts()  # line 4 is another student: not the same record
    assert (finding["code"], finding["line"]) == ("duplicate_case_only", 3)
    assert "as line 2 except for letter case in Program ID:" in finding["message"]


def test_a_case_warning_never_quotes_the_ids(tmp_path: Path) -> None:
    conversion, _ = run(tmp_path, [row("xq5501", "gate"), row("XQ5501", "GATE")])
    [finding] = conversion.findings.as_dicts()
    assert (finding["code"], finding["line"]) == ("duplicate_case_only", 3)
    assert "Import Student ID and Program ID" in finding["message"]
    assert not any(value.casefold() in finding["message"].casefold() for value in LETTER_IDS)
    assert "gate" not in finding["message"].casefold()


def test_a_repeated_record_and_its_case_variant_are_merged_and_warned_about_once_each(tmp_path: Path) -> None:
    conversion, out = run(tmp_path, [row("AB123"), row("AB123"), row("ab123"), row("ab123"), row("Ab123")])
    assert conversion.status is Status.OK
    assert (conversion.rows_written, conversion.rows_merged) == (3, 2)
    assert [(f["line"], f["code"]) for f in conversion.findings.as_dicts()] == [
        (3, "duplicate_merged"),
        (4, "duplicate_case_only"),
        (5, "duplicate_merged"),
        (6, "duplicate_case_only"),
    ]
    assert all("line 2" in f["message"] for f in findings(conversion, "duplicate_case_only"))
    assert "line 4" in conversion.findings.as_dicts()[2]["message"]  # merged into its own spelling
    assert out.read_text(encoding="utf-8").count("Doe") == 3


def test_case_variants_with_different_values_are_both_kept_not_rejected(tmp_path: Path) -> None:
    conversion, _ = run(tmp_path, [row("ab123"), row("AB123", end="6/1/2026")])
    assert (conversion.status, conversion.rows_written, conversion.rows_rejected) == (Status.OK, 2, 0)
    assert [f["code"] for f in conversion.findings.as_dicts()] == ["duplicate_case_only"]


# --- many rows of one record -------------------------------------------------------------------------------


def test_a_thousand_contradicting_rows_of_one_record_each_get_a_short_finding(tmp_path: Path) -> None:
    lines = [row("004521", end=f"6/{1 + n % 28}/2026") for n in range(1000)] + [row("004522")]
    conversion, out = run(tmp_path, lines, max_reject_share=1.0)
    assert (conversion.status, conversion.rows_written, conversion.rows_rejected) == (Status.PARTIAL, 1, 1000)
    conflicts = findings(conversion, "duplicate_conflict")
    assert [f["line"] for f in conflicts] == list(range(2, 1002))
    assert "as line 3 and 998 other lines but different values" in conflicts[0]["message"]
    assert "as line 2 and 998 other lines but different values" in conflicts[500]["message"]
    assert max(len(f["message"]) for f in conflicts) < 250  # not a list of 999 line numbers, a thousand times
    assert "004521" not in out.read_text(encoding="utf-8")


# --- the shapes of issue 9, small, with pass 2's memory measured -------------------------------------------


@pytest.fixture
def pass_two_memory(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Pass 2's own peak (the most it had allocated at once, traced from its start), one entry a
    conversion, with the duplicate finder's fixed sizes shrunk to a small file's scale, so that a few
    thousand rows fill them as a million would: a few partitions' worth of keys, suspects in the bitset
    after a few hundred, and small reads and file buffers."""
    shrunk = {
        "_PARTITION_BUDGET": 96 << 10,
        "_SUSPECTS_IN_SET": 256,
        "_READ_ITEMS": 1 << 10,
        "_BUFFERS": 1 << 16,
        "_MIN_BUFFER": 1 << 9,
        "_MAX_BUFFER": 1 << 14,
        "_DECISIONS_BUFFERED": 1 << 8,
    }
    for name, value in shrunk.items():
        monkeypatch.setattr(dedupe, name, value, raising=False)
    peaks: list[int] = []
    second_pass = convert._second_pass

    def measured(staged: Any, result: Conversion) -> None:
        tracemalloc.start()
        try:
            second_pass(staged, result)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()

    monkeypatch.setattr(convert, "_second_pass", measured)
    return peaks


def flat(peaks: list[int]) -> bool:
    """The larger file's pass 2 needs at most 10% (and 256 KiB of slack) more than the smaller one's."""
    small, large = peaks
    return large <= small * 1.1 + (256 << 10)


def export(tmp_path: Path, name: str, rows: int) -> list[str]:
    path = tmp_path / name
    generate(path, "powerschool", rows, seed=7)
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_an_export_appended_to_itself_is_sent_once_in_flat_memory(tmp_path: Path, pass_two_memory: list[int]) -> None:
    for size in (1_000, 8_000):
        original = export(tmp_path, f"original-{size}.csv", size)
        doubled = tmp_path / f"doubled-{size}.csv"
        doubled.write_text("".join(original + original[1:]), encoding="utf-8")
        once, once_out = convert_file(tmp_path / f"original-{size}.csv", tmp_path / f"once-{size}.txt")
        twice, twice_out = convert_file(doubled, tmp_path / f"twice-{size}.txt")
        assert twice_out.read_bytes() == once_out.read_bytes()
        assert (twice.rows_read, twice.rows_merged, twice.rows_written) == (2 * size, size, once.rows_written)
        merged = findings(twice, "duplicate_merged")
        assert [f["line"] for f in merged] == list(range(size + 2, 2 * size + 2))
        assert all(f"as line {f['line'] - size}," in f["message"] for f in merged)
    assert flat(pass_two_memory[1::2]), pass_two_memory  # the doubled files' pass 2 (the originals have none)


def test_one_row_repeated_in_a_gzip_file_is_sent_once_in_flat_memory(
    tmp_path: Path, pass_two_memory: list[int]
) -> None:
    header, first = export(tmp_path, "one.csv", 1)
    for size in (2_000, 16_000):
        source = tmp_path / f"same-{size}.csv.gz"
        source.write_bytes(gzip.compress((header + first * size).encode("utf-8")))
        conversion, out = convert_file(source, tmp_path / f"same-{size}.txt")
        assert (conversion.status, conversion.rows_written, conversion.rows_merged) == (Status.OK, 1, size - 1)
        assert len(out.read_text(encoding="utf-8").splitlines()) == 2  # the header and the one record
        merged = findings(conversion, "duplicate_merged")
        assert len(merged) == size - 1 and all("as line 2," in f["message"] for f in merged)
    assert flat(pass_two_memory), pass_two_memory


def test_an_export_listed_again_in_capitals_is_sent_whole_with_a_warning_a_row_in_flat_memory(
    tmp_path: Path, pass_two_memory: list[int]
) -> None:
    for size in (1_000, 8_000):
        lower = [row(f"s{n:05d}", program="gate") for n in range(size)]
        conversion, _ = run(tmp_path, [*lower, *(line.upper() for line in lower)])
        assert (conversion.status, conversion.rows_written) == (Status.OK, 2 * size)
        warned = findings(conversion, "duplicate_case_only")
        assert [f["line"] for f in warned] == list(range(size + 2, 2 * size + 2))
        assert all(f"as line {f['line'] - size} except" in f["message"] for f in warned)
        assert all("in Import Student ID and Program ID:" in f["message"] for f in warned)
    assert flat(pass_two_memory), pass_two_memory
