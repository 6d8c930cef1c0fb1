"""Resolutions: a clerk's decision about one held row, kept in the ledger and applied on every later night.

A row held as a duplicate risk is held again every night until someone decides about it.  Each held row
gets a short id derived from its record key alone (``resolution_id``), so the same SIS row has the same id
every night and in every report.  A clerk answers with one of three choices:

- ``same``: this row is the open record it was confused with.  The row, and every later row of that SIS key,
  is sent under the open record's key, so its exit lands there.  Bound when resolved, to the one open record
  the row matched (a row matching two open records cannot be resolved ``same``: which one is not ours to
  guess).
- ``new``: a genuine second enrolment: sent as a new record.
- ``never``: left out, and counted as resolved, not held.

Pure: the ids, the choices and applying them to a row; ``store`` keeps them (``{feed}#held`` for the rows
held so far, ``{feed}#resolution`` for the decisions).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Container
from dataclasses import dataclass
from enum import StrEnum

from programs_bridge.ledger.model import decode_key

#: A note is kept in the ledger next to the decision: a sentence, not a document.
MAX_NOTE = 500
#: Characters of an id: 40 bits of the key's hash in lower-case base32 (letters and the digits 2-7).
ID_LENGTH = 8


class Choice(StrEnum):
    SAME = "same"
    NEW = "new"
    NEVER = "never"


def resolution_id(key_text: str) -> str:
    """The held row's id: the same for the same record key, night after night."""
    digest = hashlib.blake2b(key_text.encode(), digest_size=5, person=b"pb-resolve").digest()
    text = base64.b32encode(digest).decode().lower()[:ID_LENGTH]
    return text if not text.isdigit() else "r" + text[1:]  # never all digits: never mistaken for a student ID


def looks_like_id(text: str) -> bool:
    """Whether ``text`` has an id's shape (a shape check: an id is safe to print, unlike a student ID, so
    one made of digits alone is refused: 22334455 may well be a student's ID)."""
    return len(text) == ID_LENGTH and all(c in "abcdefghijklmnopqrstuvwxyz234567" for c in text) and not text.isdigit()


@dataclass(frozen=True, slots=True)
class Held:
    """A row the ledger held as a duplicate risk: its key and the open records it could be confused with."""

    id: str
    row_key: str
    matches: tuple[str, ...]
    line: int
    run_id: str


@dataclass(frozen=True, slots=True)
class Resolution:
    id: str
    choice: Choice
    #: The held row's record key (the SIS's): the resolution applies to every row with this key.
    row_key: str
    #: ``same`` only: the open record's key the row is sent under.
    target_key: str = ""
    note: str = ""
    by: str = ""
    at: str = ""


class ResolutionError(ValueError):
    """A ``same`` that cannot be recorded: the row matches several open records (``code`` ``ambiguous_same``),
    one the ledger no longer holds open (``same_target_gone``), or one whose Import Student ID lost its
    leading zeros (``same_target_damaged``)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def resolve(
    held: Held, choice: Choice, *, open_in_ledger: Container[str], note: str = "", by: str = "", at: str = ""
) -> Resolution:
    """The decision about ``held``; ``same`` binds it to the one open record the row matched, which must still
    be among ``open_in_ledger`` (the keys of ``held.matches`` the ledger holds open now): a seed undone since
    the row was held may have taken it out, and a row sent under a key nobody vouches for is the duplicate
    the hold was there to prevent; or an exit may have closed it, and the row's own end date would then
    overwrite the one Illuminate was sent."""
    target = ""
    if choice is Choice.SAME:
        if len(held.matches) != 1:
            raise ResolutionError(
                f"row {held.id} matches {len(held.matches)} open records, so 'same' cannot say which one: correct "
                "the records in Illuminate and the SIS, or resolve it as 'new' or 'never'",
                "ambiguous_same",
            )
        target = held.matches[0]
        if target not in open_in_ledger:
            raise ResolutionError(
                f"row {held.id}'s open record is no longer open in the ledger (exited since the row was held, or "
                "taken out by an undone seed): the next export plans the row again against what the ledger holds "
                "now; resolve it after that night if it is held again, or as 'new' or 'never'",
                "same_target_gone",
            )
        if lost_zeros(decode_key(held.row_key)[0], decode_key(target)[0]):
            raise ResolutionError(
                f"row {held.id}'s open record has the same Import Student ID without its leading zeros, the mark of "
                "a file saved in Excel: 'same' would send the damaged ID; correct the record in Illuminate (or seed "
                "again from a clean report), or resolve it as 'new' or 'never'",
                "same_target_damaged",
            )
    return Resolution(held.id, choice, held.row_key, target, note, by, at)


def lost_zeros(row_id: str, target_id: str) -> bool:
    """Whether ``target_id`` is the Import Student ID ``row_id`` with its leading zeros stripped (``4521`` for
    ``004521``): re-keying a row onto such a record would move towards the damage, never away from it."""
    return len(target_id) < len(row_id) and row_id.lstrip("0") == target_id


def resolution_lines(feed: str, ids: list[str]) -> list[str]:
    """The exact commands a clerk can run for each held row (the report's Markdown and the CLI print them)."""
    return [
        f"programs-bridge ledger resolve --table <LedgerTable> --feed {feed} {rid} --as same|new|never" for rid in ids
    ]


def bucket_route(feed: str) -> str:
    """The other way to decide, for many rows or without the command line: the resolutions CSV drop."""
    return (
        f"Or, for many rows, put the decisions in a CSV with the header id,decision,note under "
        f"resolutions/{feed}/ in the bucket."
    )
