"""Writing programs.txt lines: tab-delimited, no quoting, so values must never carry a tab, CR or LF."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from programs_bridge.programs_txt.layout import STANDARD, Layout

_BREAKS = re.compile(r"[\t\r\n]+")


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """How the district's Illuminate site wants the file: header on, LF, 15 columns unless told otherwise."""

    layout: Layout = STANDARD
    header: bool = True
    newline: str = "\n"


def clean(value: str) -> str:
    """Collapse tabs, CRs and LFs inside a value to one space: Illuminate has no quoting to protect them."""
    return _BREAKS.sub(" ", value).strip()


def render_line(values: Sequence[str]) -> tuple[str, bool]:
    """The tab-joined line and whether any value had to be cleaned.

    Checks the joined line once instead of every value: the common case costs two C-level scans.
    """
    line = "\t".join(values)
    if line.count("\t") == len(values) - 1 and "\n" not in line and "\r" not in line:
        return line, False
    return "\t".join(clean(v) for v in values), True


def render_header(output: OutputFormat) -> str:
    return "\t".join(output.layout.header) + output.newline
