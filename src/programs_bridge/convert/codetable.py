"""The district's "Student Programs" code table from Illuminate (Admin Gear > Code Management).

Column 7 of programs.txt must hold a *code key* from this table, not a program name; a code can carry a system
key, and the 504 alert in Illuminate's student ribbon only shows for records on the code whose system key is
``504_plan``.  The table is small (tens of rows), so it is read whole.

A table that cannot be read exactly (broken quoting, binary data, a file far too big to be a code table) is
refused with :class:`CodeTableError` naming the line, never half-read: a lost code would reject every row
that uses it, and the rows after an unclosed quote would silently vanish into one description.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from programs_bridge.convert.findings import INVISIBLE
from programs_bridge.convert.headers import bare

SYSTEM_KEY_504 = "504_plan"
_LOOKS_LIKE_504 = re.compile(r"(?<!\d)504(?!\d)")

_KEY_HEADERS = ("codekey", "code", "key", "programid", "programcode")
_DESCRIPTION_HEADERS = ("description", "desc", "name", "programname")
_SYSTEM_HEADERS = ("systemkey", "system", "syskey")

#: A code table has tens of rows; a file of more than a megabyte is some other file.
MAX_BYTES = 1 << 20
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig", "UTF-8"), (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
         (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"))  # fmt: skip
#: Control characters no text CSV holds (tab, CR and LF are text).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_INVISIBLE = re.compile(f"[{INVISIBLE}]")
_ENDS = re.compile(rf"^[\s{INVISIBLE}]+|[\s{INVISIBLE}]+\Z")
#: What the csv module's strict mode says, in words for the person who exported the table.
_CSV_DAMAGE = {
    "unexpected end of data": 'a quoted value is never closed (a stray " quote)',
    "expected after": "a closing quote is followed by more text in the same value",
    "field larger than field limit": "a value is longer than any code or description (an unclosed quote?)",
}


class CodeTableError(Exception):
    """The code table file cannot be used (a configuration error, not a data error)."""


@dataclass(frozen=True)
class CodeTable:
    descriptions: dict[str, str]
    system_keys: dict[str, str]

    def __contains__(self, code: str) -> bool:
        return code in self.descriptions

    @property
    def code_504(self) -> str | None:
        """The code whose system key is 504_plan, if the district has one."""
        return next((code for code, key in self.system_keys.items() if key == SYSTEM_KEY_504), None)

    def looks_like_504(self, code: str, source_value: str = "") -> bool:
        """Whether a row's program is meant as a 504 plan: its description or its SIS value says 504."""
        return bool(_LOOKS_LIKE_504.search(self.descriptions.get(code, "")) or _LOOKS_LIKE_504.search(source_value))


def _pick(header: list[str], names: tuple[str, ...]) -> int | None:
    normalised = [bare(h) for h in header]
    return next((normalised.index(n) for n in names if n in normalised), None)


def decode_code_table(raw: bytes, source: str = "code table") -> str:
    """The text of a code table file: UTF-8 with or without a BOM, UTF-16 with a BOM (Excel's "Unicode
    Text"), else Windows-1252 (Excel's plain CSV)."""
    if len(raw) > MAX_BYTES:
        raise CodeTableError(
            f"{source} is larger than {MAX_BYTES >> 20} MiB, far more than a code table's few rows: "
            "is it the right file?"
        )
    for bom, encoding, name in _BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError:
                raise CodeTableError(f"{source} starts like {name} text but is not {name}: save it again") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def parse_code_table(text: str, source: str = "code table") -> CodeTable:
    """Read a code table's text; anything that cannot be read exactly raises :class:`CodeTableError`."""
    text = text.removeprefix("\ufeff")
    control = _CONTROL.search(text)
    if control is not None:
        line = text.count("\n", 0, control.start()) + 1
        what = "a NUL character" if control.group() == "\x00" else f"a control character (U+{ord(control.group()):04X})"
        raise CodeTableError(
            f"{source} is not a text CSV: line {line} holds {what}. Export the Student Programs code table "
            "from Illuminate again, or save the sheet as CSV (not as a workbook)"
        )
    sample = text[:4096]
    delimiter = max(",\t|;", key=sample.split("\n", 1)[0].count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[list[str]] = []
    starts = 1
    try:
        for row in reader:
            if any(c.strip() for c in row):
                rows.append(row)
            starts = reader.line_num + 1
    except csv.Error as exc:
        why = next((words for key, words in _CSV_DAMAGE.items() if key in str(exc)), str(exc))
        raise CodeTableError(f"{source}: the row starting on line {starts} cannot be read: {why}") from None
    if not rows:
        raise CodeTableError(f"{source} is empty")
    header, body = [_ENDS.sub("", h) for h in rows[0]], rows[1:]
    key_at = _pick(header, _KEY_HEADERS)
    if key_at is None:
        raise CodeTableError(f"{source} has no code key column (expected a header such as 'Code Key')")
    description_at = _pick(header, _DESCRIPTION_HEADERS)
    system_at = _pick(header, _SYSTEM_HEADERS)

    def cell(row: list[str], at: int | None) -> str:
        return _ENDS.sub("", row[at]) if at is not None and at < len(row) else ""

    def key(row: list[str], at: int | None) -> str:
        """A key is compared whole: invisible characters anywhere in it are dropped."""
        return _INVISIBLE.sub("", cell(row, at))

    descriptions = {key(row, key_at): cell(row, description_at) for row in body if key(row, key_at)}
    system_keys = {key(row, key_at): key(row, system_at) for row in body if key(row, system_at)}
    if not descriptions:
        raise CodeTableError(f"{source} lists no codes")
    return CodeTable(descriptions, system_keys)


def read_code_table(raw: bytes, source: str = "code table") -> CodeTable:
    """A code table from the file's bytes: :func:`decode_code_table`, then :func:`parse_code_table`."""
    return parse_code_table(decode_code_table(raw, source), source)


def load_code_table(path: Path) -> CodeTable:
    try:
        with path.open("rb") as table:
            raw = table.read(MAX_BYTES + 1)  # enough to know it is too big, without reading a huge file whole
    except OSError as exc:
        raise CodeTableError(f"cannot read code table {path}: {exc.strerror}") from None
    return read_code_table(raw, str(path))
