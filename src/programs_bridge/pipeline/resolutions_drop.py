"""A clerk's decisions about held rows, dropped as a CSV under ``resolutions/<feed>/``.

The file is what ``programs-bridge ledger resolve`` takes one at a time, for many rows::

    id,decision,note
    k3vq7x2m,same,the SIS re-keyed her plan in August
    p7bq2c4d,never,

Every line is checked before anything is recorded: the id's shape (``ledger.resolutions.looks_like_id``),
the decision (``same``, ``new`` or ``never``), that the ledger holds a row held with that id, and that a
``same`` names a row matching exactly one open record (``resolve``).  The valid lines are recorded in the
ledger (``by`` = ``bucket:<file name>``, ``at`` = the file's upload time), so re-recording them on a retry
writes the same items; every other line is a finding that names its line.  A message quotes an id only once
its shape is checked, and never a note or a decision as written.  A file over ``MAX_BYTES``, one that is not
UTF-8, one without the header, or one without a single valid line is rejected (nothing recorded).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from typing import Any

from programs_bridge.convert.findings import Finding, Severity, error, warning
from programs_bridge.ledger.resolutions import MAX_NOTE, Choice, Resolution, ResolutionError, looks_like_id, resolve
from programs_bridge.pipeline.drops import DropKind, Ending, run_drop
from programs_bridge.pipeline.observe import logger
from programs_bridge.pipeline.run import Outcome, Run, Services, Source

#: A file of resolutions is a line per held row: a larger one is not one (and is not read whole).
MAX_BYTES = 1 << 20
HEADER = ("id", "decision", "note")
_CHOICES = ", ".join(c.value for c in Choice)
_NEITHER = "neither line is recorded; keep the one meant"


def run_resolutions(source: Source, services: Services) -> Outcome:
    return run_drop(source, services, RESOLUTIONS)


def _work(run: Run) -> Ending:
    services, source = run.services, run.source
    with run.step("fetch"):
        raw = services.storage.read_bytes(source.key, MAX_BYTES, source.version_id)
    if raw is None:
        raise RuntimeError("the dropped version is no longer in the bucket")
    run.report["source"].update(sha256=hashlib.sha256(raw).hexdigest(), size=len(raw))
    if len(raw) > MAX_BYTES:
        return _rejected(run, "too_large", f"larger than {MAX_BYTES >> 20} MiB: a file of resolutions has a line "
                         "per held row; split it, or check that the right file was dropped")  # fmt: skip
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return _rejected(run, "not_utf8", f"not UTF-8 text (byte {exc.start + 1} cannot be read): save it as CSV UTF-8")
    with run.step("validate"):
        header, lines = _rows(text)
        if header is None:
            return _rejected(run, "header", "the first line must be the header id,decision,note")
        findings: list[Finding] = []
        valid = _validate(run, lines, findings)
    run.findings = lambda: (json.dumps(f.to_json(), ensure_ascii=False) for f in findings)
    refused = sum(1 for f in findings if f.severity is Severity.ERROR)
    replaced = len(findings) - refused  # warnings: a decision that replaces a different one recorded before
    decided = Counter(r.choice.value for r in valid)
    run.report["resolutions"] = {
        "lines": len(valid) + refused, "applied": len(valid), "refused": refused, "replaced": replaced,
        "by_decision": {c.value: decided.get(c.value, 0) for c in Choice},
        "ids": [r.id for r in valid[:1000]],
    }  # fmt: skip
    if not valid:
        reason = "no line could be recorded: every one is listed with its problem" if findings else "no lines"
        return _rejected(run, "no_valid_line", reason, refused=refused)
    with run.step("record"):
        for resolution in valid:
            services.ledger.put_resolution(run.feed, resolution)
    logger.info("resolutions recorded", extra={"stage": "record", "applied": len(valid), "refused": refused})
    reason = f"{len(valid)} resolution(s) recorded; they apply from the next export on"
    if replaced:
        reason += f"; {replaced} of them replace a different decision recorded before (listed)"
    if refused:
        reason += f"; {refused} line(s) refused, each listed with its problem"
    metrics = {"ResolutionsApplied": len(valid), "ResolutionLinesRefused": refused}
    said = f"{refused} line(s) refused" if refused else f"{replaced} earlier decision(s) replaced"
    subject = f"resolutions file applied, {said}"  # notified only when a line has something to say
    return Ending("resolutions_applied", reason, "processed", metrics, notify=bool(findings), subject=subject)


def _rejected(run: Run, code: str, reason: str, *, refused: int = 0) -> Ending:
    run.report["reason_code"] = code
    run.report.setdefault("resolutions", {"lines": 0, "applied": 0, "refused": refused})
    metrics = {"FilesRejected": 1, "ResolutionsApplied": 0, "ResolutionLinesRefused": refused}
    return Ending("rejected", f"rejected, nothing recorded: {reason}", "rejected", metrics, notify=True)


def _rows(text: str) -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    """The header (None when it is not ``id,decision[,note]``) and each other non-blank line with its number."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)  # strict: an unclosed quote is an error
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    line = 1
    try:
        for fields in reader:
            if header is None:
                names = [name.strip().lower() for name in fields]
                while names and not names[-1]:  # Excel writes empty trailing columns: ",,"
                    names.pop()
                if tuple(names) not in (HEADER, HEADER[:2]):
                    return None, []
                header = names
            elif any(field.strip() for field in fields):
                while len(fields) > len(header) and not fields[-1].strip():
                    fields.pop()  # the same empty trailing columns on every line
                rows.append((line, fields))
            line = reader.line_num + 1
    except csv.Error:
        rows.append((line, ["\0"]))  # a broken quote: refused as unreadable below
    return header, rows


