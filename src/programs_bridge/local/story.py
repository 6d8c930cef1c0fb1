"""The demo's bundled story, generated (synthetic people, no real students) into a folder.

A district switches to the bridge while Illuminate already holds its hand-loaded records:

1. ``illuminate:`` Illuminate's own records (the programs.txt the district uploaded by hand, with years of
   closed records and one duplicate already in Illuminate): they seed the feed's ledger.
2. Monday: three students exit their program: seeded records, exited correctly.
3. Tuesday: the SIS re-keyed one start date and exited that record: held as a duplicate risk of the seeded
   record, with its resolution id.
4. ``resolutions:`` the clerk answers ``same`` for that row in a CSV dropped in the bucket.
5. Wednesday: the same export again: the exit is sent under the seeded record's key.
6. ``illuminate:`` a later report of Illuminate's records, in which one of Monday's exits never landed:
   the reconcile finds it (and writes the exit row that fixes it) and the duplicate Illuminate holds.
7. A course roster dropped by mistake: rejected.
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass
from pathlib import Path

from programs_bridge.convert.engine import ConvertOptions, convert_export
from programs_bridge.ledger.model import encode_key
from programs_bridge.ledger.resolutions import resolution_id
from programs_bridge.pipeline.events import Kind
from programs_bridge.programs_txt.layout import STANDARD, Field, record_key


@dataclass(frozen=True)
class Item:
    """One thing the demo drops in the bucket: a kind of object (``pipeline.events.Kind``, whose folder
    ``events.PREFIXES`` names) and the file."""

    kind: Kind
    path: Path

    @classmethod
    def parse(cls, text: str) -> Item:
        """``illuminate:PATH``, ``resolutions:PATH``, or a plain path (the next night's export)."""
        prefix, _, rest = text.partition(":")
        if rest and prefix in (Kind.ILLUMINATE.value, Kind.RESOLUTIONS.value):
            return cls(Kind(prefix), Path(rest))
        return cls(Kind.EXPORT, Path(text))


_END = STANDARD.fields.index(Field.PROGRAM_END_DATE)
_START = STANDARD.fields.index(Field.PROGRAM_START_DATE)
_YEAR = STANDARD.fields.index(Field.ACADEMIC_YEAR)


def story(folder: Path) -> list[Item]:
    from programs_bridge.local.synthetic import COURSE_ROSTER_HEADER, course_roster, generate, write_table

    sunday = folder / "sunday-sis.csv"  # what the SIS holds before the switch
    generate(sunday, "powerschool", 40, seed=7)
    header, rows = _read(sunday)
    enter, exit_, code = (header.index(f"SPEnrollments.{c}") for c in ("Enter_Date", "Exit_Date", "ExitCode"))
    open_rows = [n for n, row in enumerate(rows) if row[exit_] in ("", "1/1/1900")]

    held = _programs_rows(sunday)  # Illuminate holds what the district uploaded by hand: the same records ...
    duplicate = list(held[open_rows[5]])
    duplicate[_START], duplicate[_YEAR] = "08/01/2023", "2023-2024"  # ... and an open copy of one, loaded years ago
    illuminate = [*held, duplicate]
    first_report = _write_programs(folder / "illuminate-programs.txt", illuminate)

    monday = [list(row) for row in rows]
    for n in open_rows[:3]:  # three students leave their program: real exits of seeded records
        monday[n][exit_], monday[n][code] = "6/5/2026", "EX"
    tuesday = [list(row) for row in monday]
    rekeyed = open_rows[3]  # the SIS re-keyed one start date, then exited it: Illuminate would duplicate it
    tuesday[rekeyed][enter] = _shift(tuesday[rekeyed][enter])
    tuesday[rekeyed][exit_], tuesday[rekeyed][code] = "6/10/2026", "EX"
    nights = [folder / "monday-exits.csv", folder / "tuesday-rekeyed-exit.csv"]
    for path, body in zip(nights, (monday, tuesday), strict=True):
        _write(path, header, body)

    held_id = resolution_id(_key_of(nights[1], tuesday_line=rekeyed + 2))
    resolutions = folder / "resolutions.csv"
    resolutions.write_text(f"id,decision,note\n{held_id},same,the SIS re-keyed the start date\n", encoding="utf-8")

    later = [list(row) for row in illuminate]  # Illuminate after Wednesday: the exits landed, but one ...
    for n in [*open_rows[1:3], rekeyed]:
        later[n][_END] = "06/10/2026" if n == rekeyed else "06/05/2026"
    second_report = _write_programs(folder / "illuminate-programs-later.txt", later)  # ... open_rows[0]'s never did

    roster = folder / "wrong-file-course-roster.csv"
    write_table(roster, COURSE_ROSTER_HEADER, course_roster(20, seed=7), delimiter=",")
    return [
        Item(Kind.ILLUMINATE, first_report),
        Item(Kind.EXPORT, nights[0]),
        Item(Kind.EXPORT, nights[1]),
        Item(Kind.RESOLUTIONS, resolutions),
        Item(Kind.EXPORT, nights[1]),
        Item(Kind.ILLUMINATE, second_report),
        Item(Kind.EXPORT, roster),
    ]


def _shift(us_date: str) -> str:
    month, day, year = (int(part) for part in us_date.split("/"))
    return f"{month}/{min(day + 3, 28)}/{year}" if day <= 25 else f"{month}/{day - 3}/{year}"


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8", newline="") as source:
        header, *rows = list(csv.reader(source))
    return header, rows


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out, lineterminator="\n").writerows([header, *rows])


def _programs_rows(export: Path) -> list[list[str]]:
    """The export as the converter turns it into programs.txt rows, in the export's row order."""
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "programs.txt"
        conversion = convert_export(export, out, ConvertOptions())
        assert conversion.rows_written == conversion.rows_read, "the demo's synthetic export converts whole"
        return [line.split("\t") for line in out.read_text(encoding="utf-8").splitlines()[1:]]


def _key_of(export: Path, *, tuesday_line: int) -> str:
    """The record key the converter gives the row on ``tuesday_line`` of ``export`` (its resolution id's key)."""
    rows = _programs_rows(export)
    return encode_key(record_key(rows[tuesday_line - 2], STANDARD))


def _write_programs(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("\n".join(["\t".join(STANDARD.header), *("\t".join(r) for r in rows)]) + "\n", encoding="utf-8")
    return path
