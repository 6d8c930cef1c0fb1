"""`programs-bridge ledger unseed` on moto: a seed from the wrong report taken back, and what it cannot undo."""

import json
from pathlib import Path

import pytest

from conftest import PERSONAL_VALUES
from programs_bridge.cli.main import main
from programs_bridge.ledger.commit import commit_plan
from programs_bridge.ledger.model import ExportKind, encode_key
from programs_bridge.ledger.plan import make_plan
from programs_bridge.ledger.resolutions import Choice, Resolution
from programs_bridge.ledger.store import LedgerStore, RunRecord
from programs_bridge.programs_txt.layout import STANDARD
from support.log_leaks import leaked

HEADER = "Local Student ID,Program Code,Start Date,End Date,School ID"
#: A report saved in Excel: every Import Student ID lost its leading zeros.
STRIPPED = ["4521,144,2025-08-15,,101", "4522,181,2025-08-15,,101", "4523,101,2025-09-01,,102"]
PERSONAL_VALUES.update({"004521", "004522", "4521", "4522", "4523"})
STUDENT_DATA = ("4521", "4522", "4523")
FEED = "district"


def write(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def seed(table: str, report: Path, capsys: pytest.CaptureFixture[str], taken: str = "2025-09-01") -> str:
    """Seed and return the seed's run id, as the summary prints it."""
    assert main(["ledger", "seed", str(report), "--table", table, "--feed", FEED, "--taken", taken]) in (0, 1)
    err = capsys.readouterr().err
    return err.split("seeded as run ")[1].split(":")[0]


def unseed(table: str, run_id: str, *extra: str) -> int:
    return main(["ledger", "unseed", run_id, "--table", table, "--feed", FEED, *extra])


def no_student_data(text: str) -> None:
    """As whole tokens: the undo's run id holds the time it ran, and 14:52:10 is ``T145210Z``."""
    assert not leaked([text], STUDENT_DATA), f"student data on stderr: {leaked([text], STUDENT_DATA)}"


def test_a_wrong_seed_is_taken_back_and_the_feed_waits_for_a_seed_again(
    empty_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = write(tmp_path / "excel.csv", STRIPPED)
    run_id = seed(empty_table, report, capsys)
    store = LedgerStore(empty_table)
    assert len(store.read_snapshot(FEED)[0]) == 3

    json_report = tmp_path / "unseed.json"
    assert unseed(empty_table, run_id, "--report", str(json_report)) == 0
    err = capsys.readouterr().err
    assert f"seed {run_id} of feed 'district' undone" in err and "3 record(s) removed" in err
    assert "its next export waits for a seed (needs_seed)" in err
    no_student_data(err)
    snapshot, _ = store.read_snapshot(FEED)
    assert len(snapshot) == 0 and snapshot.head_run is None  # as before the seed: the interlock holds night 1
    section = json.loads(json_report.read_text(encoding="utf-8"))["unseed"]
    assert section["counts"] == {"removed": 3, "kept_changed_since": 0, "corrected_left_as_is": 0}

    # The same report can be seeded again (the undone seed is not "seeded before"), and undone again.
    assert seed(empty_table, report, capsys) == run_id
    assert len(store.read_snapshot(FEED)[0]) == 3


def test_what_the_bridge_sent_since_and_what_the_seed_corrected_stay(
    empty_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LedgerStore(empty_table)
    # Night 1 sent 004521 in program 144 (open); a later seed closes it, and adds two records of its own.
    night = [["004521", "", "Q", "Y", "", "03/04/2012", "144", "", "", "08/15/2025", "", "", "", "", "101"]]
    rows = list(enumerate(night, start=2))
    commit_plan(store, make_plan(store, iter(rows), STANDARD, feed=FEED, kind=ExportKind.DELTA),
                RunRecord("20250820T020000Z-night001", "x.csv", "v1", "0" * 64, "r.json", {}), iter(rows))  # fmt: skip
    report = write(tmp_path / "report.csv", ["004521,144,2025-08-15,2025-08-30,101", *STRIPPED[1:]])
    run_id = seed(store.table, report, capsys)
    # A later night exits 4522's seeded record: the bridge sent it, so it is Illuminate's now.
    exit_row = [["4522", "", "Q", "Y", "", "03/04/2012", "181", "", "", "08/15/2025", "06/01/2026", "", "", "", "101"]]
    rows = list(enumerate(exit_row, start=2))
    commit_plan(store, make_plan(store, iter(rows), STANDARD, feed=FEED, kind=ExportKind.DELTA),
                RunRecord("20260602T020000Z-night002", "y.csv", "v2", "1" * 64, "r.json", {}), iter(rows))  # fmt: skip
    # A clerk resolved a held row as the same record as 4523's seeded one.
    seeded_4523 = encode_key(("4523", "101", "09/01/2025", "102"))
    store.put_resolution(FEED, Resolution("k3vq7x2m", Choice.SAME, "row-key", seeded_4523))

    assert unseed(store.table, run_id) == 0
    err = capsys.readouterr().err
    assert "1 record(s) removed, 1 kept (the bridge sent them since), 1 corrected by the seed" in err
    assert "1 'same' resolution(s) sent rows under a removed record and must be resolved again: k3vq7x2m" in err
    assert "needs_seed" not in err
    no_student_data(err)
    snapshot, _ = store.read_snapshot(FEED)
    assert snapshot.find(seeded_4523) is None
    assert snapshot.find(encode_key(("4522", "181", "08/15/2025", "101"))) is not None
    assert snapshot.find(encode_key(("004521", "144", "08/15/2025", "101"))) is not None
    assert snapshot.head_run is not None and "-unseed-" in snapshot.head_run  # the undo is a run of its own


def test_a_run_that_is_not_an_undoable_seed_is_refused_with_exit_2(
    empty_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = seed(empty_table, write(tmp_path / "excel.csv", STRIPPED), capsys)
    assert unseed(empty_table, "20250820T020000Z-night001") == 2
    assert "not a seed's run id" in capsys.readouterr().err
    unknown = run_id[:-8] + ("00000000" if not run_id.endswith("00000000") else "11111111")
    assert unseed(empty_table, unknown) == 2
    assert "has no seed" in capsys.readouterr().err
    assert unseed(empty_table, "004521-seed-Quill") == 2  # what was typed is not echoed: it may be anything
    err = capsys.readouterr().err
    assert "not a seed's run id" in err and "004521" not in err and "Quill" not in err
    assert unseed(empty_table, run_id) == 0
    capsys.readouterr()
    assert unseed(empty_table, run_id) == 2
    assert "was undone before: nothing to do" in capsys.readouterr().err
    assert len(LedgerStore(empty_table).read_snapshot(FEED)[0]) == 0


def test_an_unreachable_ledger_is_exit_3_and_a_missing_report_folder_is_usage(
    aws: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert unseed("no-such-table", "20250901T000000Z-seed-1a2b3c4d") == 3
    assert "cannot undo the seed in the ledger table 'no-such-table'" in capsys.readouterr().err
    missing = tmp_path / "nowhere" / "unseed.json"
    assert unseed("no-such-table", "20250901T000000Z-seed-1a2b3c4d", "--report", str(missing)) == 64


def test_undoing_a_seed_sends_the_later_seeds_that_shared_its_records_back_to_be_seeded_again(
    empty_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A later report listing records the first seed wrote wrote nothing for them: the undo takes them out,
    and the later seed must be seeded again to write them back, not skipped as 'seeded before'."""
    first = write(tmp_path / "first.csv", ["004521,144,2025-08-15,,101", "004522,181,2025-08-15,,101"])
    later = write(tmp_path / "later.csv", ["004522,181,2025-08-15,,101", "004523,101,2025-09-01,,102"])
    first_run = seed(empty_table, first, capsys)
    later_run = seed(empty_table, later, capsys, taken="2025-10-01")
    store = LedgerStore(empty_table)
    assert len(store.read_snapshot(FEED)[0]) == 3

    assert unseed(empty_table, first_run) == 0
    err = capsys.readouterr().err
    assert "1 other seed(s) of this feed may list some of the removed records: seed each one's report again" in err
    assert later_run in err
    assert unseed(empty_table, later_run) == 2  # not before it is whole again
    assert "must be seeded again first" in capsys.readouterr().err

    assert seed(empty_table, later, capsys, taken="2025-10-01") == later_run  # not "seeded before"
    snapshot, _ = store.read_snapshot(FEED)
    assert snapshot.find(encode_key(("004522", "181", "08/15/2025", "101"))) is not None  # written back
    assert snapshot.find(encode_key(("004521", "144", "08/15/2025", "101"))) is None  # the first seed's own
    assert len(snapshot) == 2
    assert unseed(empty_table, later_run) == 0  # whole again: it can be undone


def test_an_undo_cut_short_after_its_deletes_still_sends_the_other_seed_back_when_finished(
    empty_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run again, the undo finds nothing left to remove: the seeds it must send back are marked before any
    record goes, so the second attempt still names them."""
    first = write(tmp_path / "first.csv", ["004521,144,2025-08-15,,101", "004522,181,2025-08-15,,101"])
    later = write(tmp_path / "later.csv", ["004522,181,2025-08-15,,101"])
    first_run = seed(empty_table, first, capsys)
    later_run = seed(empty_table, later, capsys, taken="2025-10-01")
    deletes = LedgerStore.delete_records

    def deleted_then_interrupted(self: LedgerStore, feed: str, keys: object) -> object:
        deletes(self, feed, keys)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(LedgerStore, "delete_records", deleted_then_interrupted)
    assert unseed(empty_table, first_run) == 130
    assert "run the same command again to finish it" in capsys.readouterr().err
    monkeypatch.setattr(LedgerStore, "delete_records", deletes)
    assert unseed(empty_table, first_run, "--report", str(tmp_path / "undo.json")) == 0
    err = capsys.readouterr().err
    assert later_run in err  # named again, though nothing was left to remove
    assert "2 record(s) removed" in err  # the undo's own count, not what its last attempt found left
    assert json.loads((tmp_path / "undo.json").read_text())["unseed"]["counts"]["removed"] == 2
    assert seed(empty_table, later, capsys, taken="2025-10-01") == later_run
    written_back = (
        LedgerStore(empty_table).read_snapshot(FEED)[0].find(encode_key(("004522", "181", "08/15/2025", "101")))
    )
    assert written_back is not None


def test_another_report_cannot_be_seeded_over_a_seed_that_did_not_finish(
    empty_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Taken over, the unfinished seed could never be finished nor undone, and its half would pass as whole."""
    from programs_bridge.ledger.model import row_facts  # noqa: F401  (the layout's own rows)
    from programs_bridge.ledger.seed import seed as seed_records

    store = LedgerStore(empty_table)
    cut = RunRecord("20250901T000000Z-seed-0a0b0c0d", "cut.csv", "", "0" * 64, "", {})
    fields = ["004521", "", "", "", "", "", "144", "", "", "08/15/2025", "", "", "", "", "101"]
    assert not seed_records(store, iter([(2, fields)]), STANDARD, feed=FEED, run=cut, stop=lambda: True).complete
    other = write(tmp_path / "other.csv", ["004522,181,2025-08-15,,101"])
    assert main(["ledger", "seed", str(other), "--table", empty_table, "--feed", FEED, "--taken", "2025-09-02"]) == 2
    err = capsys.readouterr().err
    assert f"{cut.run_id} holds feed 'district' but did not finish" in err
    assert len(store.read_snapshot(FEED)[0]) == 0 and store.head(FEED) == cut.run_id
