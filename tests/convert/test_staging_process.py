"""Staging in a second process (``convert/staging_process.py``) changes nothing a district sees.

Every case of the column path's property test is converted with the second process and without it: the
programs.txt bytes, the report (findings in order, duplicates merged and rejected) and the source lines must be
identical, in every output format, including the legacy layout that has no Site ID.  And a second process
that dies is an error that says so, never a programs.txt with rows missing.
"""

from __future__ import annotations

import csv
import errno
import subprocess
import sys
from pathlib import Path

import pytest

from programs_bridge.convert import engine, staging_process
from programs_bridge.convert.engine import ConvertOptions
from programs_bridge.convert.staging_process import StagingProcess, StagingProcessError
from programs_bridge.local.synthetic import PROFILES, records
from programs_bridge.programs_txt.layout import LEGACY, STANDARD, key_positions
from programs_bridge.programs_txt.render import OutputFormat

from .test_columns import CASES, TODAY, _convert, _export

FORMATS = {
    "standard": OutputFormat(),
    "legacy, CRLF, no header": OutputFormat(layout=LEGACY, header=False, newline="\r\n"),
}


Converted = tuple[bytes, str, bytes]


def _both_ways(
    source: Path, out: Path, options: dict[str, object], output: OutputFormat = FORMATS["standard"]
) -> tuple[Converted, Converted]:
    """programs.txt, the report and the source lines of ``source`` converted in one process, then in two."""

    def converted(helper: bool) -> Converted:
        return _convert(
            source, out, ConvertOptions(
                today=TODAY, max_reject_share=1.0, keep_source_lines=True, output=output, staging_process=helper,
                **options,  # type: ignore[arg-type]
            ),
        )  # fmt: skip

    return converted(False), converted(True)


