"""Read a district's SIS export exactly as it was dropped, streamed, whatever produced it.

Districts send what their SIS or Excel wrote: UTF-8 with or without a BOM, Excel's "Unicode Text" (UTF-16,
tab-delimited), Windows-1252 from an older Excel "CSV", gzip or not, comma, tab, pipe, caret (CALPADS) or
semicolon, CR, LF or CRLF, quoted values holding delimiters and newlines, with a header row or (a positional
extract such as CALPADS SPRG) without one.  This module settles all of that once per file and then
hands the caller plain ``(line, fields)`` pairs, so no other module has to know about bytes.

How, and why this way:

* **Two passes over the bytes.**  Which encoding a BOM-less file is in can only be known from all of it (a
  cp1252 ``é`` may first appear on the last line), and it must be known before the first row is handed out.
  The first pass streams the (decompressed) bytes once in chunks, in C where it counts: it decodes them as
  UTF-8 with an incremental decoder, finds NUL bytes (which the ``csv`` module of Python 3.11+ would silently
  keep) and measures every physical line against :class:`ReadLimits`, so a decompression bomb or a
  gigabyte without a line break stops at the limit, having read no further.
* **The encoding is decided on evidence, never on the first bad byte.**  A file is read as Windows-1252
  only when most of its non-ASCII characters are not UTF-8 (see ``_decide``); a UTF-8 file with a few bad
  bytes stays UTF-8, and each row holding them is left out with a row error, so no name is ever delivered
  after going through the wrong codec.  The same holds the other way round: in a file read as Windows-1252,
  a row whose bytes read as UTF-8 is left out too.  Files declared as UTF-8 (a BOM, or the mapping's
  ``encoding``) follow the same rule, except that one which is mostly not UTF-8 is refused.
* **The second pass is stdlib C all the way down**: ``gzip`` -> ``io.TextIOWrapper(newline="")`` -> ``csv``,
  and where no record spans lines, a block of lines split in C (``_Text.blocks``) with csv reading only the lines
  that hold a quote.  Rows go out in batches (:meth:`ExportReader.batches`) with no Python step a row on a
  clean block, because a 1M-row conversion is held to 1.5x of a bare ``csv.reader`` -> ``csv.writer`` round
  trip.
  Only what the first pass found suspect costs more: rows on lines longer than ``max_field_bytes`` and rows
  spanning lines have their values measured; a file with bad bytes has each row tested for them; a file
  where a line break may sit inside quotes has its lines metered so one row cannot grow without end.
* **Line numbers are physical lines**, as a clerk sees them in an editor: ``csv.reader.line_num`` counts the
  lines the text layer split (CR, LF and CRLF all end a line), so a quoted value spanning lines moves every
  later row's number on correctly.  Every physical line is counted (:class:`ReadCounts`), blank and
  delimiter-only ones included.
* ``csv`` runs in strict mode: a stray quote or an unclosed one is reported with its line rather than
  silently swallowing the rest of the file into one value.

Nothing here logs or raises with field contents: messages carry line numbers, counts and limits only.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import gzip
import io
import re
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from itertools import chain, compress, count, islice, repeat
from operator import contains, itemgetter
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, AnyStr, Final, Generic, Literal, NamedTuple, Self

from programs_bridge.convert.findings import Finding, error, info, warning

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

__all__ = [
    "DELIMITERS",
    "DELIMITER_NAMES",
    "ENCODINGS",
    "ExportError",
    "ExportInfo",
    "ExportReader",
    "LimitError",
    "ReadCounts",
    "ReadLimits",
]

#: The delimiters a district's export may use.  When the header ties between several, the one least likely
#: to appear inside a column name wins, so this is also the tie-break order (commas and semicolons turn up in
#: labels such as "Name, Last"; tabs, pipes and carets practically never do).  The caret is CALPADS's: every
#: state extract (SPRG, SENR, ...) is caret-delimited.
DELIMITERS: Final = ("\t", "|", "^", ";", ",")

#: The delimiters by the names a user gives them (``--delimiter caret``) and messages use.
DELIMITER_NAMES: Final = {",": "comma", "\t": "tab", "|": "pipe", "^": "caret", ";": "semicolon"}

#: Encodings as reported to users, and the only ones accepted from a mapping's ``encoding`` setting.
ENCODINGS: Final = ("utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "cp1252")

_KIB: Final = 1 << 10
_MIB: Final = 1 << 20
_GIB: Final = 1 << 30
_TIB: Final = 1 << 40


@dataclass(frozen=True)
class ReadLimits:
    """How much one export may hold before it is refused as not an export (each failure names its limit).

    The defaults are far beyond any real SIS export and still keep memory and time bounded:

    * ``max_bytes`` (2 GiB): the text of the whole file, after gzip.  The largest export the stack is sized
      for (2M rows, docs/deploy.md) is about 200 MB, so this leaves 10x; it is what stops a decompression
      bomb, and it bounds the time any file can take.
    * ``max_line_bytes`` (1 MiB): one row: a physical line, or all the lines of a row whose quoted values
      hold line breaks.  A programs row is a few hundred bytes, about 12 KB even with every value at
      Illuminate's limits (200 characters for a name, 800 bytes in UTF-8); one line in memory stays small.
    * ``max_field_bytes`` (64 KiB): one value, in the file's own encoding: 80 times the longest value
      Illuminate takes.  Half of the ``csv`` module's own limit (which is raised, process-wide, when a
      larger value is set here, and never lowered).
    * ``max_columns`` (500): the header's columns.  Program exports have tens of columns; programs.txt
      needs 15.  (Data rows with more fields than the header are row errors already: ``field_count``.)

    ``max_line_bytes`` and ``max_field_bytes`` must be at least 1 KiB, and no limit may pass 1 TiB (a
    million columns): beyond, a setting is a typo, and the ``csv`` module cannot take it.
    """

    max_bytes: int = 2 * _GIB
    max_line_bytes: int = 1 * _MIB
    max_field_bytes: int = 64 * _KIB
    max_columns: int = 500

    def __post_init__(self) -> None:
        least = {"max_line_bytes": _KIB, "max_field_bytes": _KIB}
        for setting in dataclasses.fields(self):
            value = getattr(self, setting.name)
            floor = least.get(setting.name, 1)
            ceiling = 1_000_000 if setting.name == "max_columns" else _TIB
            if isinstance(value, bool) or not isinstance(value, int) or not floor <= value <= ceiling:
                raise ValueError(f"{setting.name} must be a whole number from {floor:,} to {ceiling:,}")


DEFAULT_LIMITS: Final = ReadLimits()

_CHUNK: Final = 1 << 18  # bytes per read in the scanning pass: large enough that the loop costs nothing
_GZIP_MAGIC: Final = b"\x1f\x8b"
_LINE_ENDINGS: Final = (("\r\n", "CRLF"), ("\n", "LF"), ("\r", "CR"))
_LABELS: Final = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8",
    "utf-16-le": "UTF-16",
    "utf-16-be": "UTF-16",
    "cp1252": "Windows-1252",
}
_UTF16: Final = ("utf-16-le", "utf-16-be")

#: Files that are certainly not a text export, by their first bytes: what a clerk most often drops by mistake.
_NOT_TEXT: Final = (
    (b"PK\x03\x04", "this looks like an Excel workbook (.xlsx) or another ZIP file, not a text export"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "this looks like an old Excel workbook (.xls), not a text export"),
    (b"%PDF-", "this is a PDF document, not a text export"),
)
_ONLY_BLANK: Final = "the file has no header line: it holds only blank lines"
_SAVE_AS: Final = ": open it in Excel and save it as 'CSV UTF-8', then send that file"

_BOMS: Final = (
    (codecs.BOM_UTF32_LE, None),  # checked before UTF-16 LE, whose BOM is its prefix
    (codecs.BOM_UTF32_BE, None),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Windows-1252 leaves five bytes undefined; Python's codec refuses them.  Decode them the way every browser
# does (WHATWG "windows-1252"): each to the C1 control character with the same number, so nothing is lost
# or crashes, and say so in a finding.  Encoding goes the same way back (to test a row for UTF-8 inside).
_CP1252_ERRORS: Final = "programs_bridge.cp1252_c1"
_CP1252_UNDEFINED: Final = b"\x81\x8d\x8f\x90\x9d"


def _cp1252_c1(exc: UnicodeError) -> tuple[str | bytes, int]:
    if isinstance(exc, UnicodeDecodeError):
        return exc.object[exc.start : exc.end].decode("latin-1"), exc.end
    if isinstance(exc, UnicodeEncodeError):
        return exc.object[exc.start : exc.end].encode("latin-1", "replace"), exc.end
    raise exc


codecs.register_error(_CP1252_ERRORS, _cp1252_c1)

_QUOTED: Final = re.compile(r'"[^"]*"')
_UTF8_LEADS: Final = bytes(range(0xC2, 0xF5))  # in valid UTF-8, exactly one per non-ASCII character
_LONG_LINES_KEPT: Final = 10_000  # beyond this many long lines, every row's values are measured instead
_NEVER: Final = 1 << 62


class ExportError(Exception):
    """The whole file cannot be read.  The message is one sentence a data clerk can act on, with no
    student data in it (at most a line number)."""

    #: Which refusal, for the report's ``reason_code`` (set by :class:`LimitError`; None for the others).
    code: str | None = None


class LimitError(ExportError):
    """The file goes past one of its :class:`ReadLimits`: ``code`` says which way (``file_too_large``,
    ``line_too_long``, ``value_too_large``, ``too_many_columns``), ``limit`` names the setting and ``line``
    the physical line where reading stopped."""

    def __init__(self, code: str, limit: str, line: int, message: str) -> None:
        super().__init__(message)
        self.code, self.limit, self.line = code, limit, line


@dataclass(frozen=True)
class ExportInfo:
    """How the file was read, for the run report."""

    encoding: str  # one of ENCODINGS
    delimiter: str  # one of DELIMITERS
    compressed: bool  # the input was gzip
    line_ending: str  # "LF", "CRLF" or "CR": what the header line used


@dataclass
class ReadCounts:
    """Every physical line of the file, accounted for; final once :meth:`ExportReader.rows` is exhausted.

    ``lines == header + rows + blank + damaged + continued``: the header (one line, none in a headerless
    file), the rows handed out, the blank or delimiter-only rows skipped (before the header too), the rows
    left out for their encoding (each with a row error), and the lines that continue a quoted value started
    on an earlier line."""

    lines: int = 0
    rows: int = 0
    blank: int = 0
    damaged: int = 0
    header: int = 1

    @property
    def continued(self) -> int:
        return max(0, self.lines - self.header - self.rows - self.blank - self.damaged)


class ExportReader:
    """A SIS export opened for reading: ``info``, ``header`` and ``findings`` are settled on opening (raising
    :class:`ExportError` for a file that cannot be read at all, :class:`LimitError` for one past its
    ``limits``); :meth:`rows` then streams the data rows once, and ``counts`` accounts for every line.

    ``delimiter`` and ``encoding`` override the sniffing, for the rare file that fools it.  A row left out
    while streaming (bytes of the wrong encoding) is reported to ``on_finding`` as a row error (pass a
    finding log's ``add``); without it, the finding is appended to ``findings``.

    With ``header=False`` (a positional extract, such as CALPADS SPRG) the first line is the first data row:
    ``header`` is empty, the delimiter is sniffed from that row, and line 1 is the first row's line.
    """

    info: ExportInfo
    header: list[str]
    findings: list[Finding]
    counts: ReadCounts

    def __init__(
        self,
        path: Path,
        *,
        delimiter: str | None = None,
        encoding: str | None = None,
        limits: ReadLimits = DEFAULT_LIMITS,
        on_finding: Callable[[Finding], object] | None = None,
        header: bool = True,
        quoting: bool = True,
        batch_rows: int = 512,
    ) -> None:
        if delimiter is not None and delimiter not in DELIMITERS:
            raise ValueError(f"unsupported delimiter {delimiter!r}: use one of {DELIMITERS!r}")
        compressed = _is_gzip(path)
        size = _chunk_size(limits)

        def open_chunks() -> Generator[bytes, None, None]:
            return _chunks(path, compressed, size, limits.max_bytes)

        plan = _settle_encoding(open_chunks, _requested_encoding(encoding), limits, compressed)
        if not quoting:  # a quote is an ordinary character: no row can span lines
            plan = dataclasses.replace(plan, quoted_breaks=False)
        self._quoting = quoting
        self._batch_rows = batch_rows
        self.findings = plan.findings
        self.counts = ReadCounts(header=int(header))
        self._report = on_finding if on_finding is not None else self.findings.append
        _make_room_in_csv(limits.max_field_bytes)
        binary = gzip.open(path, "rb") if compressed else path.open("rb")  # noqa: SIM115  # closed by close()
        errors = _CP1252_ERRORS if plan.encoding == "cp1252" else "surrogateescape" if plan.suspect else "strict"
        self._text = io.TextIOWrapper(binary, encoding=plan.encoding, errors=errors, newline="")
        try:
            self._start(plan, compressed, delimiter, limits)
        except BaseException:
            self._text.close()
            raise

    def _start(self, plan: _Plan, compressed: bool, delimiter: str | None, limits: ReadLimits) -> None:
        """Read up to the first data row: sniff the delimiter, parse the header, make sure data follows."""
        has_header = bool(self.counts.header)
        blank, head = _header_lines(self._text, self._quoting)
        if not head:
            raise ExportError(_ONLY_BLANK if has_header else "the file holds only blank lines")
        chosen = delimiter or _sniff_delimiter("".join(head))
        if chosen is None:
            between, line = ("column names", "the header line") if has_header else ("values", "the first line")
            raise ExportError(
                f"{line} has no comma, tab, semicolon, pipe or caret between {between}, "
                "so this does not look like a delimited export"
            )
        # Blank lines before the header go in as empty lines: they count for line numbers, and cannot turn into
        # a header (",,,," is one non-empty field in a semicolon file).
        ended = [0]
        body: Iterable[str] = self._text
        if plan.quoted_breaks:
            body = _metered(self._text, ended, blank + len(head) + 1, limits.max_line_bytes, plan.scale)
        text = _Text(chain(repeat("\n", blank), head, body), chosen, self._quoting)
        checks = _Checks(plan, limits)
        one_line_each = not plan.quoted_breaks
        records = _records(text, checks, self.counts, self._report, ended, self._batch_rows, one_line_each)
        self.info = ExportInfo(plan.encoding, chosen, compressed, _line_ending(head[-1]))
        if not has_header:
            self._headerless(records, plan)
            return
        found, first = next(records, None), next(records, None)
        if found is None:
            raise ExportError(_ONLY_BLANK)
        if first is None and self.counts.damaged:
            raise _none_readable(self.counts.damaged, plan)
        if first is None:
            raise ExportError("the file has a header but no data rows")
        self.header = [name.lstrip("\ufeff").strip() for name in found.records[0]]
        self._batches: Iterator[Batch] | None = chain((first,), records)

    def _headerless(self, records: Iterator[Batch], plan: _Plan) -> None:
        """No header to parse: the first record is a row (``_records`` knows from ``counts.header``)."""
        first = next(records, None)
        if first is None:
            if self.counts.damaged:
                raise _none_readable(self.counts.damaged, plan)
            raise ExportError("the file holds only blank lines")
        self.header = []
        self._batches = chain((first,), records)

    def batches(self) -> Iterator[Batch]:
        """The data rows in batches of at most ``batch_rows``, none empty; each row's line is the physical
        line number (1-based, header = line 1) where the row STARTS (a quoted field may span lines).  Blank
        lines and rows whose fields are all empty (Excel leftovers like ',,,,') are skipped and counted in
        ``counts.blank``; rows with bytes of the wrong encoding are left out, reported (see ``on_finding``)
        and counted in ``counts.damaged``.  Ragged rows are handed out as they are (the caller reports a
        field-count mismatch).  The rows stream from the file, so this (or :meth:`rows`) can be called only
        once; damage found part-way (a stray or unclosed quote, a value past ``max_field_bytes``) raises
        :class:`ExportError` naming the line, after the batch of the rows read before it.

        In batches because a clean batch then goes from the file to the caller in C, with no Python step a row."""
        batches, self._batches = self._batches, None
        if batches is None:
            raise RuntimeError("the rows stream from the file and can be read only once per reader")
        return batches

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line, fields) for every data row, as :meth:`batches` hands them out, one at a time."""
        return chain.from_iterable(zip(lines, records, strict=True) for lines, records in self.batches())

    def close(self) -> None:
        self._text.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


# --- the second pass: text and rows -------------------------------------------------------------------


def _none_readable(damaged: int, plan: _Plan) -> ExportError:
    return ExportError(
        f"none of the file's {damaged} data row(s) can be read: each has bytes that do not fit "
        f"the file's encoding ({_LABELS[plan.encoding]}){_SAVE_AS}"
    )


@dataclass(frozen=True)
class _Plan:
    """What the first pass settled: the encoding, what to tell the clerk about it, and what to watch for."""

    encoding: str
    findings: list[Finding]
    suspect: Literal["invalid_bytes", "mixed", None] = None
    """``invalid_bytes``: UTF-8 with bad bytes on some rows; ``mixed``: Windows-1252 with UTF-8 on some."""
    long_lines: Sequence[int] = ()
    """Physical lines longer than ``max_field_bytes``, ascending: the rows on them have their values measured."""
    measure_all: bool = False
    """Too many long lines to list: measure every row's values."""
    quoted_breaks: bool = False
    """A line break may sit inside a quoted value, so a row may span lines: meter the rows' lines."""

    @property
    def scale(self) -> int:
        """Bytes per character, as the limits count them (UTF-16: two; the ASCII-based encodings: at least one)."""
        return 2 if self.encoding in _UTF16 else 1


class _Checks:
    """What the second pass tests beyond csv itself, as the plan asks; each raises or returns at once."""

    def __init__(self, plan: _Plan, limits: ReadLimits) -> None:
        self.long_lines, self.measure_all = plan.long_lines, plan.measure_all
        self.max_field, self.max_columns = limits.max_field_bytes, limits.max_columns
        self.suspect: Callable[[list[str]], bool] | None = None
        self.code, self.message = "", ""
        if plan.suspect == "invalid_bytes":
            self.suspect, self.code, self.message = _has_invalid_utf8, "encoding_invalid_bytes", _INVALID_ROW
        elif plan.suspect == "mixed":
            self.suspect, self.code, self.message = _reads_as_utf8, "encoding_mixed", _MIXED_ROW
        self.invalid_header = plan.suspect == "invalid_bytes"
        self.size: Callable[[str], int] = len  # Windows-1252: a byte per character
        if plan.encoding in _UTF16:
            self.size = _utf16_size
        elif plan.encoding != "cp1252":
            self.size = _utf8_size

    def header(self, fields: list[str], line: int) -> None:
        if len(fields) > self.max_columns:
            raise LimitError(
                "too_many_columns",
                "max_columns",
                line,
                f"the header on line {line} has {len(fields)} columns, more than the {self.max_columns} an export "
                "may have (limit max_columns): is this the right file?",
            )
        self.values(fields, line, line)
        if self.invalid_header and _has_invalid_utf8(fields):
            raise ExportError(
                f"the header on line {line} has bytes that are not valid UTF-8, so its column names cannot be "
                "read" + _SAVE_AS
            )

    def values(self, fields: list[str], start: int, end: int) -> None:
        """Refuse a value longer than ``max_field_bytes`` in the row on lines ``start``..``end``."""
        if fields and max(map(self.size, fields)) > self.max_field:
            what = f"the row starting on line {start} has a value longer than {_size(self.max_field)}"
            if end == start:
                raise LimitError("value_too_large", "max_field_bytes", start, what + _NO_EXPORT_VALUE)
            raise LimitError(
                "value_too_large",
                "max_field_bytes",
                start,
                f"{what} that runs over {end - start + 1} lines (limit max_field_bytes): a quote in it is probably "
                "never closed; fix that row in the SIS or the file and export again",
            )

    def finding(self, line: int) -> Finding:
        return error(line, None, self.code, self.message)


_NO_EXPORT_VALUE: Final = ", more than any export holds (limit max_field_bytes): is this the right file?"
_INVALID_ROW: Final = (
    "this row has bytes that are not valid UTF-8, unlike the rest of the file, so it was left out rather than "
    "send a garbled name: correct the row's accented characters in the SIS and export again"
)
_MIXED_ROW: Final = (
    "this row has bytes that read as UTF-8, although most of the file is Windows-1252, so its names cannot be "
    "trusted either way and it was left out: export the whole file again as 'CSV UTF-8'"
)


def _has_invalid_utf8(fields: list[str]) -> bool:
    """Whether the row (decoded with ``surrogateescape``) holds an escaped byte: valid UTF-8 never decodes to
    a lone surrogate, and only a lone surrogate makes strict encoding fail (in C, 3x a regex search)."""
    text = "".join(fields)
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _reads_as_utf8(fields: list[str]) -> bool:
    """Whether the row's bytes (it was decoded as Windows-1252) hold a valid multi-byte UTF-8 sequence: each
    one decodes to one character, while every other byte stays one (ASCII, or escaped), so the text shrinks."""
    text = "".join(fields)
    if text.isascii():
        return False
    raw = text.encode("cp1252", _CP1252_ERRORS)
    return len(raw.decode("utf-8", "surrogateescape")) < len(raw)


def _utf8_size(value: str) -> int:
    return len(value.encode("utf-8", "surrogateescape"))


def _utf16_size(value: str) -> int:
    return 2 * len(value)


class Batch(NamedTuple):
    """Data rows in file order: each row's fields and the physical line it starts on."""

    lines: Sequence[int]
    records: list[list[str]]


_FIRST: Final = itemgetter(0)


@dataclass(frozen=True, slots=True)
class _Text:
    """The file's lines, and how csv reads them."""

    lines: Iterator[str]
    delimiter: str
    quoting: bool
    """False: a quote is an ordinary character."""

    def reader(self, lines: Iterable[str]) -> CsvReader:
        if self.quoting:
            return csv.reader(lines, delimiter=self.delimiter, quotechar='"', strict=True)
        return csv.reader(lines, delimiter=self.delimiter, quoting=csv.QUOTE_NONE, strict=True)

    def blocks(self, size: int) -> Iterator[tuple[list[list[str]], int, csv.Error | None]]:
        """The rest of the file for files where no record spans lines, ``size`` lines at a time: each block's
        records, the lines they took (more than the block's when a record spans lines after all), and the
        csv damage that ends the file there (the records before it come first, in that block).

        csv reads no line ahead, so these are the lines after the ones it has read (the header)."""
        while True:
            block = list(islice(self.lines, size))
            records = self._split(block)
            if records is None:  # a line that is not a whole record on its own, or damage: csv reads on
                records, rest = [], self.reader(chain(block, self.lines))
                try:
                    records.extend(islice(rest, len(block)))  # keeps the rows csv gave before any damage
                except csv.Error as exc:
                    yield records, rest.line_num, exc
                    return
                yield records, rest.line_num, None
            else:
                yield records, len(block), None
            if len(block) < size:
                return

    def _split(self, block: list[str]) -> list[list[str]] | None:
        """The records of ``block``, lines that each hold one, or None when a line does not (csv must read them).

        A line without a quote is split at the delimiter in C, which is what csv makes of it: csv is line-
        synchronous, so a record starts where a line starts, and a line holding no quote holds no quoted
        delimiter or line break (its line end, one of CR, LF or CRLF, is all ``rstrip`` takes).  A line with
        a quote is read by csv on its own: if it is a whole, sound record it is the record csv reads in the
        file, and if it is not (an inch mark left a quote open, or damage) csv reads the block in the file's
        order instead.  Measured on the bench's 1M-row export (one line in thirty has a quoted name): the
        reader 1.12 s against 1.35-1.41 s with csv reading every line.  A blank line gives ``[""]`` where csv
        gives ``[]``; both are blank rows."""
        records = list(map(str.split, map(str.rstrip, block, repeat("\r\n")), repeat(self.delimiter)))
        if self.quoting:
            for at in compress(count(), map(contains, block, repeat('"'))):
                try:
                    [records[at]] = self.reader((block[at],))
                except (csv.Error, ValueError):  # not one whole record (ValueError: a line csv reads as none)
                    return None
        return records


def _records(
    text: _Text,
    checks: _Checks,
    counts: ReadCounts,
    report: Callable[[Finding], object],
    ended: list[int],
    size: int,
    one_line_each: bool,
) -> Iterator[Batch]:
    """The header alone (unless ``counts.header`` says there is none), then the non-blank data rows in
    batches of at most ``size``; csv damage becomes :class:`ExportError`, raised after the batch of the rows
    read before it.  ``ended[0]`` is kept at the last line of the last record, for ``_metered``.

    ``one_line_each``: no record spans lines (no line break sits inside quotes), so a batch is a block of
    lines split in C (``_Text.blocks``), its line numbers counted rather than asked of csv a row at a time, and a
    batch with nothing to look at (no blank row, no long line, no encoding to test) goes to the caller
    without a Python step per row."""
    reader, delimiter = text.reader(text.lines), text.delimiter
    last = rows = blank = damaged = 0
    watching = iter(checks.long_lines)
    watch = 0 if checks.measure_all else next(watching, _NEVER)
    suspect = checks.suspect
    plain = one_line_each and suspect is None and not checks.measure_all

    def keep(fields: list[str], start: int, line: int) -> bool:
        """Whether a row (on lines ``start``..``line``) is handed out; counts it either way."""
        nonlocal blank, damaged, watch, rows
        if not (fields and (fields[0].strip() or "".join(fields).strip())):
            blank += 1
            return False
        if line > start or line >= watch:  # spans lines, or covers a line longer than a value may be
            checks.values(fields, start, line)
            while watch <= line and not checks.measure_all:
                watch = next(watching, _NEVER)
        if suspect is not None and suspect(fields):
            damaged += 1
            report(checks.finding(start))
            return False
        rows += 1
        return True

    failure: ExportError | None = None
    try:
        try:
            for fields in reader if counts.header else ():
                line = reader.line_num
                if fields and (fields[0].strip() or "".join(fields).strip()):
                    checks.header(fields, last + 1)
                    start, ended[0], last = last + 1, line, line
                    yield Batch([start], [fields])
                    break
                blank += 1
                ended[0] = last = line
        except csv.Error as exc:
            raise _csv_damage(str(exc), last + 1, reader.line_num, delimiter, checks) from exc
        if one_line_each:
            for records, read, damage in text.blocks(size):
                first = last + 1
                if damage is None and read == len(records):
                    last += len(records)
                    ended[0] = last
                    if plain and watch > last and all(records) and all(map(str.strip, map(_FIRST, records))):
                        rows += len(records)
                        if records:
                            yield Batch(range(first, last + 1), records)
                    else:
                        kept = [keep(fields, line, line) for line, fields in enumerate(records, first)]
                        if any(kept):
                            yield Batch(list(compress(range(first, last + 1), kept)), list(compress(records, kept)))
                else:  # a row spans lines after all (an inch mark fooled the quote count), or damage: count them
                    spans = _spans(records, first)
                    last = ended[0] = spans[-1][1] if spans else last
                    kept = [keep(fields, start, end) for fields, (start, end) in zip(records, spans, strict=True)]
                    if any(kept):
                        yield Batch([start for start, _ in compress(spans, kept)], list(compress(records, kept)))
                if damage is not None:
                    failure = _csv_damage(str(damage), last + 1, first - 1 + read, delimiter, checks)
        else:
            lines: list[int] = []
            records = []
            try:
                for fields in reader:
                    line = reader.line_num
                    if keep(fields, last + 1, line):
                        lines.append(last + 1)
                        records.append(fields)
                        if len(records) == size:
                            yield Batch(lines, records)
                            lines, records = [], []
                    ended[0] = last = line
            except csv.Error as exc:
                failure = _csv_damage(str(exc), last + 1, reader.line_num, delimiter, checks)
            if records:
                yield Batch(lines, records)
        if failure is not None:
            raise failure
    finally:
        counts.lines, counts.rows, counts.blank, counts.damaged = last, rows, blank, damaged


def _spans(records: Sequence[list[str]], first: int) -> list[tuple[int, int]]:
    """The first and last physical line of each record, the first starting on line ``first``: a record
    ends a line after the last line break kept inside its values (csv keeps them as they were, and the text
    layer ends a line at CR, LF or CRLF)."""
    spans, line = [], first
    for fields in records:
        end = line + sum(value.count("\n") + value.count("\r") - value.count("\r\n") for value in fields)
        spans.append((line, end))
        line = end + 1
    return spans


def _metered(lines: Iterable[str], ended: list[int], first: int, limit: int, scale: int) -> Iterator[str]:
    """``lines`` (the first numbered ``first``) as csv pulls them, refusing a row that spans lines and grows
    past ``limit`` bytes: a quote left open would otherwise pull the rest of the file into one row."""
    number, size = first - 1, 0
    for text in lines:
        number += 1
        if ended[0] == number - 1:  # the record before ended on the line before: this one starts a row
            size = 0
        size += len(text) * scale
        if size > limit:
            start = ended[0] + 1
            raise LimitError(
                "line_too_long",
                "max_line_bytes",
                start,
                f"the row starting on line {start} runs over {number - start + 1} lines and more than "
                f"{_size(limit)}, more than any row holds (limit max_line_bytes): a quote in it is probably never "
                "closed; fix that row in the SIS or the file and export again",
            )
        yield text


def _csv_damage(detail: str, start: int, at: int, delimiter: str, checks: _Checks) -> ExportError:
    """Translate the csv module's complaint into a sentence that points at the row and says what to fix."""
    if "field larger than field limit" in detail and at <= start:
        what = f"the row starting on line {start} has a value longer than {_size(checks.max_field)}"
        return LimitError("value_too_large", "max_field_bytes", start, what + _NO_EXPORT_VALUE)
    if "field larger than field limit" in detail or "unexpected end of data" in detail:
        return ExportError(
            f"a quote opened in the row starting on line {start} is never closed, so the rest of the file "
            "would run into one value: fix that row in the SIS or the file and export again"
        )
    if "expected after" in detail:
        return ExportError(
            f"the row starting on line {start} has a quote in the middle of a value: a quoted value must end "
            f"right before the next {DELIMITER_NAMES[delimiter]}, and a quote inside it must be doubled"
        )
    return ExportError(f"the row starting on line {start} cannot be read ({detail})")


def _make_room_in_csv(max_field: int) -> None:
    """csv's own per-value limit (characters, process-wide) must not be below ours, so that whenever csv
    refuses a value ours was passed too; it is only ever raised."""
    if csv.field_size_limit() < max_field:
        csv.field_size_limit(max_field)


def _header_lines(text: Iterable[str], quoting: bool = True) -> tuple[int, list[str]]:
    """The physical lines up to the end of the header record: how many blank lines precede it, and the
    header's own lines (more than one when a quoted label spans lines; bounded, so a runaway quote cannot
    pull the file into memory; always one without ``quoting``).  The header is empty when the file holds
    nothing but blank lines."""
    head: list[str] = []
    blank = quotes = size = 0
    for line in text:
        if not blank and not head:  # the first line: a UTF-16 BOM survives decoding and would glue onto a quote
            line = line.lstrip("\ufeff")
        if not head and _is_blank(line):
            blank += 1
            continue
        head.append(line)
        quotes += line.count('"')
        size += len(line)
        if not quoting or quotes % 2 == 0 or size > csv.field_size_limit():
            break
    return blank, head


def _is_blank(line: str) -> bool:
    """A line with nothing but whitespace, quotes and delimiters (Excel's ``,,,,`` leftovers, ``^^^^``)."""
    return not "".join(line.split()).strip('",;|^')


def _sniff_delimiter(header: str) -> str | None:
    """The delimiter that separates the most column names, counted outside quoted labels; ties go to the one
    rarer in labels (the order of DELIMITERS).  None when the header has no candidate at all: a one-column
    header is far less likely than an export in some other format."""
    bare = _QUOTED.sub("", header)
    counts = {candidate: bare.count(candidate) for candidate in DELIMITERS}
    best = max(DELIMITERS, key=lambda candidate: counts[candidate])  # max keeps the first of equals
    return best if counts[best] else None


def _line_ending(line: str) -> str:
    for ending, name in _LINE_ENDINGS:
        if line.endswith(ending):
            return name
    return "LF"  # a header line with no ending at all: the file ends there


# --- the first pass: bytes, limits and encodings -------------------------------------------------------


def _is_gzip(path: Path) -> bool:
    """By magic number, not by name: a ``.csv`` may be gzip and a ``.gz`` may be plain."""
    with path.open("rb") as raw:
        return raw.read(len(_GZIP_MAGIC)) == _GZIP_MAGIC


class _TooLarge(Exception):
    """The stream holds more than ``max_bytes``: raised by ``_chunks`` instead of reading on."""


def _chunk_size(limits: ReadLimits) -> int:
    """Chunks no longer than a line or a value may be, so a line inside one chunk needs no measuring (the
    UTF-16 decoder may carry up to three bytes from one chunk into the next: four bytes to spare)."""
    return min(_CHUNK, limits.max_line_bytes, limits.max_field_bytes) - 4


def _chunks(path: Path, compressed: bool, size: int, limit: int) -> Generator[bytes, None, None]:
    """The (decompressed) bytes of the file in chunks, at most ``limit`` of them: asked for more, this raises
    _TooLarge without decompressing further.  A damaged gzip stream becomes ExportError."""
    total = 0
    try:
        with gzip.open(path, "rb") if compressed else path.open("rb") as binary:
            while chunk := binary.read(size):
                total += len(chunk)
                if total > limit:
                    if len(chunk) > total - limit:
                        yield chunk[: len(chunk) - (total - limit)]
                    raise _TooLarge
                yield chunk
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ExportError("the compressed (.gz) file is damaged or incomplete: compress and send it again") from exc


def _prefix(chunks: Generator[bytes, None, None], end: int) -> Generator[bytes, None, None]:
    """The first ``end`` bytes of ``chunks``, without asking for a chunk more (which could be past max_bytes)."""
    seen = 0
    with closing(chunks):
        while seen < end:
            chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk[: end - seen]
            seen += len(chunk)


def _requested_encoding(name: str | None) -> str | None:
    """A mapping's encoding setting in canonical form ("UTF8", "windows-1252" and "utf-16" are fine)."""
    if name is None:
        return None
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        canonical = name
    if canonical not in (*ENCODINGS, "utf-16"):
        raise ValueError(f"unsupported encoding {name!r}: use one of {', '.join(ENCODINGS)}")
    return canonical


class _Stop(Exception):
    """Where the first pass stopped, at an ``offset`` in its units (bytes, or UTF-16 characters)."""

    def __init__(self, kind: Literal["nul", "undecodable", "long_line"], offset: int) -> None:
        super().__init__(kind)
        self.kind, self.offset = kind, offset


class _Meter(Generic[AnyStr]):
    """The physical lines of a stream fed part by part (bytes, or decoded UTF-16 text counted at ``scale``
    bytes a character): stops at a line longer than ``max_line_bytes`` and keeps the start of each line
    longer than ``max_field_bytes``.  Every part is at most as long as either limit, so only the line that
    runs into a part from the ones before can be long: two rfinds and two finds a part, in C."""

    def __init__(self, limits: ReadLimits, lf: AnyStr, cr: AnyStr, scale: int = 1) -> None:
        self.max_line, self.max_field = limits.max_line_bytes, limits.max_field_bytes
        self.lf: AnyStr = lf
        self.cr: AnyStr = cr
        self.scale = scale
        self.offset = self.start = 0  # units fed; where the open line starts
        self.long: list[int] = []
        self.too_many_long = False

    def feed(self, part: AnyStr) -> None:
        end = self.offset + len(part)
        last = max(part.rfind(self.lf), part.rfind(self.cr))
        if last < 0:
            if (end - self.start) * self.scale > self.max_line:
                raise _Stop("long_line", self.start)
        else:
            breaks = [i for i in (part.find(self.lf), part.find(self.cr)) if i >= 0]
            length = (self.offset + min(breaks) - self.start) * self.scale
            if length > self.max_line:
                raise _Stop("long_line", self.start)
            if length > self.max_field:
                self._keep_long()
            self.start = self.offset + last + 1
        self.offset = end

    def finish(self) -> None:
        """The end of the stream: the last line, when no line break ends it, is measured too."""
        if (self.offset - self.start) * self.scale > self.max_field:
            self._keep_long()

    def _keep_long(self) -> None:
        if len(self.long) < _LONG_LINES_KEPT:
            self.long.append(self.start)
        else:
            self.too_many_long = True


class _QuoteParity:
    """Whether a line break of a byte stream may sit inside quotes, toggling at every quote as csv does (a
    lone inch mark in an unquoted value toggles too, which only costs metering).  Per part: one C search when
    it has no quote, else a split at the quotes and a search of the pieces between an opening and a closing
    quote."""

    def __init__(self) -> None:
        self.quoted_break = False
        self._open = False  # the last part ended inside quotes

    def feed(self, part: bytes) -> None:
        if self.quoted_break:
            return
        if b'"' not in part:
            self.quoted_break = self._open and (b"\n" in part or b"\r" in part)
            return
        pieces = part.split(b'"')
        inside = b"".join(pieces[0 if self._open else 1 :: 2])
        self.quoted_break = b"\n" in inside or b"\r" in inside
        self._open ^= len(pieces) % 2 == 0  # an odd number of quotes


@dataclass
class _Evidence:
    """What the UTF-8 decoding of the first pass saw.  ``valid`` counts characters from valid multi-byte
    sequences, but only from ``counted_from`` on (the start of the first chunk with a bad byte): before any
    bad byte nothing needs deciding, and counting costs; ``_decide`` completes it when the rule needs it."""

    invalid: int = 0  # bytes in no valid UTF-8 sequence
    valid: int = 0
    first_invalid: int | None = None  # byte offset
    counted_from: int = 0
    undefined: int = 0  # Windows-1252's undefined bytes, when counted
    first_undefined: int | None = None


def _settle_encoding(
    open_chunks: Callable[[], Generator[bytes, None, None]], requested: str | None, limits: ReadLimits, compressed: bool
) -> _Plan:
    """Pick the encoding (the request, a BOM, UTF-16 by its NUL pattern, else the evidence of the whole file)
    and prove the whole file fits it and the limits; say in findings what the clerk should know."""
    chunks = open_chunks()
    head = next(chunks, b"")  # never past max_bytes: _chunks hands out what fits before it refuses
    if not head:
        raise ExportError("the file is empty")
    for magic, what in _NOT_TEXT:
        if head.startswith(magic):
            raise ExportError(what + _SAVE_AS)
    encoding, findings = _first_guess(head, requested)
    stream = chain((head,), chunks)
    try:
        if encoding in _UTF16:
            return _settle_utf16(stream, open_chunks, encoding, findings, limits)
        return _settle_bytes(stream, open_chunks, encoding, requested, findings, limits)
    except _TooLarge:
        raise _too_large(open_chunks, encoding, limits, compressed) from None


def _too_large(
    open_chunks: Callable[[], Generator[bytes, None, None]], encoding: str, limits: ReadLimits, compressed: bool
) -> LimitError:
    line = _line_at(open_chunks, encoding, limits.max_bytes)
    after = " once decompressed" if compressed else ""
    return LimitError(
        "file_too_large",
        "max_bytes",
        line,
        f"the file holds more than {_size(limits.max_bytes)} of text{after}, more than any export should "
        f"(limit max_bytes); reading stopped on line {line}: is this the right file?",
    )


def _settle_bytes(
    stream: Iterable[bytes],
    open_chunks: Callable[[], Generator[bytes, None, None]],
    encoding: str,
    requested: str | None,
    findings: list[Finding],
    limits: ReadLimits,
) -> _Plan:
    """UTF-8 (with or without BOM) and Windows-1252: the byte-level first pass, then the decision."""
    meter = _Meter(limits, b"\n", b"\r")
    parity = _QuoteParity()
    evidence = _Evidence()
    try:
        _scan_bytes(stream, meter, parity, evidence, utf8=encoding != "cp1252")
    except _Stop as stop:
        raise _stopped(stop, open_chunks, encoding, limits) from None
    meter.finish()
    long_lines = _long_lines(meter, open_chunks, encoding)
    plan = _Plan(encoding, findings, None, long_lines, meter.too_many_long, parity.quoted_break)
    if encoding == "cp1252":
        if _is_accented_utf8(open_chunks()):
            raise ExportError(
                "the file is declared as Windows-1252 but it is UTF-8 with accented letters: read as "
                "Windows-1252 every accented name would be garbled (José as JosÃ©); leave the encoding out or "
                "set it to utf-8"
            )
        return _with_undefined(plan, evidence, open_chunks)
    if not evidence.invalid:
        return plan
    utf8 = _decide(evidence, open_chunks)
    if utf8:
        return dataclasses.replace(plan, suspect="invalid_bytes")
    if requested is not None or encoding == "utf-8-sig":
        line = _line_at(open_chunks, encoding, evidence.first_invalid or 0)
        label = _LABELS[encoding]
        raise ExportError(
            f"line {line} has bytes that are not valid {label}, although the file is declared as {label}: "
            "save it again as 'CSV UTF-8' or set the right encoding in the mapping"
        )
    findings.append(
        info(
            None,
            None,
            "encoding_cp1252",
            "the file is not UTF-8, so it was read as Windows-1252 (what Excel's plain 'CSV' writes); "
            "check that accented names look right, or export as 'CSV UTF-8'",
        )
    )
    undefined = _Evidence()
    _scan_bytes(open_chunks(), None, None, undefined, utf8=False)
    plan = dataclasses.replace(plan, encoding="cp1252", suspect="mixed" if evidence.valid else None)
    return _with_undefined(plan, undefined, open_chunks)


def _is_accented_utf8(chunks: Iterable[bytes]) -> bool:
    """Whether the bytes are valid UTF-8 holding at least one multi-byte character.  Windows-1252 text with
    accents is almost never valid UTF-8 (an accented letter alone is an invalid byte there), so a file that
    is, and was declared Windows-1252, was declared wrongly."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    accented = False
    try:
        for chunk in chunks:
            if not accented and not chunk.isascii():
                accented = True
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return accented


def _scan_bytes(
    chunks: Iterable[bytes],
    meter: _Meter[bytes] | None,
    parity: _QuoteParity | None,
    evidence: _Evidence,
    *,
    utf8: bool,
) -> None:
    """One pass over the bytes: NULs, the meter, the quote parity, and either the UTF-8 evidence or (for
    Windows-1252) the undefined bytes; an ASCII chunk costs a few searches and no decoding."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset, pending = 0, False
    for chunk in chunks:
        nul = chunk.find(b"\x00")
        if nul >= 0:
            raise _Stop("nul", offset + nul)
        if meter is not None:
            meter.feed(chunk)
        if parity is not None:
            parity.feed(chunk)
        if chunk.isascii() and not pending:
            pass
        elif utf8:
            pending = _weigh(decoder, chunk, offset, evidence, final=False)
        else:
            count = len(chunk) - len(chunk.translate(None, _CP1252_UNDEFINED))  # one pass, unlike five count()s
            if count and evidence.first_undefined is None:
                evidence.first_undefined = offset + min(i for i in map(chunk.find, _CP1252_UNDEFINED) if i >= 0)
            evidence.undefined += count
        offset += len(chunk)
    if utf8 and pending:
        _weigh(decoder, b"", offset, evidence, final=True)


def _weigh(decoder: codecs.IncrementalDecoder, chunk: bytes, offset: int, evidence: _Evidence, *, final: bool) -> bool:
    """Decode a chunk as UTF-8 and add what it shows to ``evidence``: strictly (one C call) until the first
    bad byte, with ``surrogateescape`` and counting from there on.  True when the decoder holds the start of
    a sequence that the next chunk completes."""
    before = decoder.getstate()[0]
    if evidence.first_invalid is None:
        try:
            decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:  # nothing consumed: decode the chunk again, counting
            evidence.first_invalid = offset - len(before) + exc.start
            evidence.counted_from = offset - len(before)
            decoder.errors = "surrogateescape"
        else:
            return bool(decoder.getstate()[0])
    text = decoder.decode(chunk, final)
    after = decoder.getstate()[0]
    bad = len(before) + len(chunk) - len(after) - len(text.encode("utf-8", "ignore"))  # the escaped bytes
    evidence.valid += len(text) - len(text.encode("ascii", "ignore")) - bad
    evidence.invalid += bad
    return bool(after)


def _decide(evidence: _Evidence, open_chunks: Callable[[], Generator[bytes, None, None]]) -> bool:
    """The rule: a file with bad UTF-8 bytes is still UTF-8 unless they outnumber the characters that are
    valid multi-byte UTF-8 (over the whole file).  A Windows-1252 file almost never holds a valid UTF-8
    sequence by chance (an accented capital followed by a symbol such as a curly quote), while a UTF-8 file
    damaged on a few rows keeps all the others; so "mostly not UTF-8" is the proof a fallback needs, and the
    rows that do not fit the winner are left out either way.  Before the first bad byte the file is valid
    UTF-8, so the characters there are its lead bytes, counted only when the decision still needs them."""
    need = evidence.invalid - evidence.valid
    if need > 0 and evidence.counted_from:
        for chunk in _prefix(open_chunks(), evidence.counted_from):
            evidence.valid += len(chunk) - len(chunk.translate(None, _UTF8_LEADS))
            if evidence.valid >= evidence.invalid:
                break
    return evidence.valid >= evidence.invalid


def _with_undefined(plan: _Plan, evidence: _Evidence, open_chunks: Callable[[], Generator[bytes, None, None]]) -> _Plan:
    """Windows-1252 decodes any byte (see _cp1252_c1); its undefined bytes suggest yet another encoding."""
    if evidence.first_undefined is None:
        return plan
    line = _line_at(open_chunks, "cp1252", evidence.first_undefined)
    plan.findings.append(
        warning(
            line,
            None,
            "encoding_cp1252_undefined",
            f"{evidence.undefined} byte(s) that Windows-1252 does not define, the first on line {line}, were kept "
            "as control characters: the file may be in another encoding; export it as 'CSV UTF-8'",
        )
    )
    return plan


def _settle_utf16(
    stream: Iterable[bytes],
    open_chunks: Callable[[], Generator[bytes, None, None]],
    encoding: str,
    findings: list[Finding],
    limits: ReadLimits,
) -> _Plan:
    """UTF-16 (Excel's "Unicode Text"): decoded in the first pass, so lines are measured on the text; any
    undecodable sequence refuses the file (it is not a few bad bytes: UTF-16 has no such thing)."""
    meter = _Meter(limits, "\n", "\r", scale=2)
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    seen, quotes = 0, False
    try:
        for chunk in chain(stream, (b"",)):  # chunks are never empty, so the b"" marks the end: flush
            pending = decoder.getstate()[0]
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                good = (pending + chunk)[: exc.start]
                raise _Stop("undecodable", seen + len(good.decode(encoding, "replace"))) from None
            nul = text.find("\x00")
            if nul >= 0:
                raise _Stop("nul", seen + nul)
            meter.feed(text)
            quotes = quotes or '"' in text  # no cheap parity on text: any quote meters the rows
            seen += len(text)
    except _Stop as stop:
        raise _stopped(stop, open_chunks, encoding, limits) from None
    meter.finish()
    return _Plan(encoding, findings, None, _long_lines(meter, open_chunks, encoding), meter.too_many_long, quotes)


def _long_lines(
    meter: _Meter[AnyStr], open_chunks: Callable[[], Generator[bytes, None, None]], encoding: str
) -> list[int]:
    """The meter's long lines as line numbers: one more pass, only for a file that has any."""
    if not meter.long or meter.too_many_long:
        return []
    end = meter.long[-1] + 1
    if encoding in _UTF16:
        return list(_lines_at(_decoded(open_chunks(), encoding, end), meter.long, "\n", "\r"))
    return list(_lines_at(_prefix(open_chunks(), end), meter.long, b"\n", b"\r"))


def _stopped(
    stop: _Stop, open_chunks: Callable[[], Generator[bytes, None, None]], encoding: str, limits: ReadLimits
) -> ExportError:
    line = _line_at(open_chunks, encoding, stop.offset, text=encoding in _UTF16)
    if stop.kind == "long_line":
        return LimitError(
            "line_too_long",
            "max_line_bytes",
            line,
            f"line {line} is longer than {_size(limits.max_line_bytes)}, more than any export's rows "
            "(limit max_line_bytes), so reading stopped there: is this the right file, or were its line breaks "
            "lost?",
        )
    if stop.kind == "nul" and line == 1:
        return ExportError("this file holds binary data (NUL bytes), not text" + _SAVE_AS)
    if stop.kind == "nul":
        return ExportError(
            f"line {line} contains a NUL byte, which no text export has: the file is damaged, export it again"
        )
    label = _LABELS[encoding]
    return ExportError(
        f"line {line} has bytes that are not valid {label}, although the file is declared as {label}: "
        "save it again as 'CSV UTF-8' or set the right encoding in the mapping"
    )


def _first_guess(head: bytes, requested: str | None) -> tuple[str, list[Finding]]:
    """The encoding to try: the requested one, else the BOM's, else UTF-16 by its NUL pattern, else UTF-8."""
    declared = _bom_encoding(head)
    if requested == "utf-16":
        return declared if declared in _UTF16 else "utf-16-le", []
    if requested == "utf-8" and declared == "utf-8-sig":
        return declared, []
    if requested is not None:
        return requested, []
    if declared is not None:
        return declared, []
    guessed = _utf16_without_bom(head)
    if guessed is not None:
        return guessed, [info(None, None, "encoding_utf16_no_bom", "the file is UTF-16 text without a byte-order mark")]
    return "utf-8", []


def _bom_encoding(head: bytes) -> str | None:
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            if encoding is None:
                raise ExportError("the file is saved as UTF-32 text" + _SAVE_AS)
            return encoding
    return None


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 of mostly-ASCII text has a NUL in most odd (LE) or even (BE) bytes and none in the others."""
    sample = head[:4096]
    half = len(sample) // 2
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if half < 8:
        return None
    if odd > half * 0.6 and even == 0:
        return "utf-16-le"
    if even > half * 0.6 and odd == 0:
        return "utf-16-be"
    return None


# --- line numbers of offsets ---------------------------------------------------------------------------


def _decoded(chunks: Generator[bytes, None, None], encoding: str, end: int) -> Iterator[str]:
    """``chunks`` decoded up to at least character ``end``, never failing: undecodable bytes become U+FFFD."""
    decoder = codecs.getincrementaldecoder(encoding)("replace")
    seen = 0
    with closing(chunks):
        for chunk in chunks:
            text = decoder.decode(chunk)
            yield text
            seen += len(text)
            if seen >= end:
                return
        yield decoder.decode(b"", True)


def _line_at(
    open_chunks: Callable[[], Generator[bytes, None, None]], encoding: str, offset: int, *, text: bool = False
) -> int:
    """The physical line holding ``offset``: a byte offset, or (``text``) a UTF-16 character offset.  A byte
    offset into UTF-16 (only max_bytes) counts every line of the text before it."""
    if encoding not in _UTF16:
        return next(_lines_at(_prefix(open_chunks(), offset), [offset], b"\n", b"\r"))
    if text:
        return next(_lines_at(_decoded(open_chunks(), encoding, offset), [offset], "\n", "\r"))
    return next(_lines_at(_decoded(_prefix(open_chunks(), offset), encoding, _NEVER), [_NEVER], "\n", "\r"))


def _lines_at(parts: Iterable[AnyStr], offsets: Iterable[int], lf: AnyStr, cr: AnyStr) -> Iterator[int]:
    """The 1-based physical line holding each of ``offsets`` (ascending) in the concatenation of ``parts``,
    counting line ends as the text layer splits them (CRLF, CR or LF), so it agrees with the row numbers.
    An offset past the end gets the last line."""
    targets = iter(offsets)
    target = next(targets, None)
    line, seen, after_cr = 1, 0, False
    for part in parts:
        position = 0
        while target is not None and target <= seen + len(part):
            piece = part[position : target - seen]
            line += _breaks(piece, lf, cr, after_cr)
            after_cr = piece.endswith(cr) if piece else after_cr
            position = target - seen
            yield line
            target = next(targets, None)
        if target is None:
            return
        piece = part[position:]
        line += _breaks(piece, lf, cr, after_cr)
        after_cr = piece.endswith(cr) if piece else after_cr
        seen += len(part)
    while target is not None:
        yield line
        target = next(targets, None)


def _breaks(piece: AnyStr, lf: AnyStr, cr: AnyStr, after_cr: bool) -> int:
    """Line ends in ``piece``; an LF first in it ends no line when the piece before ended with CR."""
    return piece.count(lf) + piece.count(cr) - piece.count(cr + lf) - (after_cr and piece[:1] == lf)


def _size(count: int) -> str:
    """A limit in the unit it was most likely set in: 2 GiB, 1 MiB, 64 KiB, or bytes."""
    for unit, name in ((_GIB, "GiB"), (_MIB, "MiB"), (_KIB, "KiB")):
        if count >= unit and count % unit == 0:
            return f"{count // unit} {name}"
    return f"{count:,} bytes"
