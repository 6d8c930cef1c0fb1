"""Built-in mappings for the export shapes districts actually have, and picking one from a header.

Each profile is a plain ``Mapping`` (see ``mapping.py``); the column names come from the SIS's own tables
(PowerSchool ``Students`` + ``SPEnrollments``, Aeries ``STU`` + ``PGM``, Infinite Campus ``student`` +
``spProgram``) and from Illuminate's own labels.  Program codes pass through unchanged: a district whose SIS
codes differ from its Illuminate code keys writes a mapping with a ``values.program_id`` table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from programs_bridge.convert.dates import DateOrder
from programs_bridge.convert.headers import ColumnMatch, match_columns
from programs_bridge.convert.mapping import DateSettings, Mapping, SkipRule
from programs_bridge.programs_txt.layout import COLUMNS, Field

F = Field

ILLUMINATE = Mapping(
    name="illuminate",
    description="Already in programs.txt layout (12 or 15 columns, any delimiter, with or without NN labels)",
    columns={column.field: column.label for column in COLUMNS},
)

POWERSCHOOL = Mapping(
    name="powerschool",
    description="PowerSchool SPEnrollments joined to Students",
    columns={
        F.IMPORT_STUDENT_ID: "Student_Number",
        F.STATE_STUDENT_ID: "State_StudentNumber",
        F.LAST_NAME: "Last_Name",
        F.FIRST_NAME: "First_Name",
        F.MIDDLE_NAME: "Middle_Name",
        F.BIRTH_DATE: ["DOB", "BirthDate"],
        F.PROGRAM_ID: ["ProgramID", "Program_Code"],
        F.PROGRAM_START_DATE: "Enter_Date",
        F.PROGRAM_END_DATE: "Exit_Date",
        F.EXIT_CODE: "ExitCode",
        F.SITE_ID: "SchoolID",
    },
)

AERIES = Mapping(
    name="aeries",
    description="Aeries PGM (program) table joined to STU",
    columns={
        F.IMPORT_STUDENT_ID: ["PGM.PID", "PID", "STU.ID"],
        F.STATE_STUDENT_ID: "CID",
        F.LAST_NAME: "LN",
        F.FIRST_NAME: "FN",
        F.MIDDLE_NAME: "MN",
        F.BIRTH_DATE: "BD",
        F.PROGRAM_ID: "CD",
        F.ELIGIBILITY_START_DATE: "ESD",
        F.ELIGIBILITY_END_DATE: "EED",
        F.PROGRAM_START_DATE: "PSD",
        F.PROGRAM_END_DATE: "PED",
        F.SITE_ID: "SCL",
    },
    skip=(SkipRule(column="DEL", values=("Y", "T", "1", "TRUE")),),
    dates=DateSettings(order=DateOrder.MDY),
)

INFINITE_CAMPUS = Mapping(
    name="infinite-campus",
    description="Infinite Campus student program participation (student + spProgram)",
    columns={
        F.IMPORT_STUDENT_ID: "studentNumber",
        F.STATE_STUDENT_ID: "stateID",
        F.LAST_NAME: "lastName",
        F.FIRST_NAME: "firstName",
        F.MIDDLE_NAME: "middleName",
        F.BIRTH_DATE: "birthdate",
        F.PROGRAM_ID: ["spProgram.code", "programCode", "spProgram.name"],
        F.PROGRAM_START_DATE: ["spProgram.startDate", "startDate"],
        F.PROGRAM_END_DATE: ["spProgram.endDate", "endDate"],
        F.SITE_ID: ["schoolNumber", "schoolID"],
    },
)

PROFILES: dict[str, Mapping] = {p.name: p for p in (ILLUMINATE, POWERSCHOOL, AERIES, INFINITE_CAMPUS)}


@dataclass(frozen=True)
class Detection:
    mapping: Mapping
    match: ColumnMatch


def detect_profile(header: Sequence[str]) -> Detection | None:
    """The built-in profile whose required columns are all in ``header``; the one matching most columns
    wins.  None means the file is probably not a program export at all (a course roster, say)."""
    candidates = [Detection(p, match_columns(p, header)) for p in PROFILES.values()]
    usable = [c for c in candidates if c.match.usable]
    if not usable:
        return None
    return max(usable, key=lambda c: len(c.match.positions))


def closest_profile(header: Sequence[str]) -> tuple[Mapping, ColumnMatch]:
    """For the rejection message: the profile that came nearest, and what it lacked."""
    candidates = [(p, match_columns(p, header)) for p in PROFILES.values()]
    return min(candidates, key=lambda c: (len(c[1].missing_required), -len(c[1].positions)))
