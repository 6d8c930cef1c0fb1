"""The district's "Student Programs" code table from Illuminate (Admin Gear > Code Management).

Column 7 of programs.txt must hold a *code key* from this table, not a program name; a code can carry a system
key, and the 504 alert in Illuminate's student ribbon only shows for records on the code whose system key is
``504_plan``.  The table is small (tens of rows), so it is read whole.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from programs_bridge.headers import bare

SYSTEM_KEY_504 = "504_plan"
_LOOKS_LIKE_504 = re.compile(r"(?<!\d)504(?!\d)")

_KEY_HEADERS = ("codekey", "code", "key", "programid", "programcode")
_DESCRIPTION_HEADERS = ("description", "desc", "name", "programname")
_SYSTEM_HEADERS = ("systemkey", "system", "syskey")


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


def parse_code_table(text: str, source: str = "code table") -> CodeTable:
    sample = text[:4096]
    delimiter = max(",\t|;", key=sample.split("\n", 1)[0].count)
    rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip() for c in row)]
    if not rows:
        raise CodeTableError(f"{source} is empty")
    header, body = rows[0], rows[1:]
    key_at = _pick(header, _KEY_HEADERS)
    if key_at is None:
        raise CodeTableError(f"{source} has no code key column (expected a header such as 'Code Key')")
    description_at = _pick(header, _DESCRIPTION_HEADERS)
    system_at = _pick(header, _SYSTEM_HEADERS)

    def cell(row: list[str], at: int | None) -> str:
        return row[at].strip() if at is not None and at < len(row) else ""

    descriptions = {cell(row, key_at): cell(row, description_at) for row in body if cell(row, key_at)}
    system_keys = {cell(row, key_at): cell(row, system_at) for row in body if cell(row, system_at)}
    if not descriptions:
        raise CodeTableError(f"{source} lists no codes")
    return CodeTable(descriptions, system_keys)


def load_code_table(path: Path) -> CodeTable:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CodeTableError(f"cannot read code table {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    return parse_code_table(text, str(path))
