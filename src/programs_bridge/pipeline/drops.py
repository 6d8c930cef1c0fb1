"""What the drops beside the nightly exports share: one run each, exactly once, filed and reported.

A feed's folder ``resolutions/<feed>/`` takes a clerk's decisions about held rows (``resolutions_drop.py``)
and ``illuminate/<feed>/`` a report of Illuminate's own records (``illuminate_drop.py``).  Each dropped
object version is a run like an export's (``pipeline.run``: the same ``Run``, run id, journal entry,
failure reporting): its work ends in an ``Ending``, and then, in this order,

1. the report is written whole (JSON and Markdown summary) and the journal says ``COMMITTED``: a retry from
   here never does the work again (a seed retried would find itself seeded and report nothing);
2. the object version is filed under ``processed/`` or ``rejected/`` (copied, then that version deleted)
   and the journal says ``FILED``;
3. the journal says ``FINISHED``, the metrics go out, and SNS tells whoever must know.

A failure outside the drop (AWS, the feed's configuration: a ``ConfigError`` from the work) is reported as
``failed`` by ``pipeline.run.journaled``, as an export's is: the object stays in its folder and the queue
retries it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from programs_bridge.pipeline.journal import Stage
from programs_bridge.pipeline.observe import emit_drop_metrics, logger
from programs_bridge.pipeline.run import Outcome, Run, Services, Source, _iso, journaled
from programs_bridge.report.conversion import report_text, split_report

#: Findings the Markdown summary lists; the JSON report has them all.
SUMMARY_FINDINGS = 10


@dataclass(frozen=True)
class Ending:
    """How a drop's work ended: its status, a sentence why (None when nothing needs saying), its folder."""

    status: str
    reason: str | None
    folder: str = "processed"
    #: Metric name -> value (``observe.DROP_METRICS``, or ``FilesRejected``).
    metrics: Mapping[str, int] = field(default_factory=dict)
    #: Send an SNS notice (anything rejected, a seed done, findings to act on).
    notify: bool = False
    #: The notice's subject after the feed's name, when the noun and the status do not say it well.
    subject: str | None = None


@dataclass(frozen=True)
class DropKind:
    """One kind of drop: what it is called in reports and notices, and its work."""

    name: str
    #: What the object is, in a notice's subject ("resolutions", "Illuminate report").
    noun: str
    work: Callable[[Run], Ending]
    #: The Markdown summary's lines about the work, from the finished report's head.
    summary: Callable[[dict[str, Any]], list[str]]


def run_drop(source: Source, services: Services, kind: DropKind) -> Outcome:
    """Take one dropped object version through its work, its report, its filing and its notice, resuming
    after the last step an earlier attempt completed (``run.journaled``)."""

    def work(run: Run) -> Outcome:
        ending = kind.work(run) if run.entry.stage < Stage.COMMITTED else _stored_ending(run)
        return _finish(run, kind, ending)

    return journaled(source, services, work, kind=kind.name)


def _finish(run: Run, kind: DropKind, ending: Ending) -> Outcome:
    services, entry, feed = run.services, run.entry, run.feed
    filed_as = f"{ending.folder}/{feed}/{entry.run_id}-{run.source.name}"
    if run.entry.stage < Stage.COMMITTED:
        run.report.update(status=ending.status, reason=ending.reason, filed_as=filed_as)
        run.report["ending"] = {"metrics": dict(ending.metrics), "notify": ending.notify, "subject": ending.subject}
        run.report.update(finished_at=_iso(services.clock()), seconds=round(time.monotonic() - run.started, 3))
        run.stage = "report"
        save(run, kind)
        run.advance(Stage.COMMITTED)
    run.stage = "file"
    if run.entry.stage < Stage.FILED:
        services.storage.file_away(run.source.key, run.source.version, filed_as)
        run.advance(Stage.FILED)
    services.journal.advance(feed, entry.ref_id, Stage.FINISHED, ending.status)
    emit_drop_metrics(feed, ending.metrics)
    logger.info("run finished", extra={"status": ending.status, "kind": kind.name, "report": entry.report_key})
    if ending.notify:
        subject = f"programs-bridge {feed}: {ending.subject or f'{kind.noun} {ending.status}'}"
        body = f"{subject}\nrun {entry.run_id}\n{ending.reason or ''}\nreport: {entry.report_key}\n"
        services.notifier.notify(subject, body)
    return Outcome(entry.run_id, ending.status, entry.report_key)


def _stored_ending(run: Run) -> Ending:
    """The ending an earlier attempt reported before it was cut short: the report is complete already."""
    stored = run.services.storage.lines(run.entry.report_key)
    if stored is None:
        raise RuntimeError("the run's report is missing although the journal says it was written")
    with Path(os.devnull).open("w", encoding="utf-8") as nowhere:
        head = split_report(stored, nowhere)
    run.report = head
    ending = head.get("ending", {})
    folder = str(head.get("filed_as", "processed/")).split("/", 1)[0]
    return Ending(
        head["status"], head.get("reason"), folder, ending.get("metrics", {}), ending.get("notify", False),
        ending.get("subject"),
    )  # fmt: skip


def save(run: Run, kind: DropKind) -> None:
    """The JSON report, streamed with its findings, and its Markdown summary."""
    storage, key = run.services.storage, run.entry.report_key
    storage.put_stream(key, report_text(run.report, run.findings()), "application/json")
    storage.put_text(key.removesuffix(".json") + ".md", summary(run, kind), "text/markdown")


def summary(run: Run, kind: DropKind) -> str:
    """A short summary for a person: what was dropped, how it ended, what was done, the first findings."""
    head = run.report
    lines = [
        f"# programs-bridge {kind.noun} {head.get('run_id', '')}: {str(head.get('status', '')).upper()}",
        "",
        f"- feed: `{head.get('feed', '')}`",
        f"- dropped: `{head.get('source', {}).get('key', '')}`",
        f"- filed as: `{head.get('filed_as', '')}`",
    ]
    if head.get("reason"):
        lines.append(f"- reason: {head['reason']}")
    lines += kind.summary(head)
    findings = [json.loads(text) for text, _ in zip(run.findings(), range(SUMMARY_FINDINGS), strict=False)]
    if findings:
        lines += ["", "## Findings", "", "| line | code | message |", "|---|---|---|"]
        lines += [
            f"| {f.get('line') or ''} | {f.get('code', '')} | {str(f.get('message', '')).replace('|', '/')} |"
            for f in findings
        ]
    lines += ["", "The JSON report next to this file has every detail."]
    return "\n".join(lines) + "\n"
