"""The README's laptop example prints what the README shows: a newcomer's first command must not disagree
with the page that told them to type it."""

from __future__ import annotations

from pathlib import Path

import pytest

from programs_bridge.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def _shown_block() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    after = readme.split("The second sample was damaged on purpose", 1)[1]
    block = after.split("```", 2)[1]
    return [line for line in block.splitlines() if line.strip()]


def test_the_laptop_example_prints_what_the_readme_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)  # the README's command is typed in the project's folder
    out, report = tmp_path / "programs.txt", tmp_path / "report.json"
    code = main(["convert", "samples/damaged-excel.csv", "-o", str(out), "--report", str(report)])
    captured = capsys.readouterr()
    printed = (captured.out + captured.err).splitlines()
    assert code == 2 and not out.exists()
    shown = _shown_block()
    assert len(shown) >= 5
    for want, got in zip(shown, printed, strict=False):
        assert got.startswith(want.removesuffix(" ...")), (want, got)

    code = main(["convert", "samples/damaged-excel.csv", "-o", str(out), "--max-reject-share", "0.2"])
    captured = capsys.readouterr()
    assert code == 1 and "38 written, 6 rejected" in captured.out + captured.err
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1 + 38