@pytest.mark.parametrize("output", sorted(FORMATS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_second_process_gives_the_same_output_report_and_source_lines(
    case: str, output: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile, options = CASES[case]
    monkeypatch.setattr(engine, "_BATCH", 37)  # many batches, and damage at every place in one
    for seed, share in ((0, 0.1), (1, 0.3)):  # share 0.3: many rows merged and rejected as duplicates
        source = tmp_path / f"{profile}-{seed}.txt"
        _export(source, profile, 400, seed, share=share)
        alone, helped = _both_ways(source, tmp_path / "programs.txt", options(), FORMATS[output])
        assert helped[0] == alone[0], f"{case}, seed {seed}: programs.txt differs"
        assert helped[1] == alone[1], f"{case}, seed {seed}: the report differs"
        assert helped[2] == alone[2], f"{case}, seed {seed}: the source lines differ"
        if share == 0.3 and helped[0]:  # the duplicate finder had work to do (unless the file was refused)
            assert "duplicate_" in helped[1], case


@pytest.mark.parametrize("repeated", [9_000, 40_000])
def test_many_repeated_keys_give_the_same_output_in_two_processes(repeated: int, tmp_path: Path) -> None:
    """An export appended to itself: every key a suspect.  9,000 suspects are more than the answer pipe
    holds at once (the converter once waited for the second process while that one waited to be read:
    the conversion hung); 40,000 are past the exact set, so pass 1 hands over its bitset."""
    source = tmp_path / "appended.csv"
    shape = PROFILES["powerschool"]
    rows = [record.fields for record in records("powerschool", repeated, seed=3)]
    with source.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerows([shape.header, *rows, *rows])
    alone, helped = _both_ways(source, tmp_path / "programs.txt", {})
    assert helped == alone
    assert f'"rows_merged": {repeated}' in helped[1]


def test_a_module_in_the_current_folder_does_not_run_in_the_second_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m`` puts the current folder first on the path; a json.py dropped where a clerk runs the
    converter must not be imported by the second process."""
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "json.py").write_text("raise SystemExit('a json.py from the current folder ran')\n")
    source = tmp_path / "export.csv"
    _export(source, "powerschool", 200, 0, share=0.1)
    monkeypatch.chdir(folder)
    alone, helped = _both_ways(source, tmp_path / "programs.txt", {})
    assert helped == alone


def test_a_second_process_that_dies_is_an_error_not_a_short_file(tmp_path: Path) -> None:
    """Bytes that are no batch make the second process fail: the converter is told, by exit code, and the
    second process says only the type of what went wrong, nothing from the rows."""
    with (tmp_path / "staged").open("w") as staged, (tmp_path / "spool").open("w+b") as spool:
        helper = StagingProcess(staged, spool, key_positions(STANDARD), "\n")
        helper._pipe.write(staging_process._FRAME.pack(4, 1, True) + b"\xff\xfe\x00\x00" + bytes(8))
        with pytest.raises(StagingProcessError, match=r"exit code 70\) before every row was staged"):
            helper.finish()
        helper.close()


def test_a_full_disk_in_the_second_process_is_the_same_error_as_at_home(tmp_path: Path) -> None:
    """The command line and the pipeline say "No space left on device" for a full disk: so must the
    second process's failure, with the errno, not a bare exit code."""
    with Path("/dev/full").open("w") as staged, (tmp_path / "spool").open("w+b") as spool:
        helper = StagingProcess(staged, spool, key_positions(STANDARD), "\n")
        helper.send("918273645\t\tQuillfeather\n", [2], folded=True)
        with pytest.raises(OSError, match="No space left on device") as raised:
            helper.finish()
        helper.close()
    assert raised.value.errno == errno.ENOSPC


def test_the_second_process_names_no_value_when_it_fails(tmp_path: Path) -> None:
    row = "Garc\u00eda\t1\n".encode("latin-1")  # not UTF-8: the second process cannot read it
    frame = staging_process._FRAME.pack(len(row), 1, True) + row + bytes(8)
    with (tmp_path / "staged").open("wb") as staged, (tmp_path / "spool").open("wb") as spool:
        fds = (staged.fileno(), spool.fileno())
        run = subprocess.run(
            [sys.executable, "-m", staging_process.__name__, *map(str, fds), "lf", "0", "5", "9", "7", "14"],
            input=frame, capture_output=True, check=False, pass_fds=fds,
        )  # fmt: skip
    assert run.returncode == 70
    assert run.stderr.decode() == "staging process: UnicodeDecodeError\n"


def test_only_a_large_file_on_a_machine_with_a_second_cpu_gets_a_second_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(staging_process.SETTING, raising=False)
    monkeypatch.setattr(staging_process, "_cpus", lambda: 2.0)
    assert staging_process.wanted(staging_process.WORTH_FROM_BYTES)
    assert not staging_process.wanted(staging_process.WORTH_FROM_BYTES - 1)
    monkeypatch.setattr(staging_process, "_cpus", lambda: 1.0)
    assert not staging_process.wanted(1 << 40)


@pytest.mark.parametrize(
    ("memory_mb", "second_process"), [("1024", False), ("2048", False), ("2240", True), ("10240", True)]
)
def test_on_lambda_the_memory_size_says_how_much_cpu_there_is(
    memory_mb: str, second_process: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Lambda shows two CPUs whatever its memory, and gives one CPU's worth of time per 1,769 MB."""
    monkeypatch.setattr(staging_process.os, "sched_getaffinity", lambda _: {0, 1}, raising=False)
    monkeypatch.setattr(staging_process, "_CGROUP_CPU_MAX", tmp_path / "no cgroup here")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb)
    monkeypatch.delenv(staging_process.SETTING, raising=False)
    assert staging_process.wanted(1 << 30) is second_process


@pytest.mark.parametrize(("cpu_max", "second_process"), [("max 100000", True), ("100000 100000", False)])
def test_a_cgroup_quota_says_how_much_cpu_there_is(
    cpu_max: str, second_process: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A container limited to one CPU on a larger machine (``docker run --cpus 1``) gets no second process."""
    monkeypatch.setattr(staging_process.os, "sched_getaffinity", lambda _: {0, 1, 2, 3}, raising=False)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", raising=False)
    monkeypatch.delenv(staging_process.SETTING, raising=False)
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    monkeypatch.setattr(staging_process, "_CGROUP_CPU_MAX", tmp_path / "cpu.max")
    assert staging_process.wanted(1 << 30) is second_process


@pytest.mark.parametrize(
    ("setting", "second_process"),
    [("on", True), ("true", True), ("1", True), ("OFF", False), ("false", False), ("no", False), ("", False)],
)
def test_the_setting_overrides_the_choice(setting: str, second_process: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """``PB_STAGING_PROCESS=on`` on a small file, ``off`` on a large one; anything else leaves it to size."""
    monkeypatch.setattr(staging_process, "_cpus", lambda: 2.0)
    monkeypatch.setenv(staging_process.SETTING, setting)
    size = 1 << 30 if setting.lower() in ("off", "false", "no") else 1 << 20
    assert staging_process.wanted(size) is second_process
