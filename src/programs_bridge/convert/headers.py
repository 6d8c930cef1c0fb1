"""Matching a mapping's column names against an export's header row.

SIS exports spell the same column many ways: ``Students.Student_Number``, ``student_number``,
``STUDENT NUMBER``, or ``01 Import Student ID`` in an Illuminate-shaped file.  Matching therefore ignores case,
punctuation, spacing, an ``NN `` label number and a table prefix (``PGM.``, ``Students.``).  A name that
carries its own prefix (``spProgram.startDate``) first tries to match with the prefix, so exports that hold
two ``startDate`` columns from different tables can still be told apart.  A column named by position
(``8``) is the row's eighth field, whatever the header says, and so is found in a headerless file too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from programs_bridge.convert.mapping import Mapping
from programs_bridge.programs_txt.layout import COLUMNS, Field

_LABEL_NUMBER = re.compile(r"^\s*\d{1,2}\s+")
#: What a label is compared without: anything but letters, digits and dots, in any script (a ``[^0-9a-z.]``
#: class made ``姓`` and ``名`` one label, the empty one, which also matched every blank header cell).
_NOT_ALNUM_OR_DOT = re.compile(r"[^\w.]+|_+")


def qualified(label: str) -> str:
    """Case- and punctuation-free form that keeps a table prefix: ``Students.Student_Number`` ->
    ``students.studentnumber``."""
    label = _LABEL_NUMBER.sub("", label.replace("\ufeff", "").strip().strip('"'))
    return _NOT_ALNUM_OR_DOT.sub("", label.casefold()).strip(".")


def bare(label: str) -> str:
    """Like ``qualified`` without the table prefix: ``PGM.PSD`` -> ``psd``."""
    return qualified(label).rsplit(".", 1)[-1]


@dataclass(frozen=True)
class ColumnMatch:
    """Where each programs.txt field comes from in one particular export."""

    positions: dict[Field, int]
    missing_required: tuple[Field, ...]
    ambiguous: dict[Field, tuple[str, ...]] = field(default_factory=dict)
    skip: tuple[tuple[int, frozenset[str]], ...] = ()
    unmatched_skip_columns: tuple[str | int, ...] = ()
    records: tuple[int, frozenset[str]] | None = None
    """The record-kind rule's column and kinds (``Mapping.records``), when it applies to this file."""
    records_unmatched: bool = False
    """The mapping reads only some record kinds, and this file has no (single) column that says the kind."""

    @property
    def usable(self) -> bool:
        return not self.missing_required and not self.ambiguous and not self.records_unmatched


def _find(name: str | int, header: Sequence[str]) -> list[int]:
    if isinstance(name, int):
        return [name - 1] if name <= len(header) else []
    wanted = qualified(name)
    if not wanted:  # a label of punctuation alone (#, №) is matched as written, and never to a blank cell
        written = name.strip().casefold()
        return [i for i, label in enumerate(header) if written and label.strip().casefold() == written]
    exact = [i for i, label in enumerate(header) if qualified(label) == wanted]
    if exact or "." in wanted:
        return exact
    return [i for i, label in enumerate(header) if bare(label) == wanted]


#: The fields that say who the student is, beyond the key: a report of records for the ledger alone (a
#: ``ledger seed``, never delivered) may lack them (``match_columns(optional=...)``).
PERSON_FIELDS = frozenset({Field.LAST_NAME, Field.FIRST_NAME, Field.BIRTH_DATE})


def match_columns(mapping: Mapping, header: Sequence[str], optional: frozenset[Field] = frozenset()) -> ColumnMatch:
    """Where each of ``mapping``'s fields is in ``header``; a required field in ``optional`` may be absent."""
    positions: dict[Field, int] = {}
    ambiguous: dict[Field, tuple[str, ...]] = {}
    for target in mapping.columns:
        for name in mapping.sources(target):
            hits = _find(name, header)
            if len(hits) == 1:
                positions[target] = hits[0]
                break
            if len(hits) > 1:
                ambiguous[target] = tuple(header[i] for i in hits)
                break
    given = set(positions) | set(mapping.constants)
    # A field found more than once is ambiguous, not missing: said as such, it names the repeated columns.
    excused = optional | set(ambiguous)
    missing = [c.field for c in COLUMNS if c.required and c.field not in given and c.field not in excused]
    if not given & {Field.PROGRAM_START_DATE, Field.ELIGIBILITY_START_DATE}:
        missing.append(Field.PROGRAM_START_DATE)
    skip: list[tuple[int, frozenset[str]]] = []
    unmatched: list[str | int] = []
    for rule in mapping.skip:
        hits = _find(rule.column, header)
        if len(hits) == 1:
            skip.append((hits[0], frozenset(v.strip().casefold() for v in rule.values)))
        else:
            unmatched.append(rule.column)
    records, records_unmatched = None, False
    if mapping.records is not None:
        hits = _find(mapping.records.column, header)
        if len(hits) == 1:
            records = (hits[0], frozenset(v.strip().casefold() for v in mapping.records.values))
        else:
            records_unmatched = True
    return ColumnMatch(positions, tuple(missing), ambiguous, tuple(skip), tuple(unmatched), records, records_unmatched)