def _validate(run: Run, lines: list[tuple[int, list[str]]], findings: list[Finding]) -> list[Resolution]:
    """The resolutions the lines make, each line checked; every refused line is added to ``findings``.

    An id decided twice in one file, differently, is decided by neither line: which one the clerk meant is
    not ours to guess.  A decision that replaces a different one recorded earlier is recorded, with a
    warning: what the earlier one sent (a 'same' may have sent an exit under the open record's key) stays
    in Illuminate."""
    valid: dict[str, tuple[int, Resolution]] = {}
    contradicted: set[str] = set()
    for line, fields in lines:
        checked = _check(run, line, fields, valid)
        if isinstance(checked, Finding):
            findings.append(checked)
            if checked.code == "contradicting_id":
                contradicted.add(fields[0].strip().lower())
            continue
        valid[checked.id] = (line, checked)
    for rid in contradicted:
        line, _ = valid.pop(rid)
        findings.append(error(line, "id", "contradicting_id", f"row {rid} is decided again later in this file, "
                              f"differently: {_NEITHER}"))  # fmt: skip
    earlier = {r.id: r for r in run.services.ledger.resolutions(run.feed)} if valid else {}
    for line, resolution in valid.values():
        before = earlier.get(resolution.id)
        if before is not None and before.choice is not resolution.choice:
            message = (
                f"row {resolution.id} was resolved '{before.choice.value}' before ({before.at}): this replaces it "
                "from the next export on; what was sent under the earlier decision stays in Illuminate"
            )
            findings.append(warning(line, "decision", "decision_replaced", message))
    findings.sort(key=lambda f: f.line or 0)
    return [resolution for _, resolution in valid.values()]


def _check(run: Run, line: int, fields: list[str], seen: dict[str, tuple[int, Resolution]]) -> Resolution | Finding:
    if fields == ["\0"]:
        return error(line, None, "unreadable", "a quote is not closed: the line and the ones after it cannot be read")
    if not 2 <= len(fields) <= len(HEADER):
        return error(line, None, "field_count", f"{len(fields)} field(s): a line is id,decision,note (put a note "
                     'with commas in double quotes)')  # fmt: skip
    rid, decision = fields[0].strip().lower(), fields[1].strip().lower()
    note = fields[2].strip() if len(fields) > 2 else ""
    if not looks_like_id(rid):
        return error(line, "id", "bad_id", "not a resolution id: an id is 8 letters and digits (2-7), as the run "
                     "report prints it")  # fmt: skip
    # Looked up first: an id's shape does not rule out a name (any 8 letters have it), so only an id the
    # ledger holds is quoted, here and in every message below.
    held = run.services.ledger.held(run.feed, rid)
    if held is None:
        return error(line, "id", "unknown_id", f"no row of feed {run.feed} was held with the id on this line: copy "
                     "the id from the run report")  # fmt: skip
    if decision not in {c.value for c in Choice}:
        return error(line, "decision", "bad_decision", f"row {rid}: the decision must be one of {_CHOICES}")
    if "\n" in note or "\r" in note:  # a line break typed in the cell (Alt+Enter), or a quote left open
        return error(line, "note", "note_spans_lines", f"row {rid}: the note runs over more than one line (a line "
                     "break in it, or a quote not closed where the line ends, which takes in the lines after it): "
                     "write the note on one line")  # fmt: skip
    if not note.isprintable():  # an escape sequence or another control character, read later on a terminal
        return error(line, "note", "note_unprintable", f"row {rid}: the note holds a control character: write it "
                     "as plain text")  # fmt: skip
    if len(note) > MAX_NOTE:
        return error(line, "note", "note_too_long", f"row {rid}: a note is at most {MAX_NOTE} characters")
    if rid in seen:
        first, earlier = seen[rid]
        if earlier.choice.value != decision:
            return error(line, "id", "contradicting_id", f"row {rid} is decided on line {first} already, "
                         f"differently: {_NEITHER}")  # fmt: skip
        return error(line, "id", "repeated_id", f"row {rid} is decided on line {first} already: one line per row")
    still_open = run.services.ledger.open_records(run.feed, held.matches) if decision == Choice.SAME else set()
    try:
        return resolve(held, Choice(decision), open_in_ledger=still_open, note=note, by=f"bucket:{run.source.name}",
                       at=run.source.uploaded)  # fmt: skip
    except ResolutionError as exc:  # names the id and a count only
        return error(line, "decision", exc.code, str(exc))


def _summary(head: dict[str, Any]) -> list[str]:
    section = head.get("resolutions") or {}
    decided = section.get("by_decision") or {}
    line = f"- lines: {section.get('applied', 0):,} recorded, {section.get('refused', 0):,} refused"
    if decided:
        line += " (" + ", ".join(f"{n:,} {choice}" for choice, n in decided.items()) + ")"
    return [line]


RESOLUTIONS = DropKind("resolutions", "resolutions", _work, _summary)
