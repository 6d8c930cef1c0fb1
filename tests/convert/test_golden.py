"""Every bundled sample through the real command, compared byte for byte with a reviewed programs.txt.

The samples are generated (``make samples``) and a test in test_synthetic.py proves they match the generator;
the expected outputs here were reviewed by hand.  After a deliberate change of output, regenerate them with
``UPDATE_GOLDEN=1 make test`` and review the diff like any other change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from programs_bridge.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
GOLDEN = Path(__file__).parent / "golden"
AS_OF = "2026-09-01"  # the synthetic data's reference day: birth dates are judged as of then

CASES = {
    "powerschool.csv": (0, []),
    "aeries.csv": (0, []),
    "infinite-campus.tsv": (0, []),
    "illuminate.txt": (0, []),
    "illuminate-report.csv": (0, []),
    "damaged-cp1252.csv": (0, []),
    "damaged-excel.csv": (1, ["--max-reject-share", "1"]),
    "synergy.csv": (0, []),
    "calpads-sprg.txt": (0, ["--mapping", str(SAMPLES / "calpads-sprg-codes.toml")]),
    "damaged-calpads-sprg.txt": (0, ["--mapping", str(SAMPLES / "calpads-sprg-codes.toml")]),
}


def _check(actual: bytes, expected_path: Path) -> None:
    if os.environ.get("UPDATE_GOLDEN"):
        expected_path.write_bytes(actual)
    assert actual == expected_path.read_bytes(), f"output differs from {expected_path.name}"


@pytest.mark.parametrize("sample", sorted(CASES))
def test_each_bundled_sample_converts_to_its_reviewed_programs_txt(sample: str, tmp_path: Path) -> None:
    exit_code, extra = CASES[sample]
    out, report = tmp_path / "programs.txt", tmp_path / "report.json"
    args = ["convert", str(SAMPLES / sample), "-o", str(out), "--report", str(report), "--as-of", AS_OF, *extra]
    assert main(args) == exit_code
    _check(out.read_bytes(), GOLDEN / f"{sample}.programs.txt")
    findings = json.loads(report.read_text(encoding="utf-8"))["issues"]
    listed = "".join(f"{f['line']}\t{f['column']}\t{f['severity']}\t{f['code']}\n" for f in findings)
    _check(listed.encode(), GOLDEN / f"{sample}.findings.tsv")


def test_the_damaged_sample_is_rejected_whole_under_the_default_5_percent_limit(tmp_path: Path) -> None:
    out = tmp_path / "programs.txt"
    assert main(["convert", str(SAMPLES / "damaged-excel.csv"), "-o", str(out), "--as-of", AS_OF]) == 2
    assert not out.exists()


def test_the_course_roster_is_refused_as_the_wrong_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "programs.txt"
    assert main(["convert", str(SAMPLES / "wrong-file-course-roster.csv"), "-o", str(out)]) == 2
    assert not out.exists()
    assert "matches no known program export" in capsys.readouterr().err
