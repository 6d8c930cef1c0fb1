"""A demo week in which the SIS export job stops half-way on the third night: that night is held whole, with
its reason, and the fourth night's complete export is delivered as usual."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from programs_bridge.cli.main import main
from programs_bridge.local.synthetic import generate


def exits(source: Path, destination: Path, count: int) -> None:
    """``source`` with ``count`` more open enrolments exited: the SIS's next night."""
    with source.open(encoding="utf-8", newline="") as text:
        header, *rows = list(csv.reader(text))
    exit_, code = header.index("SPEnrollments.Exit_Date"), header.index("SPEnrollments.ExitCode")
    for row in [row for row in rows if row[exit_] in ("", "1/1/1900")][:count]:
        row[exit_], row[code] = "6/5/2026", "EX"
    with destination.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out, lineterminator="\n").writerows([header, *rows])


def test_a_truncated_full_export_on_the_third_night_is_held_and_the_fourth_goes_through(
    tmp_path: Path, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    monday, tuesday, wednesday, thursday = (tmp_path / f"{day}.csv" for day in ("mon", "tue", "wed", "thu"))
    generate(monday, "powerschool", 300, seed=11)
    exits(monday, tuesday, 2)
    lines = tuesday.read_text(encoding="utf-8").splitlines(keepends=True)
    wednesday.write_text("".join(lines[:121]), encoding="utf-8")  # the header and 120 of 300 rows
    exits(tuesday, thursday, 3)  # complete again, and three more students exited
    out = tmp_path / "out"
    assert main(["demo", *map(str, (monday, tuesday, wednesday, thursday)), "--out", str(out)]) == 0

    reports = [json.loads((out / f"0{n}-report.json").read_text()) for n in range(1, 5)]
    assert [r["status"] for r in reports] == ["delivered", "delivered", "held", "delivered"]
    held = reports[2]
    assert held["reason_code"] == "export_shrunken" and held["reason"].startswith("held, nothing delivered")
    assert held["shrink_guard"]["fires"] and held["shrink_guard"]["dropped"] == held["counts"]["missing"] > 50
    assert not (out / "03-programs.txt").exists()
    assert reports[3]["counts"]["missing"] == 0 and not reports[3]["shrink_guard"]["fires"]
    assert reports[3]["counts"]["exits"] == 3
    assert (out / "04-programs.txt").exists()
    printed = capsys.readouterr().out
    assert (
        "03 night's export" in printed
        and ": HELD" in printed
        and "- shrink guard: this full export leaves out" in printed
    )
