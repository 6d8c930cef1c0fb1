"""The command's refusals: a destination it cannot write, a disk that fills up, a limit set on the command
line.  Each is one line on stderr and an exit code, never a traceback, and nothing half-written is left."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from programs_bridge.cli.main import main

EXPORT = (
    "Student_Number,Last_Name,First_Name,DOB,ProgramID,Enter_Date,Exit_Date,SchoolID\n"
    "918273645,Quillfeather,Ysolde,3/4/2012,144,8/15/2025,,101\n"
)


@pytest.fixture
def export(tmp_path: Path) -> Path:
    path = tmp_path / "export.csv"
    path.write_text(EXPORT)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["convert", *argv, "--as-of", "2026-09-01"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def left_behind(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "export.csv")


@pytest.mark.parametrize(
    ("flag", "where", "said"),
    [
        ("-o", "missing/programs.txt", "folder"),
        ("-o", "/proc/programs.txt", "cannot write programs.txt /proc/programs.txt"),
        ("--report", "/proc/report.json", "cannot write the report /proc/report.json"),
        ("--report", ".", "is a folder"),
    ],
)
def test_a_destination_that_cannot_be_written_is_refused_before_any_work(
    export: Path, capsys: pytest.CaptureFixture[str], flag: str, where: str, said: str
) -> None:
    args = {"-o": str(export.parent / "programs.txt"), "--report": str(export.parent / "report.json")}
    args[flag] = where if where.startswith("/") or where == "." else str(export.parent / where)
    code, err = run(capsys, str(export), "-o", args["-o"], "--report", args["--report"])
    assert code == 64 and said in err and len(err.strip().splitlines()) == 1
    assert left_behind(export.parent) == []  # no programs.txt published before the report was found unwritable


def test_a_disk_that_fills_up_while_converting_leaves_nothing_behind(
    export: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from programs_bridge.convert import engine as convert

    def full(*_: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(convert._Staging, "add", full)
    code, err = run(capsys, str(export), "-o", str(export.parent / "programs.txt"))
    assert code == 2 and "No space left on device" in err and "nothing was kept" in err
    assert left_behind(export.parent) == []  # no staged rows, no programs.txt


def test_a_disk_still_full_when_the_staged_rows_are_closed_leaves_nothing_behind(
    export: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write that fails leaves rows in the staged file's buffer, and closing it fails the same way: the
    staged file must go all the same (it stayed beside the destination, 100 MB of student rows)."""
    from programs_bridge.convert import engine as convert

    class StillFull:
        def __init__(self, staged: Any) -> None:
            self.staged = staged

        def close(self) -> None:
            self.staged.close()
            raise OSError(errno.ENOSPC, "No space left on device")

    def full(staging: Any, *_: Any) -> None:
        staging._file = StillFull(staging._file)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(convert._Staging, "add", full)
    code, err = run(capsys, str(export), "-o", str(export.parent / "programs.txt"))
    assert code == 2 and "No space left on device" in err and "Traceback" not in err
    assert left_behind(export.parent) == []


@pytest.mark.parametrize("processes", ["off", "on"])
def test_a_conversion_killed_with_sigterm_leaves_nothing_behind(tmp_path: Path, processes: str) -> None:
    """``kill`` (a service manager stopping a job, a CI timeout) while the rows are staged: exit 143, one line,
    and the staged rows (a half-written programs.txt of student records) removed, in one process or two."""
    export = tmp_path / "export.csv"
    header, row = EXPORT.splitlines()
    export.write_text(header + "\n" + (row + "\n") * 400_000)  # about 2 s of converting: one key, all merged
    command = [sys.executable, "-m", "programs_bridge", "convert", str(export), "-o", str(tmp_path / "programs.txt")]
    child = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env={**os.environ, "PB_STAGING_PROCESS": processes}
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".programs-*.staged")) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143, err
    assert err.decode().strip() == "programs-bridge: terminated"
    assert left_behind(tmp_path) == []


def test_a_report_that_cannot_be_finished_takes_programs_txt_with_it(
    export: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from programs_bridge.cli import convert as conversion_cli

    def half_written(conversion: Any, path: Path) -> None:
        path.write_text('{"status": ')
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(conversion_cli, "save_report", half_written)
    report = export.parent / "report.json"
    code, err = run(capsys, str(export), "-o", str(export.parent / "programs.txt"), "--report", str(report))
    assert code == 2 and "could not write the report" in err and "programs.txt was not kept" in err
    assert left_behind(export.parent) == []


def test_limits_can_be_set_on_the_command_line_and_a_nonsensical_one_is_a_usage_error(
    export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(capsys, str(export), "-o", str(export.parent / "programs.txt"), "--max-columns", "3")
    assert code == 2 and "(limit max_columns)" in err
    code, err = run(capsys, str(export), "-o", str(export.parent / "programs.txt"), "--max-line-bytes", "10")
    assert code == 64 and "max_line_bytes must be a whole number from 1,024 to" in err
    # Past what the csv module can hold: a usage error, not an OverflowError's traceback.
    huge = "99999999999999999999"
    code, err = run(capsys, str(export), "-o", str(export.parent / "programs.txt"), "--max-field-bytes", huge)
    assert code == 64 and "max_field_bytes must be a whole number from 1,024 to 1,099,511,627,776" in err
    assert "Traceback" not in err
