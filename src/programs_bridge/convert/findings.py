"""What validation says about a file or a row, in words a data clerk can act on.

A finding names the physical line of the source file (1 = the header), the source column, a stable
machine-readable ``code`` (documented in the README, safe to filter on in CloudWatch), a severity and a
message.  Student IDs, names and birth dates never appear in a finding, because reports and logs travel
further than the export does; and since a shifted row puts any of them in any column, a message quotes a
value only when :func:`quotable` says its shape rules them out, and describes it otherwise.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from programs_bridge.convert.dates import BAD_DATE, parse_date


class Severity(StrEnum):
    """``error`` keeps the row out of programs.txt; ``warning`` keeps it in; ``info`` is only said."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    line: int | None
    column: str | None
    code: str
    severity: Severity
    message: str

    def to_json(self) -> dict[str, Any]:
        # Written out, not ``dataclasses.asdict``: a damaged export has a finding every few rows, and asdict
        # deep-copies each field (measured: most of the finding log's time).
        return {
            "line": self.line,
            "column": self.column,
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
        }


def error(line: int | None, column: str | None, code: str, message: str) -> Finding:
    return Finding(line, column, code, Severity.ERROR, message)


def warning(line: int | None, column: str | None, code: str, message: str) -> Finding:
    return Finding(line, column, code, Severity.WARNING, message)


def info(line: int | None, column: str | None, code: str, message: str) -> Finding:
    return Finding(line, column, code, Severity.INFO, message)


# --- what a message may show of a value --------------------------------------------------------------------

#: A code-like token: what a program, site, eligibility or exit code looks like, and no name can.
_TOKEN = re.compile(r"[A-Z0-9_.\-]{1,10}", re.ASCII)
#: A school year as SIS exports spell it, right or wrong (``2025-2026``, ``2025-26``, ``SY2025-26``,
#: ``2025/2027``): a first part of 19xx or 20xx, so not a student ID's digits.
_SCHOOL_YEAR = re.compile(r"(?:SY ?)?((?:19|20)\d\d) ?[-/\u2013\u2014] ?((?:19|20)\d\d|\d\d)", re.ASCII)


def _school_year(value: str) -> bool:
    """A school year, and not a year and month (``2010-05`` may be a birth date's): a two-digit second part
    is one only when it cannot be a month, or is the first year plus one (``2025-26``)."""
    match = _SCHOOL_YEAR.fullmatch(value)
    if match is None:
        return False
    first, second = match[1], match[2]
    return len(second) == 4 or int(second) > 12 or int(second) == (int(first) + 1) % 100


def quotable(value: str) -> bool:
    """Whether a message may quote ``value``: the one rule for every finding about a row's values.

    Any column may hold another column's value (a second export with another column order concatenated
    below the first, a shifted row), so the column a value sits in proves nothing: only its shape does.
    A value is quoted when its shape rules out a name, a birth date and a student ID:

    * a school year (``2025-2026``, ``2025-26``, ``SY2025-26``), right or wrong; or
    * a code-like token: 1 to 10 characters of ``A-Z``, ``0-9``, ``-``, ``_`` and ``.``, one or two of
      them digits and at least one not, and not a date in any form the converter reads (``12A``, ``E1``,
      ``SP-2``, ``H.12``).  Two digits at most, because student IDs with letters (``AB123``, ``S1234567``)
      need more digits than that to tell a district's students apart.

    Never quoted, therefore: words and names in any case (``SPED`` could be a surname written in capitals),
    numbers of any length (``0012`` could be a student ID; ``45304`` is one as often as it is an Excel
    date), dates, and anything longer than ten characters.  Callers may also quote a value they have
    checked against the district's configuration (a code in the code table, a value of the mapping): that
    text came from the configuration, not from a student's record.  Everything else is described
    (:func:`describe`), never shown.
    """
    if _school_year(value):
        return True
    return (
        _TOKEN.fullmatch(value) is not None
        and 1 <= sum(c.isdigit() for c in value) <= 2
        and not value.isdigit()
        and parse_date(value).code == BAD_DATE
    )


