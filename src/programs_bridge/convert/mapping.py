"""How a district's export maps onto programs.txt: the TOML mapping file and its validation.

A mapping names, for each programs.txt column, the export column(s) it comes from, or a constant; value maps
turn SIS program and site codes into Illuminate's code keys; the rest are the habits of a given SIS (date order,
"open" sentinel end dates, rows to skip, ID widths Excel may have shortened).  Built-in profiles
(``profiles.py``) are instances of the same model, so a custom mapping can do anything a profile does, and a
mapping may start from one (``extends = "calpads-sprg"``) and add or override its tables.

A column is named by its header label, or by its 1-based position (``import_student_id = 8``), which is
how a headerless extract (``header = false``, CALPADS SPRG among them) is read.

Loading reports every problem with the dotted path of the bad key, e.g. ``columns.studnet_id``, because the
person who wrote the file is a data clerk, not a developer.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    StrictInt,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import Field as Setting
from pydantic_core import ErrorDetails, PydanticCustomError

from programs_bridge.convert.dates import DateOrder
from programs_bridge.programs_txt.layout import COLUMNS, Field


def _names_a_column(value: int | str | list[str]) -> int | str | list[str]:
    """A source must name at least one export column, and no name may be blank: either would leave the
    programs.txt column unmapped with the file blamed for it ("the file has no column for ...")."""
    if isinstance(value, int):
        return value
    names = [value] if isinstance(value, str) else value
    if not names:
        raise PydanticCustomError(
            "no_column", "the list of export columns is empty; name at least one column, or leave the key out"
        )
    if any(not name.strip() for name in names):
        raise PydanticCustomError("blank_column", "an export column name is empty; write the column's header")
    return value


#: The most fields a positional mapping may point at: ``ReadLimits.max_columns``' default.
MAX_POSITION = 500
#: A column by its 1-based position in the row; strict, so ``true`` is not read as field 1.
Position = Annotated[StrictInt, Setting(ge=1, le=MAX_POSITION)]
#: Union tags: a value is checked as the one kind its type says, so an error names one problem, not every
#: branch's (``_describe`` leaves the tags out of the path).
_BY_POSITION, _BY_NAME, _BY_NAMES = "by-position", "by-name", "by-names"
_TAGS = (_BY_POSITION, _BY_NAME, _BY_NAMES)


def _by_kind(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return _BY_POSITION
    return _BY_NAMES if isinstance(value, list | tuple) else _BY_NAME


#: A column by label, by a list of alternative labels, or by position.
Source = Annotated[
    Annotated[Position, Tag(_BY_POSITION)] | Annotated[str, Tag(_BY_NAME)] | Annotated[list[str], Tag(_BY_NAMES)],
    Discriminator(_by_kind),
    AfterValidator(_names_a_column),
]
#: A skip or record rule's column: one label or one position.
ColumnRef = Annotated[Annotated[Position, Tag(_BY_POSITION)] | Annotated[str, Tag(_BY_NAME)], Discriminator(_by_kind)]
ValueTable = Literal["program_id", "site_id"]

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
    column: ColumnRef
    values: Annotated[tuple[str, ...], Setting(min_length=1)]
    """Rows whose ``column`` holds one of these values (any case) are skipped and counted, e.g. Aeries DEL=Y."""


class RecordRule(_Strict):
    """Which records this mapping reads, for files that say what kind each record is (CALPADS'
    RecordTypeCode): a first row of another kind rejects the file as the wrong one, a later row of another
    kind is a row error."""

    column: ColumnRef
    values: tuple[str, ...]
    """The record kinds read, e.g. ``["SPRG"]`` (compared in any case); at least one, none blank."""
    others: tuple[str, ...] = ()
    """Kinds known to mark another file (``SENR``, ``SINF``, ...): a rejection names them, being codes, not
    personal data; any other value is described, never quoted."""

    @field_validator("values")
    @classmethod
    def _named(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        if not values or any(not value.strip() for value in values):
            raise ValueError('name the record kinds this mapping reads, none blank: values = ["SPRG"]')
        return values


class IdSettings(_Strict):
    import_student_id_width: Annotated[int, Setting(ge=1, le=30)] | None = None
    """Pad an all-digit Import Student ID with leading zeros to this width (Excel strips them)."""
    state_student_id_width: Annotated[int, Setting(ge=1, le=30)] | None = None


class Mapping(_Strict):
    name: str = "custom"
    description: str = ""
    extends: str | None = None
    """The built-in profile this mapping starts from; its tables are merged key by key, skip rules added."""
    columns: dict[Field, Source] = Setting(default_factory=dict)
    constants: dict[Field, str] = Setting(default_factory=dict)
    values: dict[ValueTable, dict[str, str]] = Setting(default_factory=dict)
    required_values: tuple[ValueTable, ...] = ()
    """Value tables every row's code must be found in: an unmapped code is a row error, not passed through
    (a CALPADS CDS school code is never an Illuminate Site ID).  A file read with such a table empty is
    rejected before any row, so a profile can require what only the district's own mapping can give."""
    dates: DateSettings = DateSettings()
    academic_year: AcademicYearSettings = AcademicYearSettings()
    skip: tuple[SkipRule, ...] = ()
    records: RecordRule | None = None
    ids: IdSettings = IdSettings()
    delimiter: Literal[",", "\t", "|", "^", ";"] | None = None
    encoding: Literal["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "cp1252"] | None = None
    quoting: bool = True
    """Whether a double quote may enclose a value, as in CSV.  CALPADS extracts never quote: there a ``"`` is
    part of a name, and reading it as a quote would join rows."""
    header: bool = True
    """Whether the first line names the columns.  A headerless file is never detected: a feed or command
    names its profile or mapping, and its columns are named by position or by ``field_names``."""
    field_names: tuple[str, ...] = ()
    """A headerless file's record layout, in order: the names messages use, and that ``columns`` may use as
    if the file had this header.  Without them, fields are called ``field 1``, ``field 2`` ..."""
    field_counts: tuple[Annotated[int, Setting(ge=1, le=MAX_POSITION)], ...] = ()
    """A headerless file's accepted field counts (SPRG: 26, or 28 in the ODS extract); a row of another
    count is a row error.  Default: as many as ``field_names``, or as the file's first row."""

    @model_validator(mode="before")
    @classmethod
    def _extend(cls, data: Any, info: ValidationInfo) -> Any:
        """Resolve ``extends`` against the profiles the caller passed in the validation context."""
        if not isinstance(data, dict) or data.get("extends") is None:
            return data
        bases: dict[str, Mapping] = (info.context or {}).get("profiles", {})
        name = data["extends"]
        if not isinstance(name, str) or name not in bases:
            known = ", ".join(bases) or "none here"
            raise PydanticCustomError("unknown_profile", "extends names no built-in profile; use one of: {known}",
                                      {"known": known})  # fmt: skip
        return extended(bases[name], data)

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
        blank = [f"values.{table}.{code}" for table, entries in self.values.items()
                 for code, value in entries.items() if not value.strip()]  # fmt: skip
        if blank:
            raise ValueError(
                f"{', '.join(blank[:5])} map(s) a code to an empty value: give the district's code, or leave the "
                "entry out"
            )
        hidden = [f"constants.{f.value}" for f, value in self.constants.items() if not value.isprintable()]
        hidden += [f"values.{table}.{code}" for table, entries in self.values.items()
                   for code, value in entries.items() if not value.isprintable()]  # fmt: skip
        if hidden:
            raise ValueError(
                f"{', '.join(hidden[:5])} hold(s) a control, invisible or special-space character, which would be "
                "sent on every row as it is: type the value again"
            )
        for table, entries in self.values.items():
            folded: dict[str, str] = {}
            for code, value in entries.items():
                twin = folded.setdefault(code.casefold(), code)
                if twin != code and entries[twin] != value:
                    raise ValueError(
                        f"values.{table}: '{twin}' and '{code}' are one SIS value (matched in any case) mapped to "
                        "different codes; keep one"
                    )
        if not self.name.isprintable() or len(self.name) > 100:
            raise ValueError("name is shown in summaries and reports: one line of printable text, at most 100 long")
        repeated = sorted({name for name in self.field_names if self.field_names.count(name) > 1})
        if repeated or any(not name.strip() for name in self.field_names):
            problem = f"{', '.join(repeated)} appear(s) more than once" if repeated else "one is blank"
            raise ValueError(f"field_names name each field once, in order: {problem}")
        if not self.header:
            self._check_positional()
        elif (self.field_names or self.field_counts) and self.extends:
            raise ValueError(
                f"{self.extends} reads a file without a header row (its record layout names the fields), so header "
                f"= true does not fit it: leave header out, or describe a file with a header without extends"
            )
        elif self.field_names or self.field_counts:
            raise ValueError("field_names and field_counts describe a file without a header row: add header = false")
        return self

    def _check_positional(self) -> None:
        named = [s for f in self.columns for s in self.sources(f) if isinstance(s, str)]
        named += [str(rule.column) for rule in self.skip if isinstance(rule.column, str)]
        if self.records is not None and isinstance(self.records.column, str):
            named.append(self.records.column)
        unknown = [n for n in named if n not in self.field_names] if self.field_names else named
        if unknown:
            raise ValueError(
                f"header = false, so columns are named by position (import_student_id = 8) or by field_names; "
                f"not found: {', '.join(unknown)}"
            )
        width = max(len(self.field_names), *self.field_counts, 0) or MAX_POSITION
        beyond = sorted({p for p in self.positions() if p > width})
        if beyond:
            raise ValueError(f"position(s) {', '.join(map(str, beyond))} lie past the {width} fields of a row")

    def positions(self) -> list[int]:
        """Every column named by position, skip and record rules included."""
        sources = [s for f in self.columns for s in self.sources(f)]
        sources += [rule.column for rule in self.skip] + ([self.records.column] if self.records else [])
        return [s for s in sources if isinstance(s, int)]

    def sources(self, field: Field) -> tuple[str | int, ...]:
        """The export columns (labels or 1-based positions) that may carry ``field``, most preferred first."""
        value = self.columns.get(field, ())
        return (value,) if isinstance(value, str | int) else tuple(value)


#: Tables a mapping merges key by key into the profile it extends; ``values`` one level deeper.
_MERGED = ("dates", "academic_year", "ids")


def extended(base: Mapping, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a mapping file's settings) laid over ``base``: a key given replaces the base's, tables merge,
    skip rules add to the base's, and a column the file gives as a constant (or the reverse) stops being
    the other."""
    merged: dict[str, Any] = base.model_dump(mode="json", exclude_defaults=True, exclude={"name", "description"})
    merged["description"] = base.description
    # A field the file itself gives both ways stays in both tables, for validation to name the conflict.
    columns, constants = data.get("columns"), data.get("constants")
    both = set(columns) & set(constants) if isinstance(columns, dict) and isinstance(constants, dict) else set()
    for key, value in data.items():
        if key in ("columns", "constants") and isinstance(value, dict):
            other = "constants" if key == "columns" else "columns"
            merged[other] = {k: v for k, v in merged.get(other, {}).items() if k not in value or k in both}
            merged[key] = {**merged.get(key, {}), **value}
        elif key in _MERGED and isinstance(value, dict):
            merged[key] = {**merged.get(key, {}), **value}
        elif key == "values" and isinstance(value, dict):
            tables = dict(merged.get("values", {}))
            for table, entries in value.items():
                tables[table] = {**tables.get(table, {}), **entries} if isinstance(entries, dict) else entries
            merged["values"] = tables
        elif key == "skip" and isinstance(value, list):
            merged["skip"] = [*merged.get("skip", []), *value]
        else:
            merged[key] = value
    merged["extends"] = base.name
    return merged


def problem_line(problem: ErrorDetails, whole: str = "") -> str:
    """One validation problem as a clerk reads it: where (the settings' path, without pydantic's union tags),
    and the rule's own sentence without pydantic's "Value error, " before it; ``whole`` names a problem of
    the settings as a whole.  A mapping file and a feed configuration say their problems alike."""
    where = ".".join(str(part) for part in problem["loc"] if part not in ("[key]", *_TAGS)) or whole
    if problem["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        message = "unknown setting (check the spelling; see the README's reference)"
    elif problem["type"] == "enum" and "[key]" in problem["loc"]:
        known = ", ".join(f.value for f in Field)
        message = f"not a programs.txt column; use one of: {known}"
    elif problem["type"] == "value_error" and "error" in problem.get("ctx", {}):
        message = str(problem["ctx"]["error"])
    else:
        message = problem["msg"]
    return f"{where}: {message}" if where else message


def _describe(error: ValidationError) -> str:
    return "\n".join(problem_line(problem) for problem in error.errors(include_input=False, include_url=False))


def parse_mapping(
    data: dict[str, object], source: str = "mapping", profiles: dict[str, Mapping] | None = None
) -> Mapping:
    """Validate a mapping's settings; ``profiles`` are what ``extends`` may name (``profiles.PROFILES``)."""
    try:
        return Mapping.model_validate(data, context={"profiles": profiles or {}})
    except ValidationError as exc:
        raise MappingError(f"{source} is not a valid mapping:\n{_describe(exc)}") from None


def load_mapping(path: Path, profiles: dict[str, Mapping] | None = None) -> Mapping:
    """Read and validate a TOML mapping file (``profiles``: what its ``extends`` may name)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise MappingError(f"cannot read mapping file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MappingError(f"{path} is not valid TOML: {exc}") from None
    mapping = parse_mapping(data, str(path), profiles)
    if "name" not in data:
        mapping = mapping.model_copy(update={"name": path.stem})
    return mapping
