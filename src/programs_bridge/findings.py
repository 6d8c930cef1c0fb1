"""What validation says about a file or a row, in words a data clerk can act on.

A finding names the physical line of the source file (1 = the header), the source column, a stable
machine-readable ``code`` (documented in the README, safe to filter on in CloudWatch), a severity and a
message.  Messages quote the offending *value* only for fields that are not personal: dates, codes,
site numbers.  Student IDs and names never appear in a finding, because reports and logs travel further
than the export does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


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
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


def error(line: int | None, column: str | None, code: str, message: str) -> Finding:
    return Finding(line, column, code, Severity.ERROR, message)


def warning(line: int | None, column: str | None, code: str, message: str) -> Finding:
    return Finding(line, column, code, Severity.WARNING, message)


def info(line: int | None, column: str | None, code: str, message: str) -> Finding:
    return Finding(line, column, code, Severity.INFO, message)
