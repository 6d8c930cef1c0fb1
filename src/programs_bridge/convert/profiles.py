"""Built-in mappings for the export shapes districts actually have, and picking one from a header.

Each profile is a plain ``Mapping`` (see ``mapping.py``); the column names come from the SIS's own tables
(PowerSchool ``Students`` + ``SPEnrollments``, Aeries ``STU`` + ``PGM``, Infinite Campus ``student`` +
``spProgram``, the snake_case of Synergy's report writer), from Illuminate's own labels, and, for
California's state extract, from the CALPADS SPRG record layout, which has no header and is never detected.
Program codes pass through unchanged: a district whose SIS codes differ from its Illuminate code keys writes
a mapping with a ``values.program_id`` table.

``illuminate-report`` reads what Illuminate already holds (its Custom Reporting export of the "Students:
Programs" category, CSV or TSV), so that ``ledger seed`` keys Illuminate's records exactly as a nightly export
is keyed.  It is an ordinary profile: the same date, ID and site-number normalisation as every other, so a
record's key compares equal whichever file it came from.

Names and birth date are read when the report has them.  A report without them converts only for the
ledger (``ConvertOptions.records_only``, set by ``ledger seed``): its rows then carry empty names, never
made-up ones, and such a conversion is never delivered.  A nightly export (every other use of this or any
profile) still requires them, row by row.

Detection: a header with programs.txt's own labels (a past programs.txt, 12 or 15 columns, with or without
``NN `` numbers) matches ``illuminate`` and ``illuminate-report`` on the same columns, and the tie goes to
``illuminate``, listed first; both read it the same way, and a past programs.txt keeps being reported as one.
A header with report spellings (``Local Student ID``, ``Start Date``, ``Site`` ...) matches only
``illuminate-report``, or matches it on more columns, and is read as one.  Listed last, it also loses every
tie with an SIS profile, so it never takes an SIS export's detection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from programs_bridge.convert.dates import DateOrder
from programs_bridge.convert.headers import ColumnMatch, match_columns
from programs_bridge.convert.mapping import DateSettings, Mapping, RecordRule, SkipRule
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

SYNERGY = Mapping(
    name="synergy",
    description="Synergy (Edupoint) program report: student_code, school_code, program_code, date_enrolled ...",
    columns={
        F.IMPORT_STUDENT_ID: ["student_code", "student_id"],
        F.STATE_STUDENT_ID: ["state_student_id", "state_id"],
        F.LAST_NAME: "last_name",
        F.FIRST_NAME: "first_name",
        F.MIDDLE_NAME: "middle_name",
        F.BIRTH_DATE: ["birth_date", "birthdate"],
        F.ACADEMIC_YEAR: "school_year",
        F.PROGRAM_ID: "program_code",
        F.ELIGIBILITY_START_DATE: "eligibility_start_date",
        F.ELIGIBILITY_END_DATE: "eligibility_end_date",
        F.PROGRAM_START_DATE: "date_enrolled",
        F.PROGRAM_END_DATE: "date_withdrawn",
        F.EXIT_CODE: ["withdrawal_code", "exit_code"],
        F.SITE_ID: "school_code",
    },
)

#: The CALPADS Student Program (SPRG) record, in file order (CALPADS File Specifications, SPRG record).
SPRG_FIELDS = (
    "RecordTypeCode", "TransactionTypeCode", "LocalRecordID", "ReportingLEA", "SchoolOfAttendance",
    "AcademicYearID", "SSID", "LocalStudentID", "StudentLegalFirstName", "StudentLegalLastName",
    "StudentBirthDate", "StudentGenderCode", "EducationProgramCode", "EducationProgramMembershipCode",
    "EducationProgramMembershipStartDate", "EducationProgramMembershipEndDate", "EducationServiceAcademicYear",
    "EducationServiceCode", "CaliforniaPartnershipAcademyID", "MigrantStudentID", "PrimaryDisabilityCode",
    "DistrictofSpecialEducationAccountability", "HomelessDwellingTypeCode", "UnaccompaniedYouthIndicator",
    "RunawayYouthIndicator", "Filler",
)  # fmt: skip
#: Other CALPADS record types, input and ODS extract (``-R``, which adds Upload Date and Last Date Updated
#: at the end: schooldataleadership.org, "Cooking with CALPADS: Fun with Extracts"): naming them when a
#: wrong file arrives tells the clerk which extract was sent.
_CALPADS_OTHERS = tuple(
    kind + suffix
    for kind in ("SENR", "SINF", "SELA", "SDIS", "SWAV", "SDEM", "SASS", "CRSE", "CRSC", "SCSE", "SCSC",
                 "SCTE", "STAS", "SIRS", "SPED", "SSRV", "PSTS", "SPLN", "WBLR", "SWBL")
    for suffix in ("", "-R")
)  # fmt: skip

CALPADS_SPRG = Mapping(
    name="calpads-sprg",
    description="CALPADS Student Program (SPRG, or the ODS extract SPRG-R): caret-delimited, no header; "
    "needs [values.site_id] (CDS school code -> site number) and usually [values.program_id]",
    header=False,
    delimiter="^",
    quoting=False,
    field_names=SPRG_FIELDS,
    field_counts=(26, 28),
    records=RecordRule(column="RecordTypeCode", values=("SPRG", "SPRG-R"), others=_CALPADS_OTHERS),
    skip=(SkipRule(column="TransactionTypeCode", values=("D",)),),
    columns={
        F.IMPORT_STUDENT_ID: "LocalStudentID",
        F.STATE_STUDENT_ID: "SSID",
        F.LAST_NAME: "StudentLegalLastName",
        F.FIRST_NAME: "StudentLegalFirstName",
        F.BIRTH_DATE: "StudentBirthDate",
        F.ACADEMIC_YEAR: "AcademicYearID",
        F.PROGRAM_ID: "EducationProgramCode",
        F.PROGRAM_START_DATE: "EducationProgramMembershipStartDate",
        F.PROGRAM_END_DATE: "EducationProgramMembershipEndDate",
        F.SITE_ID: "SchoolOfAttendance",
    },
    required_values=("site_id",),
)

#: Illuminate's own program records, as its Custom Reporting exports them ("Students: Programs"); what it
#: requires and how it is detected: the module docstring.
ILLUMINATE_REPORT = Mapping(
    name="illuminate-report",
    description="Illuminate's own student program records (Custom Reporting, Students: Programs), to seed the "
    "ledger with what Illuminate holds; needs last name, first name and birth date columns in the report",
    columns={
        # Alternatives are tried in order and the first label found wins: the programs.txt label, then the
        # more specific report spelling before the looser one ("Local Student ID" before "Student ID",
        # "Program Code" before "Program", which may be the program's name; "School ID" before "Site").
        F.IMPORT_STUDENT_ID: ["Import Student ID", "Local Student ID", "Student ID"],
        F.STATE_STUDENT_ID: "State Student ID",
        F.LAST_NAME: ["Student Last Name", "Last Name"],
        F.FIRST_NAME: ["Student First Name", "First Name"],
        F.MIDDLE_NAME: ["Student Middle Name", "Middle Name"],
        F.BIRTH_DATE: ["Birth Date", "Birthdate", "Date of Birth"],
        F.PROGRAM_ID: ["Program ID", "Program Code", "Program"],
        F.ELIGIBILITY_START_DATE: "Eligibility Start Date",
        F.ELIGIBILITY_END_DATE: "Eligibility End Date",
        F.PROGRAM_START_DATE: ["Program Start Date", "Start Date"],
        F.PROGRAM_END_DATE: ["Program End Date", "End Date"],
        F.ACADEMIC_YEAR: "Academic Year",
        F.ELIGIBILITY_CODE: ["Program Eligibility Code", "Eligibility Code"],
        F.EXIT_CODE: ["Program Exit Code", "Exit Code"],
        F.SITE_ID: ["Site ID", "School ID", "Site"],
    },
)
#: The profiles that read Illuminate's own records: what a seed or a reconcile detects (``records_only``).
ILLUMINATE_PROFILES = frozenset({ILLUMINATE.name, ILLUMINATE_REPORT.name})

PROFILES: dict[str, Mapping] = {
    p.name: p for p in (ILLUMINATE, POWERSCHOOL, AERIES, INFINITE_CAMPUS, SYNERGY, CALPADS_SPRG, ILLUMINATE_REPORT)
}
#: The profiles a header can pick: a headerless one has nothing to be recognised by.
_DETECTABLE = tuple(p for p in PROFILES.values() if p.header)


def is_built_in(mapping: Mapping) -> bool:
    """Whether ``mapping`` is a built-in profile as shipped (detected, or named by ``--profile``), not a
    district's own: what it names is a shape many exports vary on, not a promise about this file."""
    return PROFILES.get(mapping.name) == mapping


def base_profile(mapping: Mapping) -> Mapping | None:
    """The built-in profile a district's mapping extends, if any: what the district did not write itself."""
    return PROFILES.get(mapping.extends) if mapping.extends else None


@dataclass(frozen=True)
class Detection:
    mapping: Mapping
    match: ColumnMatch


def detect_profile(header: Sequence[str], optional: frozenset[Field] = frozenset()) -> Detection | None:
    """The built-in profile whose required columns (less ``optional``) are all in ``header``; the one
    matching most columns wins, and of those the one listed first in ``PROFILES``.  None means the file is
    probably not a program export at all (a course roster, say)."""
    candidates = [Detection(p, match_columns(p, header, optional)) for p in _DETECTABLE]
    usable = [c for c in candidates if c.match.usable]
    if not usable:
        return None
    return max(usable, key=lambda c: len(c.match.positions))


def closest_profile(header: Sequence[str], optional: frozenset[Field] = frozenset()) -> tuple[Mapping, ColumnMatch]:
    """For the rejection message: the profile that came nearest, and what it lacked."""
    candidates = [(p, match_columns(p, header, optional)) for p in _DETECTABLE]
    return min(candidates, key=lambda c: (len(c[1].missing_required), -len(c[1].positions)))
