"""``programs-bridge validate`` and ``programs-bridge convert``, and the converter options other commands share.

Exit codes (documented in the README): 0 every row valid; 1 some rows rejected, programs.txt written without
them; 2 the file was rejected and nothing was written; 64 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from programs_bridge.cli.main import CommandFailed, UsageError
from programs_bridge.convert.codetable import CodeTableError, load_code_table
from programs_bridge.convert.engine import (
    DEFAULT_MAX_REJECT_SHARE,
    Conversion,
    ConvertOptions,
    Status,
    convert_export,
)
from programs_bridge.convert.mapping import MappingError, load_mapping
from programs_bridge.convert.profiles import PROFILES
from programs_bridge.convert.reader import DELIMITER_NAMES, ReadLimits
from programs_bridge.programs_txt.layout import LAYOUTS, custom_layout
from programs_bridge.programs_txt.render import OutputFormat
from programs_bridge.report.conversion import save_report, summary

EXIT_CODES = {Status.OK: 0, Status.PARTIAL: 1, Status.REJECTED: 2}
DELIMITERS = {name: char for char, name in DELIMITER_NAMES.items()}


def add_converter_options(parser: argparse.ArgumentParser) -> None:
    """The options that say how to read an export and what programs.txt to make of it."""
    parser.add_argument(
        "input",
        type=Path,
        help="the file to read: a SIS export, or for ledger seed and reconcile "
        "Illuminate's report (CSV, TSV, pipe; .gz accepted)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--profile", choices=sorted(PROFILES), help="built-in export shape (default: detect)")
    source.add_argument("--mapping", type=Path, metavar="FILE", help="TOML mapping for any other export")
    parser.add_argument("--code-table", type=Path, metavar="FILE", help="the district's Student Programs codes")
    parser.add_argument("--report", type=Path, metavar="R.json", help="write the full JSON report here")
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--layout", choices=["standard", "legacy"], default="standard",
                       help="15 columns (standard) or the older 12")  # fmt: skip
    shape.add_argument("--columns", metavar="LIST",
                       help="custom column order, comma-separated field names (see README)")  # fmt: skip
    parser.add_argument("--crlf", action="store_true", help="end lines with CRLF instead of LF")
    parser.add_argument("--no-header", action="store_true", help="leave out the header row")
    parser.add_argument("--max-reject-share", type=float, default=DEFAULT_MAX_REJECT_SHARE, metavar="SHARE",
                        help="reject the whole file above this share of bad rows (default 0.05)")  # fmt: skip
    parser.add_argument("--delimiter", choices=sorted(DELIMITERS), help="input delimiter (default: sniff)")
    parser.add_argument("--encoding", choices=["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "cp1252"],
                        help="input encoding (default: detect)")  # fmt: skip
    parser.add_argument("--as-of", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="judge dates (e.g. birth dates in the future) as of this day; default today")  # fmt: skip
    limits = parser.add_argument_group("limits", "refuse a file past these (defaults: README, What it reads)")
    for setting in dataclasses.fields(ReadLimits):
        limits.add_argument(f"--{setting.name.replace('_', '-')}", type=int, metavar="N", dest=setting.name,
                            help=f"default {setting.default:,}")  # fmt: skip


def options_from_args(args: argparse.Namespace) -> ConvertOptions:
    """Turn parsed options into ConvertOptions; configuration problems become UsageError (exit 64)."""
    if not args.input.is_file():
        raise UsageError(f"no such file: {args.input}")
    try:  # before any work, and not mistaken later for a failure to write programs.txt
        args.input.open("rb").close()
    except OSError as exc:
        raise UsageError(f"cannot read {args.input}: {exc.strerror or exc}") from None
    if not 0 <= args.max_reject_share <= 1:
        raise UsageError("--max-reject-share must be between 0 and 1 (0.05 means 5%)")
    try:
        mapping = load_mapping(args.mapping, PROFILES) if args.mapping else PROFILES.get(args.profile or "")
        code_table = load_code_table(args.code_table) if args.code_table else None
        layout = custom_layout([c.strip() for c in args.columns.split(",")]) if args.columns else LAYOUTS[args.layout]
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(ReadLimits)}
        limits = ReadLimits(**{name: value for name, value in given.items() if value is not None})
    except (MappingError, CodeTableError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return ConvertOptions(
        output=OutputFormat(layout=layout, header=not args.no_header, newline="\r\n" if args.crlf else "\n"),
        mapping=mapping,
        code_table=code_table,
        max_reject_share=args.max_reject_share,
        delimiter=DELIMITERS[args.delimiter] if args.delimiter else None,
        encoding=args.encoding,
        today=args.as_of or date.today(),
        read_limits=limits,
    )


def terminal_progress(rows: int) -> None:
    print(f"\r  {rows:,} rows read ...", end="", file=sys.stderr, flush=True)


def run_conversion(args: argparse.Namespace, destination: Path | None) -> Conversion:
    options = options_from_args(args)
    if args.report:
        output_checked(args.report, args.input, "the report")
    progress = terminal_progress if sys.stderr.isatty() else None
    try:
        conversion = convert_export(args.input, destination, options, progress)
    except OSError as exc:  # the disk filled up (the staged rows are removed on the way out)
        raise CommandFailed(f"could not write programs.txt: {exc.strerror or exc}; nothing was kept") from None
    if progress is not None and conversion.rows_read >= 50_000:
        print("\r\033[K", end="", file=sys.stderr)
    try:
        if args.report:
            save_report(conversion, args.report)
    except OSError as exc:
        for written in (conversion.output, conversion.source_lines, args.report):
            if written is not None:
                written.unlink(missing_ok=True)
        raise CommandFailed(
            f"could not write the report {args.report}: {exc.strerror or exc}; programs.txt was not kept either"
        ) from None
    finally:
        conversion.findings.close()
    print(summary(conversion, args.report), file=sys.stderr)
    return conversion


def writable(path: Path, what: str) -> None:
    """Fail before any work when ``path`` cannot be written: a missing folder, a folder in the way, a disk
    that refuses files (tried for real, with a probe file, since root passes every permission check)."""
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder: give a file name")
    if path.exists() and not path.is_file():  # a device or a pipe: the staged file would be renamed over it
        raise UsageError(f"{what} {path} is not a regular file: give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {what} {path}: folder {path.parent} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".programs-bridge-probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write {what} {path}: {exc.strerror or exc}") from None


def _validate(args: argparse.Namespace) -> int:
    return EXIT_CODES[run_conversion(args, None).status]


def _convert(args: argparse.Namespace) -> int:
    output: Path = args.output
    if output.is_dir():
        output = output / "programs.txt"
    output_checked(output, args.input, "programs.txt")
    return EXIT_CODES[run_conversion(args, output).status]


def output_checked(path: Path, source: Path, what: str) -> None:
    """Fail before any work when ``path`` is the file being read (writing over it would lose it: the
    district's only copy, often) or cannot be written (``writable``)."""
    if path.exists() and source.exists() and path.samefile(source):  # a link to it too (same inode)
        raise UsageError(f"{what} {path} is the file being read: give another file name, or it would be lost")
    writable(path, what)


def add_command(subparsers: Any) -> None:
    validate = subparsers.add_parser(
        "validate", help="check an export and report every problem; writes no programs.txt",
        description="Check an export row by row; exit 0 all valid, 1 some rows bad, 2 file rejected, 64 usage.",
    )  # fmt: skip
    add_converter_options(validate)
    validate.set_defaults(handler=_validate)
    convert = subparsers.add_parser(
        "convert", help="turn an export into programs.txt",
        description="Convert an export to programs.txt; exit 0 all rows written, 1 some rows left out, "
        "2 file rejected (nothing written), 64 usage.",
    )  # fmt: skip
    add_converter_options(convert)
    convert.add_argument("-o", "--output", type=Path, default=Path("programs.txt"),
                         help="where to write programs.txt (default ./programs.txt)")  # fmt: skip
    convert.set_defaults(handler=_convert)
