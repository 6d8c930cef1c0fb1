"""Noticing, across a whole file, that Excel stripped the leading zeros of student IDs.

One short ID proves nothing on its own: a district may really have student 4521.  But when every ID that starts
with a zero has the same width (say 6: ``004521``), and IDs of that width outnumber the shorter ones, the SIS
pads its IDs to that width, and any shorter all-digit ID in the same file lost its zeros on the way.  Such a
row would reach Illuminate under an ID that matches no student and no earlier record.

The tally is three fixed-size lists indexed by width (IDs are at most 30 characters; longer ones are
rejected anyway), updated inline by the row converter's hot loop, so it costs a few list operations per row
and no memory that grows with the file.
"""

from __future__ import annotations

from programs_bridge.convert.findings import Finding, warning

EXAMPLE_LINES = 5
_WIDTHS = 256  # any string length an ID column can hold before the length check rejects it is below this


class IdShape:
    def __init__(self) -> None:
        self.by_width = [0] * _WIDTHS
        self.padded = [False] * _WIDTHS
        self.examples: list[list[int]] = [[] for _ in range(_WIDTHS)]

    def add(self, student_id: str, line: int) -> None:
        """Tally one all-digit Import Student ID (the converter inlines this; tests call it)."""
        width = min(len(student_id), _WIDTHS - 1)
        self.by_width[width] += 1
        if student_id[0] == "0":
            self.padded[width] = True
        if self.by_width[width] <= EXAMPLE_LINES:
            self.examples[width].append(line)

    def finding(self, column: str) -> Finding | None:
        """A warning when the file shows padded IDs of one width and shorter ones beside them."""
        padded = [width for width, seen in enumerate(self.padded) if seen]
        if len(padded) != 1:
            return None
        width = padded[0]
        short = [w for w in range(1, width) if self.by_width[w]]
        if not short:
            return None
        count = sum(self.by_width[w] for w in short)
        if self.by_width[width] < count:  # the padded width is the exception (one long ID with a zero), not the rule
            return None
        lines = sorted(line for w in short for line in self.examples[w])[:EXAMPLE_LINES]
        return warning(
            lines[0],
            column,
            "leading_zeros_stripped",
            f"{count} Import Student ID(s) are shorter than the {width} digits the other IDs are padded to "
            f"(e.g. lines {', '.join(map(str, lines))}): Excel probably stripped their leading zeros, and "
            "Illuminate would not match them to the student. Re-export without Excel, or set "
            f"ids.import_student_id_width = {width} in a mapping to pad them back",
        )
