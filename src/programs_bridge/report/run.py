"""The run report: one JSON document per processed file, the same from the Lambda, ``plan`` and ``demo``.

It extends the converter's report (``conversion``: counts of rows read, written, rejected, and every finding)
with what the ledger decided, what was delivered, and a ``counts`` object that puts the numbers a district
watches side by side.  Next to it goes a short Markdown summary for people who do not read JSON.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from programs_bridge.convert.engine import Conversion
from programs_bridge.convert.findings import summary_id
from programs_bridge.ledger.plan import Plan
from programs_bridge.ledger.resolutions import bucket_route, resolution_lines
from programs_bridge.report.conversion import report_head, report_text

#: Findings the Markdown summary shows; the JSON report has them all.
FIRST_FINDINGS = 10

COUNT_NAMES = (
    "rows_read", "rows_rejected", "rows_skipped", "rows_merged", "rows_sent", "new", "unchanged", "updated",
    "exits", "duplicate_risks", "held", "reopened", "missing",
)  # fmt: skip


class RunStatus(StrEnum):
    DELIVERED = "delivered"
    """programs.txt reached the SFTP server and the ledger recorded it."""
    REJECTED = "rejected"
    """The export was not fit to send (see reason and issues); nothing was delivered."""
    HELD = "held"
    """The whole export was held back, valid as it is: the shrink guard found it leaves out far more of the
    feed's open records than the last delivered export did (``ledger/shrink.py``).  Nothing was delivered
    or committed; the next complete export goes through as usual."""
    NEEDS_SEED = "needs_seed"
    """The feed's first export, held because its ledger knows nothing yet: seed the ledger from Illuminate's
    own records (``programs-bridge ledger seed``), or say ``unseeded = "send"`` in the feed's configuration
    when Illuminate holds nothing for it.  Nothing was delivered or committed."""
    FAILED = "failed"
    """Something outside the export failed (configuration, SFTP, AWS); the export stays in incoming/ for a retry."""
    REPEAT = "repeat"
    """The same bytes as the last delivered export of this feed; nothing was sent again."""
    SUPERSEDED = "superseded"
    """Older than an export of this feed that was already delivered; sending it would roll Illuminate back."""
    PLANNED = "planned"
    """A dry run (``programs-bridge plan``): nothing was delivered or committed."""
    IN_PROGRESS = "in_progress"
    """The run has not finished yet (or stopped half-way and will be retried)."""


def counts(conversion: Conversion | None, plan: Plan | None, rows_sent: int | None = None) -> dict[str, int]:
    """The headline numbers of a run; every name is always present, so dashboards can rely on it."""
    out = dict.fromkeys(COUNT_NAMES, 0)
    if conversion is not None:
        out["rows_read"] = conversion.rows_read
        out["rows_rejected"] = conversion.rows_rejected
        out["rows_skipped"] = conversion.rows_skipped
        out["rows_merged"] = conversion.rows_merged
    if plan is not None:
        decided = {decision.value: n for decision, n in plan.classification.counts.items()}
        actions = plan.action_counts()
        out["new"] = decided.get("new", 0)
        out["unchanged"] = decided.get("unchanged", 0)
        out["updated"] = decided.get("updated", 0)
        out["exits"] = decided.get("exit", 0)
        out["duplicate_risks"] = decided.get("duplicate_risk", 0)
        out["reopened"] = decided.get("reopen", 0)
        out["missing"] = decided.get("missing", 0)
        out["held"] = actions.get("held", 0)
    if rows_sent is not None:
        out["rows_sent"] = rows_sent
    return out


def run_report_head(conversion: Conversion, head: dict[str, Any]) -> dict[str, Any]:
    """The run's ``head`` (run id, status, counts, ledger, delivery ...) over the converter's report head."""
    return {**report_head(conversion), "conversion_status": conversion.status.value, **head}


def save_run_report(path: Path | None, conversion: Conversion, head: dict[str, Any]) -> None:
    """The commands' ``--report`` (plan, ledger seed, ledger reconcile): ``head`` over the conversion's, with
    every finding streamed from the converter's log; nothing when no path was given."""
    if path is not None:
        with path.open("w", encoding="utf-8") as out:
            out.writelines(report_text(run_report_head(conversion, head), conversion.findings.json_lines()))


