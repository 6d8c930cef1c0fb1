"""Read a district's SIS export exactly as it was dropped, streamed, whatever produced it.

Districts send what their SIS or Excel wrote: UTF-8 with or without a BOM, Excel's "Unicode Text" (UTF-16,
tab-delimited), Windows-1252 from an older Excel "CSV", gzip or not, comma, tab, pipe or semicolon, CR, LF or
CRLF, quoted values holding delimiters and newlines.  This module settles all of that once per file and then
hands the caller plain ``(line, fields)`` pairs, so no other module has to know about bytes.

How, and why this way:

* **Two passes over the bytes.**  Whether a BOM-less file is UTF-8 can only be known by decoding all of it
  (a cp1252 ``é`` may first appear on the last line), and it must be known before the first row is handed
  out.  The first pass decodes in large chunks with an incremental decoder (memory stays flat, and C does
  the work); it also finds NUL bytes, which the ``csv`` module of Python 3.11+ would silently keep.  Bad
  bytes are therefore reported when the reader is opened, never after half the rows were processed; only
  broken quoting, which the csv parser alone sees, surfaces part-way (as ExportError naming the line).
* **The second pass is stdlib C all the way down**: ``gzip`` -> ``io.TextIOWrapper(newline="")`` -> ``csv``.
  The per-row Python work is one blank-row test and a line-number addition, because a 1M-row conversion
  must stay within 2.5x of a bare ``csv.reader`` -> ``csv.writer`` round trip.
* **Line numbers are physical lines**, as a clerk sees them in an editor: ``csv.reader.line_num`` counts the
  lines the text layer split (CR, LF and CRLF all end a line), so a quoted value spanning lines moves every
  later row's number on correctly.
* ``csv`` runs in strict mode: a stray quote or an unclosed one is reported with its line rather than
  silently swallowing the rest of the file into one value.

Nothing here logs or raises with field contents: messages carry line numbers and counts only.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal, Self

from programs_bridge.findings import Finding, info, warning

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

__all__ = ["DELIMITERS", "ENCODINGS", "ExportError", "ExportInfo", "ExportReader"]

#: The delimiters a district's export may use.  When the header ties between several, the one least likely
#: to appear inside a column name wins, so this is also the tie-break order (commas and semicolons turn up in
#: labels such as "Name, Last"; tabs and pipes practically never do).
DELIMITERS: Final = ("\t", "|", ";", ",")

#: Encodings as reported to users, and the only ones accepted from a mapping's ``encoding`` setting.
ENCODINGS: Final = ("utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "cp1252")

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
_DELIMITER_NAMES: Final = {",": "comma", "\t": "tab", "|": "pipe", ";": "semicolon"}

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
# or crashes, and say so in a finding.
_CP1252_ERRORS: Final = "programs_bridge.cp1252_c1"
_CP1252_UNDEFINED: Final = b"\x81\x8d\x8f\x90\x9d"


def _cp1252_c1(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return exc.object[exc.start : exc.end].decode("latin-1"), exc.end


codecs.register_error(_CP1252_ERRORS, _cp1252_c1)

_QUOTED: Final = re.compile(r'"[^"]*"')


class ExportError(Exception):
    """The whole file cannot be read.  The message is one sentence a data clerk can act on, with no
    student data in it (at most a line number)."""


@dataclass(frozen=True)
class ExportInfo:
    """How the file was read, for the run report."""

    encoding: str  # one of ENCODINGS
    delimiter: str  # one of DELIMITERS
    compressed: bool  # the input was gzip
    line_ending: str  # "LF", "CRLF" or "CR": what the header line used


class ExportReader:
    """A SIS export opened for reading: ``info``, ``header`` and ``findings`` are settled on opening (raising
    :class:`ExportError` for a file that cannot be read at all); :meth:`rows` then streams the data rows once.

    ``delimiter`` and ``encoding`` override the sniffing, for the rare file that fools it.
    """

    info: ExportInfo
    header: list[str]
    findings: list[Finding]

    def __init__(self, path: Path, *, delimiter: str | None = None, encoding: str | None = None) -> None:
        if delimiter is not None and delimiter not in DELIMITERS:
            raise ValueError(f"unsupported delimiter {delimiter!r}: use one of {DELIMITERS!r}")
        compressed = _is_gzip(path)

        def open_chunks() -> Iterator[bytes]:
            return _chunks(path, compressed)

        chosen, self.findings = _settle_encoding(open_chunks, _requested_encoding(encoding))
        binary = gzip.open(path, "rb") if compressed else path.open("rb")  # noqa: SIM115  # closed by close()
        errors = _CP1252_ERRORS if chosen == "cp1252" else "strict"
        self._text = io.TextIOWrapper(binary, encoding=chosen, errors=errors, newline="")
        try:
            self._start(chosen, compressed, delimiter)
        except BaseException:
            self._text.close()
            raise

    def _start(self, encoding: str, compressed: bool, delimiter: str | None) -> None:
        """Read up to the first data row: sniff the delimiter, parse the header, make sure data follows."""
        blank, head = _header_lines(self._text)
        if not head:
            raise ExportError(_ONLY_BLANK)
        chosen = delimiter or _sniff_delimiter("".join(head))
        if chosen is None:
            raise ExportError(
                "the header line has no comma, tab, semicolon or pipe between column names, "
                "so this does not look like a delimited export"
            )
        # Blank lines before the header go in as empty lines: they count for line numbers, and cannot turn into
        # a header (",,,," is one non-empty field in a semicolon file).
        lines = chain(repeat("\n", blank), head, self._text)
        reader = csv.reader(lines, delimiter=chosen, quotechar='"', strict=True)
        records = _records(reader, chosen)
        found, first = next(records, None), next(records, None)
        if found is None:
            raise ExportError(_ONLY_BLANK)
        if first is None:
            raise ExportError("the file has a header but no data rows")
        self.header = [name.lstrip("\ufeff").strip() for name in found[1]]
        self.info = ExportInfo(encoding, chosen, compressed, _line_ending(head[-1]))
        self._rows: Iterator[tuple[int, list[str]]] | None = chain((first,), records)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line, fields) for every data row; line = physical line number (1-based, header = line 1)
        where the row STARTS (a quoted field may span lines).  Blank lines and rows whose fields are all
        empty (Excel leftovers like ',,,,') are skipped.  Ragged rows are yielded as they are (the caller
        reports a field-count mismatch).  The rows stream from the file, so this can be called only once;
        damage found part-way (a stray or unclosed quote) raises :class:`ExportError` naming the line."""
        rows, self._rows = self._rows, None
        if rows is None:
            raise RuntimeError("rows() streams the file and can be called only once per reader")
        return rows

    def close(self) -> None:
        self._text.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


