"""Illuminate's ``programs.txt``: the one declarative definition of the target format.

Everything that writes, reads back or keys a programs.txt row looks the columns up here, so a district
whose Core Data Configuration re-orders or drops optional columns changes one setting, not code.

Facts (from Illuminate's spec sheet and working exporters): tab-delimited, no quoting, one header row of
``NN Label`` labels, UTF-8 without BOM, dates ``MM/DD/YYYY``; 15 columns today, 12 in the older layout.
The record key is Import Student ID + Program ID + Program Start Date + Site ID, an empty Site ID included;
when Program Start Date is empty, Eligibility Start Date stands in for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache


class Field(StrEnum):
    """A programs.txt column, by meaning.  The value is the name used in mapping files and reports."""

    IMPORT_STUDENT_ID = "import_student_id"
    STATE_STUDENT_ID = "state_student_id"
    LAST_NAME = "last_name"
    FIRST_NAME = "first_name"
    MIDDLE_NAME = "middle_name"
    BIRTH_DATE = "birth_date"
    PROGRAM_ID = "program_id"
    ELIGIBILITY_START_DATE = "eligibility_start_date"
    ELIGIBILITY_END_DATE = "eligibility_end_date"
    PROGRAM_START_DATE = "program_start_date"
    PROGRAM_END_DATE = "program_end_date"
    ACADEMIC_YEAR = "academic_year"
    ELIGIBILITY_CODE = "eligibility_code"
    EXIT_CODE = "exit_code"
    SITE_ID = "site_id"


class Kind(StrEnum):
    TEXT = "text"
    DATE = "date"
    ACADEMIC_YEAR = "academic_year"


@dataclass(frozen=True, slots=True)
class Column:
    field: Field
    label: str
    kind: Kind
    max_length: int | None = None
    required: bool = False


#: Every column Illuminate knows, in its canonical (15-column) order.
COLUMNS: tuple[Column, ...] = (
    Column(Field.IMPORT_STUDENT_ID, "Import Student ID", Kind.TEXT, 30, required=True),
    Column(Field.STATE_STUDENT_ID, "State Student ID", Kind.TEXT, 30),
    Column(Field.LAST_NAME, "Student Last Name", Kind.TEXT, 200, required=True),
    Column(Field.FIRST_NAME, "Student First Name", Kind.TEXT, 200, required=True),
    Column(Field.MIDDLE_NAME, "Student Middle Name", Kind.TEXT, 200),
    Column(Field.BIRTH_DATE, "Birth Date", Kind.DATE, required=True),
    Column(Field.PROGRAM_ID, "Program ID", Kind.TEXT, 30, required=True),
    Column(Field.ELIGIBILITY_START_DATE, "Eligibility Start Date", Kind.DATE),
    Column(Field.ELIGIBILITY_END_DATE, "Eligibility End Date", Kind.DATE),
    Column(Field.PROGRAM_START_DATE, "Program Start Date", Kind.DATE),
    Column(Field.PROGRAM_END_DATE, "Program End Date", Kind.DATE),
    Column(Field.ACADEMIC_YEAR, "Academic Year", Kind.ACADEMIC_YEAR),
    Column(Field.ELIGIBILITY_CODE, "Program Eligibility Code", Kind.TEXT),
    Column(Field.EXIT_CODE, "Program Exit Code", Kind.TEXT),
    Column(Field.SITE_ID, "Site ID", Kind.TEXT, 30),
)
COLUMN_BY_FIELD: dict[Field, Column] = {column.field: column for column in COLUMNS}

#: The fields that identify a program record in Illuminate, in key order.
KEY_FIELDS: tuple[Field, ...] = (
    Field.IMPORT_STUDENT_ID,
    Field.PROGRAM_ID,
    Field.PROGRAM_START_DATE,
    Field.SITE_ID,
)


@dataclass(frozen=True, slots=True)
class Layout:
    """Which columns a district's programs.txt has, in which order."""

    name: str
    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        if len(set(self.fields)) != len(self.fields):
            raise ValueError(f"layout {self.name!r} names a column twice")
        missing = [c.field.value for c in COLUMNS if c.required and c.field not in self.fields]
        if missing:
            raise ValueError(f"layout {self.name!r} leaves out required column(s): {', '.join(missing)}")
        if Field.PROGRAM_START_DATE not in self.fields and Field.ELIGIBILITY_START_DATE not in self.fields:
            raise ValueError(f"layout {self.name!r} needs Program Start Date or Eligibility Start Date")

    @property
    def header(self) -> list[str]:
        """``NN Label`` labels, numbered by position: Illuminate maps columns by position."""
        return [f"{n:02d} {COLUMN_BY_FIELD[field].label}" for n, field in enumerate(self.fields, start=1)]

    def index(self, field: Field) -> int | None:
        """Position of ``field`` in a row of this layout, or None when the layout leaves it out."""
        try:
            return self.fields.index(field)
        except ValueError:
            return None

    @property
    def needs_integer_site_id(self) -> bool:
        """Site ID is the integer site key from sites.txt wherever the layout carries it."""
        return Field.SITE_ID in self.fields