def describe(value: str) -> str:
    """What ``value`` is, in a few words that do not show it: ``text``, ``a 6-digit number``, ``a date``."""
    if not value:
        return "empty"
    if value.isdigit():
        if not value.isascii():
            return "a number in digits other than 0-9"
        width = len(value)
        return f"{'an' if width in (8, 11, 18) or 80 <= width <= 89 else 'a'} {width}-digit number"
    if parse_date(value).code != BAD_DATE:
        return "a date"
    if any(c.isalpha() for c in value):
        return "text"
    return f"a {len(value)}-character value"


def summary_id(value: str) -> str:
    """A program or site id as a summary or a notice may show it, outside the district's bucket: a code-like
    token or a number of up to four digits (a longer number could be a student ID from a shifted row; the
    converter checks a Site ID only as a whole number); else ``(not shown)``."""
    if not value:
        return "(empty)"
    return value if quotable(value) or (value.isdigit() and value.isascii() and len(value) <= 4) else "(not shown)"


def shown(value: str, *, checked: bool = False) -> str:
    """``'value'`` when it may be quoted (``checked``: it matched the district's configuration), else
    ``(text, not shown)``: for messages of the form ``f"Program ID {shown(v)} is not ..."``."""
    if checked or quotable(value):
        return f"'{value}'"
    return f"({describe(value)}, not shown)"


# --- characters nobody sees ----------------------------------------------------------------------------

#: What is never part of anyone's spelling, wherever it stands in a value: the ASCII control codes (an
#: escape sequence or a DEL from a terminal, a vertical tab from a spreadsheet cell's line break) and the C1
#: control codes a wrong decoding leaves.  Tab, line feed and carriage return are left to the renderer,
#: which makes them a space with their own warning.
CONTROL = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u0080-\u009f"
#: What ends a line for a reader that honours Unicode line boundaries, beyond tab, LF and CR: the vertical tab
#: (FileMaker's line break inside a field), form feed, the file/group/record separators, NEXT LINE and the
#: line and paragraph separators.  Inside a name it parted two words, so it becomes a plain space.
LINE_SEPARATORS = "\x0b\x0c\x1c-\x1e\x85\u2028\u2029"
#: Characters that show as nothing, yet make a value differ from the same value typed without them: the
#: control codes above, the byte-order mark a concatenated export carries into its first field, zero-width
#: spaces and joiners from copy and paste, direction marks and isolates, soft hyphens, word joiners and tag
#: characters.  All are Unicode "format" (Cf) or control (Cc) characters, which ``str.isprintable``
#: rejects: the converters test that in C (``may_hide``) to skip the search on almost every row.  Left out: the
#: Cf characters that draw something in their script (Arabic number signs, Syriac and Egyptian format
#: marks), and the few invisible characters Unicode counts as printable (variation selectors, Hangul
#: fillers, the braille blank), which no SIS or spreadsheet is known to put in an export and which would
#: cost every accented row a scan.
INVISIBLE = (
    CONTROL
    + "\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
    + "\ufff9-\ufffb\U000e0001\U000e0020-\U000e007f"
)
#: Spaces other than the plain one (no-break, thin, ideographic, ...) and the Unicode line separators.
#: ``str.strip`` already trims them from the ends of a value; inside a key they become a plain space.
SPACE_LIKE = "\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))


def may_hide(text: str) -> bool:
    """Whether ``text`` may hold a character nobody sees (or a tab or line break): the C-level test that lets
    a converter skip the search on almost every value.  An ASCII text is tested by deleting its printable
    bytes, four times faster than ``str.isprintable`` on a column of a million values."""
    if text.isascii():
        return bool(text.encode("ascii").translate(None, _PRINTABLE_ASCII))
    return not text.isprintable()


def invisible_names(characters: str) -> str:
    """``U+FEFF (byte-order mark), U+200B ZERO WIDTH SPACE``: each distinct character once, in order."""
    named = []
    for character in dict.fromkeys(characters):
        code = f"U+{ord(character):04X}"
        if character == "\ufeff":
            named.append(f"{code} (byte-order mark)")
        else:
            name = unicodedata.name(character, "")
            named.append(f"{code} {name}" if name else f"{code} (a control character)")
    return ", ".join(named)
