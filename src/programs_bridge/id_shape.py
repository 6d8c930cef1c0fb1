"""Noticing, across a whole file, that Excel stripped the leading zeros of student IDs.

One short ID proves nothing on its own: a district may really have student 4521.  But when every ID that starts
with a zero has the same width (say 6: ``004521``), the SIS pads its IDs to that width, and any shorter
all-digit ID in the same file lost its zeros on the way.  Such a row would reach Illuminate under an ID that
matches no student and no earlier record.  The tally is a few counters and at most a handful of line numbers
per width, so it costs nothing per row and no memory that grows with the file.
"""

from __future__ import annotations

from programs_bridge.findings import Finding, warning

_EXAMPLE_LINES = 5


class IdShape:
    def __init__(self) -> None:
        self.by_width: dict[int, int] = {}
        self.padded_widths: set[int] = set()
        self.examples: dict[int, list[int]] = {}

    def add(self, student_id: str, line: int) -> None:
        """Tally one Import Student ID (call only for all-digit IDs)."""
        width = len(student_id)
        seen = self.by_width[width] = self.by_width.get(width, 0) + 1
        if student_id[0] == "0":
            self.padded_widths.add(width)
        if seen <= _EXAMPLE_LINES:
            self.examples.setdefault(width, []).append(line)

    def finding(self, column: str) -> Finding | None:
        """A warning when the file shows padded IDs of one width and shorter ones beside them."""
        if len(self.padded_widths) != 1:
            return None
        (width,) = self.padded_widths
        short = sorted(w for w in self.by_width if w < width)
        if not short:
            return None
        count = sum(self.by_width[w] for w in short)
        lines = sorted(line for w in short for line in self.examples[w])[:_EXAMPLE_LINES]
        return warning(
            lines[0],
            column,
            "leading_zeros_stripped",
            f"{count} Import Student ID(s) are shorter than the {width} digits the other IDs are padded to "
            f"(e.g. lines {', '.join(map(str, lines))}): Excel probably stripped their leading zeros, and "
            "Illuminate would not match them to the student. Re-export without Excel, or set "
            f"ids.import_student_id_width = {width} in a mapping to pad them back",
        )