def markdown_summary(head: dict[str, Any], first_findings: list[dict[str, Any]]) -> str:
    """A short human summary to sit next to the JSON report."""
    c = head.get("counts", {})
    lines = [
        f"# programs-bridge run {head.get('run_id', '')}: {head.get('status', '').upper()}",
        "",
        f"- feed: `{head.get('feed', '')}`",
        f"- export: `{head.get('source', {}).get('key', '') if isinstance(head.get('source'), dict) else ''}`",
    ]
    if head.get("reason"):
        lines.append(f"- reason: {head['reason']}")
    lines += [
        f"- rows: {c.get('rows_read', 0):,} read, {c.get('rows_sent', 0):,} sent, "
        f"{c.get('rows_rejected', 0):,} rejected, {c.get('held', 0):,} held{_skipped(c)}",
        f"- records: {c.get('new', 0):,} new, {c.get('updated', 0):,} updated, {c.get('exits', 0):,} exits, "
        f"{c.get('reopened', 0):,} reopened, {c.get('unchanged', 0):,} unchanged",
        f"- attention: {c.get('duplicate_risks', 0):,} duplicate risks, {c.get('missing', 0):,} missing "
        "from a full export",
    ]
    guard = head.get("shrink_guard")
    if isinstance(guard, dict) and guard.get("summary") and guard.get("dropped"):  # quiet when nothing went
        lines.append(f"- shrink guard: {guard['summary']}")
    delivery = head.get("delivery")
    if isinstance(delivery, dict) and delivery.get("remote_path"):
        lines.append(f"- delivered: `{delivery['remote_path']}` ({delivery.get('size', 0):,} bytes)")
    given = head.get("ledger")
    ledger: dict[str, Any] = given if isinstance(given, dict) else {}
    concurrent = ledger.get("concurrent_enrolment_count", 0)
    if concurrent:
        lines.append(
            f"- concurrent enrolments: {concurrent:,} new record(s) sent beside an open record this full export "
            "also lists (both real, e.g. a second site); the JSON report lists them"
        )
    zeros = ledger.get("zeros_lost_in_ledger", 0)
    if zeros:
        lines.append(
            f"- leading zeros: {zeros:,} duplicate risk(s) match an open record whose Import Student ID lost its "
            "leading zeros, as a report saved in Excel does: seed the feed again from a clean report (or with a "
            "mapping setting [ids] import_student_id_width), and correct those records in Illuminate"
        )
    resolved = ledger.get("resolved", {})
    if resolved.get("never"):
        lines.append(f"- resolutions: {resolved['never']:,} row(s) left out as a clerk decided (never)")
    blocked = ledger.get("resolutions_not_applied", [])
    if blocked:
        at = ", ".join(str(b["line"]) for b in blocked[:20])
        lines.append(
            f"- resolutions: {len(blocked):,} row(s) resolved 'same' left out, because this file also lists the "
            f"open record they are sent under, under its own key (lines {at}): correct the SIS, or resolve them again"
        )
    stale = ledger.get("resolutions_stale", [])
    if stale:
        lines.append(f"- resolutions: {len(stale):,} 'same' resolution(s) not applied, since the record they send "
                     f"rows under is no longer in the ledger (a seed was undone): {', '.join(stale[:20])}; "
                     "their rows were planned as they are: resolve any that are held again")  # fmt: skip
    risks = ledger.get("duplicate_risks", [])
    if risks:
        lines += ["", "## Duplicate risks", "", "| line | action | differs from the open record in | resolution id |",
                  "|---|---|---|---|"]  # fmt: skip
        for risk in risks[:20]:
            differs = "; ".join(_differs(record) for record in risk.get("open_records", []))
            lines.append(f"| {risk.get('line')} | {risk.get('action')} | {differs} | `{risk.get('id', '')}` |")
        held = [risk["id"] for risk in risks[:20] if risk.get("action") == "held" and risk.get("id")]
        if held:
            feed = str(head.get("feed", ""))
            lines += ["", "Decide about each held row (same: the open record; new: a second enrolment; never: do "
                      "not send it), for example:", "", "```", *resolution_lines(feed, held), "```", "",
                      bucket_route(feed)]  # fmt: skip
    if first_findings:
        lines += ["", "## First findings", "", "| line | column | severity | code | message |", "|---|---|---|---|---|"]
        for f in first_findings[:FIRST_FINDINGS]:
            message = str(f.get("message", "")).replace("|", "/")
            line, column = f.get("line") or "", f.get("column") or ""
            lines.append(f"| {line} | {column} | {f.get('severity', '')} | {f.get('code', '')} | {message} |")
    lines += ["", "The JSON report next to this file lists every finding."]
    return "\n".join(lines) + "\n"


