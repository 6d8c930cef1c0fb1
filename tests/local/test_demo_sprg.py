"""A CALPADS SPRG feed through `programs-bridge demo`: the district's codes file extends the built-in profile."""

from __future__ import annotations

import json
from pathlib import Path

from programs_bridge.cli.main import main
from programs_bridge.convert.profiles import SPRG_FIELDS

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
END_DATE = SPRG_FIELDS.index("EducationProgramMembershipEndDate")
TRANSACTION = SPRG_FIELDS.index("TransactionTypeCode")


def _with_exits(source: Path, destination: Path, exits: int) -> None:
    """``source`` again, with ``exits`` open memberships given an end date: the SIS's next extract."""
    lines = source.read_text(encoding="utf-8").splitlines()
    changed = 0
    for n, line in enumerate(lines):
        fields = line.split("^")
        if changed < exits and fields[TRANSACTION] != "D" and not fields[END_DATE]:
            fields[END_DATE] = "20260605"
            lines[n], changed = "^".join(fields), changed + 1
    assert changed == exits
    destination.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_an_sprg_feed_runs_two_nights_with_the_districts_codes(tmp_path: Path, clean_env: None) -> None:
    night2 = tmp_path / "sprg-night2.txt"
    _with_exits(SAMPLES / "calpads-sprg.txt", night2, exits=2)
    out = tmp_path / "out"
    args = ["demo", str(SAMPLES / "calpads-sprg.txt"), str(night2), "--out", str(out)]
    assert main([*args, "--mapping", str(SAMPLES / "calpads-sprg-codes.toml")]) == 0

    first, second = (json.loads((out / f"0{n}-report.json").read_text()) for n in (1, 2))
    assert [first["status"], second["status"]] == ["delivered", "delivered"]
    assert first["counts"]["rows_skipped"] == 5  # the sample's D (delete) transactions
    assert first["counts"]["rows_sent"] == first["counts"]["rows_read"] - 5
    assert second["counts"]["exits"] == 2 and second["counts"]["new"] == 0
    rows = [line.split("\t") for line in (out / "02-programs.txt").read_text().splitlines()[1:]]
    assert sum(row[10] == "06/05/2026" for row in rows) == 2
    sites = {row[14] for row in rows}
    assert sites and all(site.isdigit() and len(site) == 3 for site in sites)  # district sites, not CDS codes
    assert {row[6] for row in rows} >= {"504"}  # 101 mapped by the codes file


def test_an_sprg_feed_without_the_districts_codes_is_rejected_and_says_how_to_go_on(
    tmp_path: Path, clean_env: None
) -> None:
    config = tmp_path / "district.toml"
    config.write_text('profile = "calpads-sprg"\n', encoding="utf-8")
    out = tmp_path / "out"
    assert main(["demo", str(SAMPLES / "calpads-sprg.txt"), "--config", str(config), "--out", str(out)]) == 0
    report = json.loads((out / "01-report.json").read_text())
    assert report["status"] == "rejected" and 'extends = "calpads-sprg"' in report["reason"]
    assert "a feed's [mapping] table" in report["reason"]
    assert not (out / "01-programs.txt").exists()
