"""The ledger commands misused as a hostile probe misused them: one line and a documented exit code each,
never a traceback, and never a change to the ledger that the command then fails to say."""

import json
import os
from pathlib import Path

import pytest

from conftest import PERSONAL_VALUES
from programs_bridge.cli.main import main
from programs_bridge.ledger.store import LedgerStore

HEADER = "Local Student ID,Program Code,Start Date,End Date,School ID"
REPORT = ["004521,144,2025-08-15,,101", "004522,181,2025-08-15,,101"]
#: A PowerSchool export (the SIS's, not Illuminate's): detected as powerschool.
SIS_HEADER = "Student_Number,Last_Name,First_Name,DOB,ProgramID,Enter_Date,Exit_Date,SchoolID"
SIS_ROWS = ["004521,Quennell,Ysolde,3/4/2012,144,8/15/2025,,101"]
PERSONAL_VALUES.update({"004521", "004522", "Quennell", "Ysolde"})
FEED = "district"


def write(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def run(*argv: str) -> int:
    return main(list(argv))


def seed(table: str, report: Path, *extra: str) -> int:
    return run("ledger", "seed", str(report), "--table", table, "--feed", FEED, "--taken", "2025-09-01", *extra)


def no_traceback(err: str) -> None:
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("programs-bridge: "), err


def test_no_region_and_an_endpoint_that_is_not_a_url_are_exit_3_in_one_line(
    aws: object, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    report = write(tmp_path / "report.csv", REPORT)
    reconcile = ("ledger", "reconcile", str(report), "--table", "t", "--feed", FEED)
    resolve = ("ledger", "resolve", "k3vq7x2m", "--as", "new", "--table", "t", "--feed", FEED, "--by", "clerk")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "notaurl")
    for argv in (reconcile, resolve):
        assert run(*argv) == 3
        err = capsys.readouterr().err
        assert "cannot" in err and "AWS_ENDPOINT_URL" in err
        no_traceback(err)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    for argv in (reconcile, resolve):
        assert run(*argv) == 3
        err = capsys.readouterr().err
        assert "no AWS region is set: set AWS_REGION" in err and "NoRegionError" in err
        no_traceback(err)


def test_a_seed_from_the_sis_export_is_refused_unless_its_shape_is_named(
    empty_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Seeded, the SIS's own export would teach the ledger what the SIS says, and every check would pass."""
    sis = write(tmp_path / "powerschool.csv", SIS_ROWS, SIS_HEADER)
    assert seed(empty_table, sis) == 2
    err = capsys.readouterr().err
    assert "not a report of Illuminate's own records" in err and "--profile powerschool" in err
    assert len(LedgerStore(empty_table).read_snapshot(FEED)[0]) == 0
    assert seed(empty_table, sis, "--profile", "powerschool") == 0  # said so: it is what Illuminate holds


def test_a_report_that_cannot_be_written_after_the_seed_says_the_ledger_was_seeded(
    empty_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import programs_bridge.report.run as run_report

    def full_disk(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_report, "save_run_report", full_disk)
    assert seed(empty_table, write(tmp_path / "report.csv", REPORT), "--report", str(tmp_path / "seed.json")) == 2
    err = capsys.readouterr().err
    assert "the feed was seeded (above), but the report" in err and "No space left on device" in err
    no_traceback(err)
    assert len(LedgerStore(empty_table).read_snapshot(FEED)[0]) == 2


def test_seed_refuses_a_taken_date_no_report_can_have(
    empty_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = write(tmp_path / "report.csv", REPORT)
    assert run("ledger", "seed", str(report), "--table", empty_table, "--feed", FEED, "--taken", "0001-01-01") == 64
    assert "--taken is before 2000" in capsys.readouterr().err


def test_reconcile_refuses_one_file_for_both_outputs_and_a_device_as_either(
    empty_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = write(tmp_path / "report.csv", REPORT)
    assert seed(empty_table, report) == 0
    capsys.readouterr()
    base = ("ledger", "reconcile", str(report), "--table", empty_table, "--feed", FEED)
    both = tmp_path / "out.txt"
    assert run(*base, "--report", str(both), "--fix-file", str(both)) == 64
    assert "name the same file" in capsys.readouterr().err
    linked = tmp_path / "linked.csv"
    os.link(report, linked)  # another name for the file being read
    assert run(*base, "--report", str(linked)) == 64
    assert "is the file being read" in capsys.readouterr().err
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert run(*base, "--fix-file", str(fifo)) == 64
    assert "is not a regular file" in capsys.readouterr().err
    assert fifo.exists() and not fifo.is_file()  # not renamed over


def test_reconcile_warns_when_not_one_record_of_the_report_is_in_the_ledger(
    empty_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another feed's report, or one read in another layout: everything would look 'entered by hand'."""
    assert seed(empty_table, write(tmp_path / "report.csv", REPORT)) == 0
    other = write(tmp_path / "other.csv", ["009999,144,2025-08-15,,101"])
    capsys.readouterr()
    out = tmp_path / "reconcile.json"
    argv = ("ledger", "reconcile", str(other), "--table", empty_table, "--feed", FEED, "--report", str(out))
    assert run(*argv) == 1
    assert "not one of the report's records is in the ledger" in capsys.readouterr().err
    assert json.loads(out.read_text(encoding="utf-8"))["reconcile"]["matched_none"] is True


def test_unseed_checks_its_report_path_before_it_changes_the_ledger(
    empty_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert seed(empty_table, write(tmp_path / "report.csv", REPORT)) == 0
    run_id = capsys.readouterr().err.split("seeded as run ")[1].split(":")[0]
    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert run("ledger", "unseed", run_id, "--table", empty_table, "--feed", FEED, "--report", str(folder)) == 64
    assert "is a folder" in capsys.readouterr().err
    assert len(LedgerStore(empty_table).read_snapshot(FEED)[0]) == 2  # nothing undone


def test_resolve_without_a_login_name_asks_for_by_and_refuses_a_note_of_several_lines(
    empty_table: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import getpass

    def no_user() -> str:
        raise KeyError("getpwuid(): uid not found: 1000")

    monkeypatch.setattr(getpass, "getuser", no_user)
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    base = ("ledger", "resolve", "k3vq7x2m", "--as", "never", "--table", empty_table, "--feed", FEED)
    assert run("--help") == 0  # the parser no longer asks for the login name while it is built
    capsys.readouterr()
    assert run(*base) == 64
    assert "say who decided with --by NAME" in capsys.readouterr().err
    assert run(*base, "--by", "clerk", "--note", "first line\nsecond line") == 64
    assert "--note is one line" in capsys.readouterr().err
    assert run(*base, "--by", "clerk", "--note", "all good\x1b[2J") == 64
    assert "--note is one line of plain text" in capsys.readouterr().err
    assert run(*base, "--by", "eve\nFAKE: all good") == 64
    assert "--by is one line of plain text" in capsys.readouterr().err
    assert run(*base, "--by", "clerk") == 2  # reached the ledger: no row was held with that id
    assert "was held with that id" in capsys.readouterr().err


def test_a_report_without_a_site_column_is_refused_and_a_repeated_key_column_is_named(
    empty_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Learnt without their site, every record would match nothing the feed sends: each exit of them a
    duplicate risk, and a 'same' then sends the exit under a site-less key Illuminate does not hold."""
    no_site = write(tmp_path / "no-site.csv", [row.rsplit(",", 1)[0] for row in REPORT], HEADER.rsplit(",", 1)[0])
    assert seed(empty_table, no_site) == 2
    assert "the report has no Site ID column (Site ID or School ID or Site)" in capsys.readouterr().err
    assert len(LedgerStore(empty_table).read_snapshot(FEED)[0]) == 0
    twice = write(
        tmp_path / "twice.csv", [f"{row},{row.split(',')[0]}" for row in REPORT], f"{HEADER},Local Student ID"
    )
    assert seed(empty_table, twice) == 2
    err = capsys.readouterr().err
    assert "finds columns more than once (Local Student ID, Local Student ID for import_student_id)" in err
    assert "lacks" not in err


def test_a_feed_whose_records_carry_no_site_says_so_in_a_mapping_and_is_seeded(
    empty_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Site ID is optional outside California: the refusal's own advice seeds such a report."""
    no_site = write(tmp_path / "no-site.csv", [row.rsplit(",", 1)[0] for row in REPORT], HEADER.rsplit(",", 1)[0])
    assert seed(empty_table, no_site) == 2
    assert '[constants], site_id = ""' in capsys.readouterr().err
    mapping = tmp_path / "no-site.toml"
    mapping.write_text('extends = "illuminate-report"\n[constants]\nsite_id = ""\n', encoding="utf-8")
    assert seed(empty_table, no_site, "--mapping", str(mapping)) == 0
    assert len(LedgerStore(empty_table).read_snapshot(FEED)[0]) == 2


def test_a_report_whose_site_column_is_blank_on_every_row_is_refused_like_one_without(
    empty_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Site ID column left empty (a report built without the field's values) teaches the same site-less
    keys as no column at all; a report with some rows' sites blank is seeded."""
    blank = write(tmp_path / "blank-site.csv", [row.rsplit(",", 1)[0] + "," for row in REPORT])
    assert seed(empty_table, blank) == 2
    err = capsys.readouterr().err
    assert "the report's Site ID column is blank on every row" in err and '[constants], site_id = ""' in err
    assert len(LedgerStore(empty_table).read_snapshot(FEED)[0]) == 0
    some = write(tmp_path / "some-blank.csv", [REPORT[0].rsplit(",", 1)[0] + ",", *REPORT[1:]])
    assert seed(empty_table, some) == 0
    assert len(LedgerStore(empty_table).read_snapshot(FEED)[0]) == len(REPORT)
