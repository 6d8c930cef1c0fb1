"""The run report: JSON for machines and the audit trail, a short summary for the person at the terminal.

The JSON is written as a stream: the head is built in memory, the findings are copied line by line from the
finding log's spool, so a report with 50,000 findings costs no more memory than one with five.  The layout
is fixed (the head, then one finding a line), so the pipeline can read a stored report back the same way
(``split_report``) to rewrite its head.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from programs_bridge.convert.engine import Conversion, Status
from programs_bridge.convert.reader import DELIMITER_NAMES

REPORT_VERSION = 1
_SUMMARY_FINDINGS = 10


def report_head(conversion: Conversion) -> dict[str, Any]:
    """Everything in the report except the findings themselves."""
    info = conversion.info
    layout = conversion.options.output.layout
    return {
        "report_version": REPORT_VERSION,
        "source": conversion.source,
        "status": conversion.status.value,
        "reason": conversion.reason,
        "reason_code": conversion.reason_code,
        "profile": conversion.profile,
        "profile_detected": conversion.profile_detected,
        "encoding": info.encoding if info else None,
        "delimiter": info.delimiter if info else None,
        "delimiter_name": DELIMITER_NAMES.get(info.delimiter) if info else None,
        "line_ending": info.line_ending if info else None,
        "compressed": info.compressed if info else None,
        "layout": {"name": layout.name, "columns": layout.header},
        "output": str(conversion.output) if conversion.output else None,
        "rows_read": conversion.rows_read,
        "rows_valid": conversion.rows_valid,
        "rows_written": conversion.rows_written,
        "rows_rejected": conversion.rows_rejected,
        "rows_skipped": conversion.rows_skipped,
        "rows_merged": conversion.rows_merged,
        "rows_blank": conversion.rows_blank,
        "lines_read": conversion.lines_read,
        "findings_by_severity": dict(conversion.findings.by_severity),
        "findings_by_code": dict(sorted(conversion.findings.by_code.items())),
    }


def write_report(conversion: Conversion, stream: IO[str], extra: dict[str, Any] | None = None) -> None:
    """Write the full JSON report (head, ``extra`` sections, then ``issues``) to ``stream``."""
    stream.writelines(report_text({**report_head(conversion), **(extra or {})}, conversion.findings.json_lines()))


#: The line that opens the findings in every report this module writes; ``split_report`` relies on it.
ISSUES_LINE = '  "issues": ['


def report_text(head: dict[str, Any], findings: Iterable[str]) -> Iterator[str]:
    """The JSON report as pieces of text: ``head`` (indented), then ``issues`` with one finding (a JSON text
    from the finding log) per line.  A generator, so a million findings never sit in memory together."""
    yield json.dumps(head, ensure_ascii=False, indent=2)[:-2]
    yield ",\n" + ISSUES_LINE
    empty = True
    for line in findings:
        yield ("\n    " if empty else ",\n    ") + line
        empty = False
    yield "]\n}\n" if empty else "\n  ]\n}\n"


def split_report(lines: Iterable[str], findings: IO[str]) -> dict[str, Any]:
    """Read back a report written by ``report_text``: return its head, and copy each finding's JSON text to
    ``findings`` as one line, without holding the findings in memory."""
    head: list[str] = []
    lines = iter(lines)
    for line in lines:
        if line.rstrip("\n").startswith(ISSUES_LINE):
            break
        head.append(line)
    else:
        raise ValueError("not a report written by programs-bridge: it has no issues list")
    if not line.rstrip().endswith("[]"):
        for line in lines:
            text = line.strip()
            if text == "]":
                break
            findings.write(text.removesuffix(",") + "\n")
    parsed: dict[str, Any] = json.loads("".join(head).rstrip().removesuffix(",") + "\n}")
    return parsed


def save_report(conversion: Conversion, path: Path, extra: dict[str, Any] | None = None) -> None:
    with path.open("w", encoding="utf-8") as stream:
        write_report(conversion, stream, extra)


def summary(conversion: Conversion, report_path: Path | None = None, *, kept: bool = True) -> str:
    """A few lines for a human: what was read, what was written, the first findings, where the rest is."""
    info = conversion.info
    # kept=False: the programs.txt was a scratch file for the ledger (plan, seed, reconcile), gone by now.
    lines = [f"{conversion.source}: {_verdict(conversion, kept)}"]
    if conversion.reason:
        lines.append(f"  reason: {conversion.reason}")
    if info is not None and conversion.profile:
        mapping = conversion.options.mapping
        how = (
            "detected from the header" if conversion.profile_detected
            else f"as asked, extending {mapping.extends}" if mapping and mapping.extends else "as asked"
        )  # fmt: skip
        lines.append(
            f"  read as {conversion.profile} ({how}); {info.encoding}, "
            f"{DELIMITER_NAMES.get(info.delimiter, repr(info.delimiter))}-delimited, {info.line_ending}"
            + (", gzip" if info.compressed else "")
        )
    if conversion.rows_read:
        lines.append(
            # "converted" for the ledger's scratch file: nothing is written anywhere yet, and the ledger step
            # that follows may still fail.
            f"  rows: {conversion.rows_read:,} read, {conversion.rows_written:,} {'written' if kept else 'converted'}, "
            f"{conversion.rows_rejected:,} rejected, {conversion.rows_skipped:,} skipped, "
            f"{conversion.rows_merged:,} merged duplicates"
            + (f"; {conversion.rows_blank:,} blank line(s) passed over" if conversion.rows_blank else "")
        )
    shown = conversion.findings.first[:_SUMMARY_FINDINGS]
    if shown:
        lines.append(f"  findings: {len(conversion.findings):,} ({_by_severity(conversion)}); first ones:")
        for finding in shown:
            where = f"line {finding.line}" if finding.line else "file"
            column = f", {finding.column}" if finding.column else ""
            lines.append(f"    {where}{column}: {finding.severity.value} {finding.code}: {finding.message}")
    if report_path is not None:
        lines.append(f"  full report: {report_path}")
    return "\n".join(lines)


def _verdict(conversion: Conversion, kept: bool = True) -> str:
    if conversion.status is Status.REJECTED:
        return "REJECTED, nothing written"
    if conversion.output is None or not kept:  # validate, or a scratch file: nothing is kept
        if conversion.status is Status.PARTIAL:
            return f"{conversion.rows_rejected:,} row(s) have errors and would be left out"
        return "all rows valid"
    if conversion.status is Status.PARTIAL:
        return f"written to {conversion.output} without the {conversion.rows_rejected:,} rejected row(s)"
    return f"all rows valid, written to {conversion.output}"


def _by_severity(conversion: Conversion) -> str:
    counts = conversion.findings.by_severity
    return ", ".join(f"{counts[s]:,} {s}" for s in ("error", "warning", "info") if counts[s])