STANDARD = Layout("standard", tuple(column.field for column in COLUMNS))
LEGACY = Layout("legacy", STANDARD.fields[:12])
LAYOUTS: dict[str, Layout] = {"standard": STANDARD, "15": STANDARD, "legacy": LEGACY, "12": LEGACY}


def custom_layout(names: Sequence[str]) -> Layout:
    """A district's own column order, given as field names (``import_student_id, ...``)."""
    unknown = [name for name in names if name not in Field._value2member_map_]
    if unknown:
        known = ", ".join(f.value for f in Field)
        raise ValueError(f"unknown column name(s) {', '.join(unknown)}; use any of: {known}")
    return Layout("custom", tuple(Field(name) for name in names))


@cache
def key_positions(layout: Layout) -> tuple[int, int, int, int, int]:
    """Where student, program, program start, eligibility start and site sit in a row (-1: not in it)."""

    def at(field: Field) -> int:
        position = layout.index(field)
        return -1 if position is None else position

    return (
        at(Field.IMPORT_STUDENT_ID),
        at(Field.PROGRAM_ID),
        at(Field.PROGRAM_START_DATE),
        at(Field.ELIGIBILITY_START_DATE),
        at(Field.SITE_ID),
    )


def record_key(row: Sequence[str], layout: Layout) -> tuple[str, str, str, str]:
    """The Illuminate record key of a rendered row: student, program, start date, site.

    The start date falls back to Eligibility Start Date when Program Start Date is empty (Illuminate's
    documented behaviour); a column the layout leaves out counts as empty, as Illuminate would see it.
    Hot loops look ``key_positions`` up once and index the row themselves.
    """
    student, program, start, eligibility_start, site = key_positions(layout)
    start_date = (row[start] if start >= 0 else "") or (row[eligibility_start] if eligibility_start >= 0 else "")
    return (row[student], row[program], start_date, row[site] if site >= 0 else "")


def record_keys(
    columns: Sequence[Sequence[str]], positions: tuple[int, int, int, int, int], rows: int
) -> list[tuple[str, str, str, str]]:
    """``record_key`` of ``rows`` rendered rows given column by column (``columns[n]``: every row's value of
    the layout's n-th column; ``positions`` from ``key_positions``): the same rule, in C over whole columns."""
    student_at, program_at, start_at, eligibility_at, site_at = positions
    empty = [""] * rows
    starts = columns[start_at] if start_at >= 0 else empty
    if not all(starts):
        eligibility = columns[eligibility_at] if eligibility_at >= 0 else empty
        starts = [start or other for start, other in zip(starts, eligibility, strict=True)]
    sites = columns[site_at] if site_at >= 0 else empty
    return list(zip(columns[student_at], columns[program_at], starts, sites, strict=True))
