"""How a district's export maps onto programs.txt: the TOML mapping file and its validation.

A mapping names, for each programs.txt column, the export column(s) it comes from, or a constant; value maps
turn SIS program and site codes into Illuminate's code keys; the rest are the habits of a given SIS (date order,
"open" sentinel end dates, rows to skip, ID widths Excel may have shortened).  Built-in profiles
(``profiles.py``) are instances of the same model, so a custom mapping can do anything a profile does.

Loading reports every problem with the dotted path of the bad key, e.g. ``columns.studnet_id``, because the
person who wrote the file is a data clerk, not a developer.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator
from pydantic import Field as Setting
from pydantic_core import PydanticCustomError

from programs_bridge.convert.dates import DateOrder
from programs_bridge.programs_txt.layout import COLUMNS, Field


def _names_a_column(value: str | list[str]) -> str | list[str]:
    """A source must name at least one export column, and no name may be blank: either would leave the
    programs.txt column unmapped with the file blamed for it ("the file has no column for ...")."""
    names = [value] if isinstance(value, str) else value
    if not names:
        raise PydanticCustomError(
            "no_column", "the list of export columns is empty; name at least one column, or leave the key out"
        )
    if any(not name.strip() for name in names):
        raise PydanticCustomError("blank_column", "an export column name is empty; write the column's header")
    return value


SourceColumns = Annotated[str | list[str], AfterValidator(_names_a_column)]

DEFAULT_OPEN_END_DATES = ("1/1/1900", "01-JAN-1900")


class MappingError(Exception):
    """The mapping file cannot be used; the message lists every problem, one per line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DateSettings(_Strict):
    order: DateOrder = DateOrder.MDY
    """How to read ambiguous numeric dates such as 03/04/2025 (US month-first unless told otherwise)."""
    open_end_dates: tuple[str, ...] = DEFAULT_OPEN_END_DATES
    """End dates that mean "still enrolled" in this SIS (PowerSchool's 1/1/1900 in older data)."""


class AcademicYearSettings(_Strict):
    derive: bool = True
    """Fill an empty Academic Year from the start date (Illuminate wants ``YYYY-YYYY``)."""
    first_month: Annotated[int, Setting(ge=1, le=12)] = 7
    """The month a school year starts in: July by default."""


class SkipRule(_Strict):
    column: str
    values: tuple[str, ...]
    """Rows whose ``column`` holds one of these values (any case) are skipped and counted, e.g. Aeries DEL=Y."""


class IdSettings(_Strict):
    import_student_id_width: Annotated[int, Setting(ge=1, le=30)] | None = None
    """Pad an all-digit Import Student ID with leading zeros to this width (Excel strips them)."""
    state_student_id_width: Annotated[int, Setting(ge=1, le=30)] | None = None


class Mapping(_Strict):
    name: str = "custom"
    description: str = ""
    columns: dict[Field, SourceColumns] = Setting(default_factory=dict)
    constants: dict[Field, str] = Setting(default_factory=dict)
    values: dict[Literal["program_id", "site_id"], dict[str, str]] = Setting(default_factory=dict)
    dates: DateSettings = DateSettings()
    academic_year: AcademicYearSettings = AcademicYearSettings()
    skip: tuple[SkipRule, ...] = ()
    ids: IdSettings = IdSettings()
    delimiter: Literal[",", "\t", "|", ";"] | None = None
    encoding: Literal["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "cp1252"] | None = None

    @model_validator(mode="after")
    def _complete(self) -> Mapping:
        both = sorted(set(self.columns) & set(self.constants))
        if both:
            raise ValueError(f"{', '.join(both)} is given both as a column and as a constant; keep one")
        given = set(self.columns) | set(self.constants)
        missing = [c.field.value for c in COLUMNS if c.required and c.field not in given]
        if missing:
            raise ValueError(f"no source column or constant for required column(s): {', '.join(missing)}")
        if not given & {Field.PROGRAM_START_DATE, Field.ELIGIBILITY_START_DATE}:
            raise ValueError("map program_start_date or eligibility_start_date: Illuminate needs one of them")
        return self

    def sources(self, field: Field) -> tuple[str, ...]:
        """The export column names that may carry ``field``, most preferred first."""
        value = self.columns.get(field, ())
        return (value,) if isinstance(value, str) else tuple(value)


def _describe(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"] if part != "[key]")
        if problem["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling; see the README's mapping reference)"
        elif problem["type"] == "enum" and "[key]" in problem["loc"]:
            known = ", ".join(f.value for f in Field)
            message = f"not a programs.txt column; use one of: {known}"
        else:
            message = problem["msg"]
        lines.append(f"{where}: {message}" if where else message)
    return "\n".join(lines)


def parse_mapping(data: dict[str, object], source: str = "mapping") -> Mapping:
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        raise MappingError(f"{source} is not a valid mapping:\n{_describe(exc)}") from None


def load_mapping(path: Path) -> Mapping:
    """Read and validate a TOML mapping file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise MappingError(f"cannot read mapping file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MappingError(f"{path} is not valid TOML: {exc}") from None
    mapping = parse_mapping(data, str(path))
    if "name" not in data:
        mapping = mapping.model_copy(update={"name": path.stem})
    return mapping