# --- the second pass: text and rows -------------------------------------------------------------------


def _records(reader: CsvReader, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank records with the physical line each starts on; csv damage becomes :class:`ExportError`."""
    last = 0
    try:
        for fields in reader:
            if fields and (fields[0].strip() or "".join(fields).strip()):  # one cheap test for most rows
                yield last + 1, fields
            last = reader.line_num
    except csv.Error as exc:
        raise _csv_damage(str(exc), last + 1, delimiter) from exc


def _csv_damage(detail: str, line: int, delimiter: str) -> ExportError:
    """Translate the csv module's complaint into a sentence that points at the row and says what to fix."""
    if "field larger than field limit" in detail or "unexpected end of data" in detail:
        return ExportError(
            f"a quote opened in the row starting on line {line} is never closed, so the rest of the file "
            "would run into one value: fix that row in the SIS or the file and export again"
        )
    if "expected after" in detail:
        return ExportError(
            f"the row starting on line {line} has a quote in the middle of a value: a quoted value must end "
            f"right before the next {_DELIMITER_NAMES[delimiter]}, and a quote inside it must be doubled"
        )
    return ExportError(f"the row starting on line {line} cannot be read ({detail})")


def _header_lines(text: Iterable[str]) -> tuple[int, list[str]]:
    """The physical lines up to the end of the header record: how many blank lines precede it, and the
    header's own lines (more than one when a quoted label spans lines; bounded, so a runaway quote cannot
    pull the file into memory).  The header is empty when the file holds nothing but blank lines."""
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
        if quotes % 2 == 0 or size > csv.field_size_limit():
            break
    return blank, head


def _is_blank(line: str) -> bool:
    """A line with nothing but whitespace, quotes and delimiters (Excel's ``,,,,`` leftovers)."""
    return not "".join(line.split()).strip('",;|')


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


# --- the first pass: bytes and encodings ---------------------------------------------------------------


def _is_gzip(path: Path) -> bool:
    """By magic number, not by name: a ``.csv`` may be gzip and a ``.gz`` may be plain."""
    with path.open("rb") as raw:
        return raw.read(len(_GZIP_MAGIC)) == _GZIP_MAGIC


def _chunks(path: Path, compressed: bool) -> Iterator[bytes]:
    """The (decompressed) bytes of the file in large chunks; a damaged gzip stream becomes ExportError."""
    try:
        with gzip.open(path, "rb") if compressed else path.open("rb") as binary:
            yield from iter(lambda: binary.read(_CHUNK), b"")
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ExportError("the compressed (.gz) file is damaged or incomplete: compress and send it again") from exc


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


@dataclass(frozen=True)
class _Trouble:
    """Where the first pass stopped: a NUL or undecodable bytes, at a character offset in the decoded text."""

    kind: Literal["nul", "undecodable"]
    offset: int


def _settle_encoding(open_chunks: Callable[[], Iterator[bytes]], requested: str | None) -> tuple[str, list[Finding]]:
    """Pick the encoding (BOM first, then whole-file UTF-8 validation, then Windows-1252) and prove the whole
    file decodes under it without NULs; say in findings what the clerk should know about the choice."""
    chunks = open_chunks()
    head = next(chunks, b"")
    if not head:
        raise ExportError("the file is empty")
    for magic, what in _NOT_TEXT:
        if head.startswith(magic):
            raise ExportError(what + _SAVE_AS)
    encoding, findings = _first_guess(head, requested)
    if encoding == "cp1252":
        return encoding, findings + _cp1252_scan(chain((head,), chunks), open_chunks)
    trouble = _utf_scan(chain((head,), chunks), encoding)
    if trouble is not None and trouble.kind == "undecodable" and requested is None and encoding == "utf-8":
        findings.append(
            info(
                None,
                None,
                "encoding_cp1252",
                "the file is not UTF-8, so it was read as Windows-1252 (what Excel's plain 'CSV' writes); "
                "check that accented names look right, or export as 'CSV UTF-8'",
            )
        )
        return "cp1252", findings + _cp1252_scan(open_chunks(), open_chunks)
    if trouble is not None:
        raise _decoding_damage(trouble, encoding, open_chunks)
    return encoding, findings


def _first_guess(head: bytes, requested: str | None) -> tuple[str, list[Finding]]:
    """The encoding to try: the requested one, else the BOM's, else UTF-16 by its NUL pattern, else UTF-8."""
    declared = _bom_encoding(head)
    if requested == "utf-16":
        return declared if declared in ("utf-16-le", "utf-16-be") else "utf-16-le", []
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


def _utf_scan(chunks: Iterable[bytes], encoding: str) -> _Trouble | None:
    """Decode everything with an incremental decoder; the first NUL or undecodable sequence, if any."""
    scan_as = _counting_codec(encoding)
    decoder = codecs.getincrementaldecoder(scan_as)("strict")
    seen = 0
    for chunk in chain(chunks, (b"",)):  # chunks are never empty, so the b"" marks the end: flush the decoder
        pending = decoder.getstate()[0]
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            good = (pending + chunk)[: exc.start]
            return _Trouble("undecodable", seen + len(good.decode(scan_as, "replace")))
        nul = text.find("\x00")
        if nul >= 0:
            return _Trouble("nul", seen + nul)
        seen += len(text)
    return None


def _cp1252_scan(chunks: Iterable[bytes], open_chunks: Callable[[], Iterator[bytes]]) -> list[Finding]:
    """Windows-1252 decodes any byte (see _cp1252_c1), so only NULs can stop it; count the undefined bytes,
    which suggest the file is in yet another encoding."""
    seen = undefined = 0
    first_undefined: int | None = None
    for chunk in chunks:
        nul = chunk.find(b"\x00")
        if nul >= 0:
            raise _decoding_damage(_Trouble("nul", seen + nul), "cp1252", open_chunks)
        count = len(chunk) - len(chunk.translate(None, _CP1252_UNDEFINED))  # one pass, unlike five count()s
        if count and first_undefined is None:
            first_undefined = seen + min(i for i in map(chunk.find, _CP1252_UNDEFINED) if i >= 0)
        undefined += count
        seen += len(chunk)
    if first_undefined is None:
        return []
    line = _line_at(_decoded(open_chunks(), "cp1252"), first_undefined)
    return [
        warning(
            line,
            None,
            "encoding_cp1252_undefined",
            f"{undefined} byte(s) that Windows-1252 does not define, the first on line {line}, were kept as "
            "control characters: the file may be in another encoding; export it as 'CSV UTF-8'",
        )
    ]


def _decoding_damage(trouble: _Trouble, encoding: str, open_chunks: Callable[[], Iterator[bytes]]) -> ExportError:
    line = _line_at(_decoded(open_chunks(), encoding), trouble.offset)
    if trouble.kind == "nul" and line == 1:
        return ExportError("this file holds binary data (NUL bytes), not text" + _SAVE_AS)
    if trouble.kind == "nul":
        return ExportError(
            f"line {line} contains a NUL byte, which no text export has: the file is damaged, export it again"
        )
    label = _LABELS[encoding]
    return ExportError(
        f"line {line} has bytes that are not valid {label}, although the file is declared as {label}: "
        "save it again as 'CSV UTF-8' or set the right encoding in the mapping"
    )


def _counting_codec(encoding: str) -> str:
    """The codec the scanner and the line counter share: plain UTF-8 keeps a BOM as one character, so the
    offsets one finds are the offsets the other counts."""
    return "utf-8" if encoding == "utf-8-sig" else encoding


def _decoded(chunks: Iterable[bytes], encoding: str) -> Iterator[str]:
    """The text of ``chunks`` for counting lines, never failing: undecodable bytes become U+FFFD."""
    scan_as = _counting_codec(encoding)
    decoder = codecs.getincrementaldecoder(scan_as)(_CP1252_ERRORS if scan_as == "cp1252" else "replace")
    for chunk in chunks:
        yield decoder.decode(chunk)
    yield decoder.decode(b"", True)


def _line_at(texts: Iterable[str], offset: int) -> int:
    """The 1-based physical line holding character ``offset``, counting line ends as the text layer splits
    them (CRLF, CR or LF), so it agrees with the row line numbers."""
    line, seen, after_cr = 1, 0, False
    for text in texts:
        part = text[: offset - seen]
        line += part.count("\n") + part.count("\r") - part.count("\r\n") - (after_cr and part[:1] == "\n")
        after_cr = part[-1:] == "\r"
        seen += len(text)
        if seen >= offset:
            break
    return line