def _skipped(c: dict[str, Any]) -> str:
    """The rows the export itself marks as not to send (an SPRG ``D`` transaction), when there are any."""
    skipped = c.get("rows_skipped", 0)
    return f", {skipped:,} skipped" if skipped else ""


#: Key parts shown by value (a date, a site number, each shape-checked by the converter; a notice shows a
#: site only when it is short, ``_noticed``); never the student's ID, and the program id only by name, as it
#: may be misaligned data.
_SHOWN_BY_VALUE = ("program_start_date", "site_id")
#: Held rows an SNS notice lists one by one; the report has them all.
NOTICE_HELD_ROWS = 20


def held_lines(feed: str, total: int, held: list[dict[str, Any]]) -> list[str]:
    """What a notice tells a clerk about each held row (``held``: the report's ``duplicate_risks`` held, of
    ``total``), to decide without opening the bucket: its source line, the key fields that differ (by name,
    and by value for the start dates and short site numbers) and the exact resolution command.  Never the
    student's ID, name or birth date: the e-mail leaves the district's account."""
    if not held:
        return []
    lines = ["", f"{total} row(s) held, not sent. For each, decide and run one of the commands:"]
    for risk in held[:NOTICE_HELD_ROWS]:
        row = risk.get("key", {})
        for record in risk.get("open_records", [])[:3]:
            shown = [
                f"{name} {_noticed(name, row)} here, {_noticed(name, record['key'])} open" if name in _SHOWN_BY_VALUE
                else name
                for name in record.get("differs", [])
            ]  # fmt: skip
            lines.append(f"- line {risk.get('line')}: differs from an open record in {'; '.join(shown)}")
        lines += resolution_lines(feed, [risk["id"]])
    if total > NOTICE_HELD_ROWS:
        lines.append(f"... and {total - NOTICE_HELD_ROWS} more in the report")
    return [*lines, bucket_route(feed)]


def _noticed(name: str, key: dict[str, str]) -> str:
    """A key part as a notice, which leaves the district's account, shows it: a Site ID is checked only as a
    whole number, which a shifted row's student ID is too, so a long one is not shown (``summary_id``)."""
    value = key.get(name, "")
    return summary_id(value) if name == "site_id" else value or "(empty)"


def _differs(record: dict[str, Any]) -> str:
    """How one open record differs from the row: the key parts by name, dates and sites with the record's value
    (so two open records that differ in the same part are told apart)."""
    key = record.get("key") or {}
    return ", ".join(
        f"{name} {key[name] or '(empty)'}" if name in _SHOWN_BY_VALUE and name in key else name
        for name in record.get("differs", [])
    )
