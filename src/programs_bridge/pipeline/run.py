"""The stages of one dropped export: fetch, convert, plan, deliver, commit, file, report.

Exactly once in effect.  Each object version gets a run id and a journal entry (``journal.py``).  Until the
plan is stored, nothing outside the function has changed, so a retry starts over.  Once it is stored (the
programs.txt to send under ``processed/``, the report marked ``in_progress`` under ``reports/``), a retry
never plans again: it delivers the stored file if that had not happened, commits (idempotent in the ledger
itself), files the source and finishes the stored report.  Re-delivering identical bytes after a crash
between delivery and its journal entry is the one repetition allowed: it leaves the server as one delivery
would.

A run that fails for reasons outside the export (configuration, SFTP, AWS) writes a ``failed`` report, tells
SNS and raises ``RunFailed``; the export stays in ``incoming/`` and the queue retries it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from programs_bridge.codetable import CodeTable, CodeTableError, parse_code_table
from programs_bridge.convert import Conversion, Status, convert_export, converted_rows
from programs_bridge.delivery.credentials import SftpCredentials
from programs_bridge.delivery.errors import DeliveryError
from programs_bridge.delivery.retry import RetryPolicy
from programs_bridge.delivery.sftp import DeliveryReceipt, SftpTarget
from programs_bridge.layout import Layout, custom_layout
from programs_bridge.ledger.commit import commit
from programs_bridge.ledger.model import Row
from programs_bridge.ledger.plan import make_plan
from programs_bridge.ledger.store import LedgerStore, RunRecord
from programs_bridge.pipeline.config import ConfigError, FeedConfig, parse_feed_config
from programs_bridge.pipeline.journal import Journal, LastDelivered, RunEntry, Stage
from programs_bridge.pipeline.observe import Notifier, emit_run_metrics, logger, tracer
from programs_bridge.pipeline.storage import Storage
from programs_bridge.render import OutputFormat, render_header
from programs_bridge.run_report import RunStatus, counts, markdown_summary, run_report_json

Deliver = Callable[[Path, SftpTarget, SftpCredentials, RetryPolicy], DeliveryReceipt]
LoadCredentials = Callable[[str], SftpCredentials]


class RunFailed(Exception):
    """The run could not finish for a reason outside the export; it is reported and will be retried."""


@dataclass(frozen=True)
class Services:
    """The adapters a run talks to; the handler wires real ones, tests and the demo wire local ones."""

    storage: Storage
    ledger: LedgerStore
    journal: Journal
    deliver: Deliver
    credentials: LoadCredentials
    notifier: Notifier
    workdir: Path
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Source:
    """One export version in the bucket."""

    feed: str
    key: str
    version_id: str | None
    etag: str
    last_modified: datetime

    @property
    def ref_id(self) -> str:
        """Stable id of these bytes: bucket, key and version (or ETag), hashed."""
        return hashlib.sha256(f"{self.key}\0{self.version_id or self.etag}".encode()).hexdigest()[:16]

    @property
    def run_id(self) -> str:
        return f"{self.last_modified.astimezone(UTC):%Y%m%dT%H%M%SZ}-{self.ref_id[:8]}"

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Outcome:
    run_id: str
    status: str
    report_key: str


def run_source(source: Source, services: Services) -> Outcome:
    """Take one export through every stage, resuming where an earlier attempt stopped."""
    run_id = source.run_id
    entry = services.journal.begin(
        source.feed,
        RunEntry(
            ref_id=source.ref_id,
            run_id=run_id,
            stage=Stage.STARTED,
            status=RunStatus.IN_PROGRESS.value,
            report_key=f"reports/{source.feed}/{run_id}.json",
            sent_key=f"processed/{source.feed}/{run_id}.programs.txt",
            layout=(),
        ),
    )
    logger.append_keys(feed=source.feed, run_id=entry.run_id)
    try:
        if entry.stage is Stage.FINISHED:
            logger.info("run already finished", extra={"status": entry.status})
            return Outcome(entry.run_id, entry.status, entry.report_key)
        workdir = services.workdir / entry.run_id
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            if entry.stage is Stage.STARTED:
                return _fresh(source, entry, services, workdir)
            return _resume(source, entry, services, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        logger.remove_keys(["feed", "run_id"])


# --- a run that has not stored its plan yet ----------------------------------------------------------


def _fresh(source: Source, entry: RunEntry, services: Services, workdir: Path) -> Outcome:
    head = _head(source, entry)
    started = time.monotonic()
    try:
        config = _load_config(source.feed, services.storage)
        code_table = _load_code_table(config, services.storage)
    except (ConfigError, CodeTableError) as exc:
        return _fail(source, entry, services, head, None, str(exc), failure="config")

    with _stage(head, "fetch"):
        fetched = services.storage.fetch(source.key, source.version_id, workdir / "export")
    head["source"].update(sha256=fetched.sha256, size=fetched.size)
    logger.info("fetched", extra={"stage": "fetch", "bytes": fetched.size})

    last = services.journal.last_delivered(source.feed)
    if last is not None and last.run_id != entry.run_id:
        if last.sha256 == fetched.sha256:
            reason = f"the same bytes as run {last.run_id}, already delivered: nothing sent again"
            return _file_and_report(source, entry, services, head, None, RunStatus.REPEAT, reason, "processed")
        if last.source_time > _iso(source.last_modified):
            reason = f"older than the export of run {last.run_id}, already delivered: sending it would roll back"
            return _file_and_report(source, entry, services, head, None, RunStatus.SUPERSEDED, reason, "processed")

    with _stage(head, "convert"):
        options = config.convert_options(code_table, today=source.last_modified.date())
        conversion = convert_export(fetched.path, workdir / "converted.txt", options)
    logger.info(
        "converted",
        extra={"stage": "convert", "status": conversion.status.value, "rows_read": conversion.rows_read,
               "rows_rejected": conversion.rows_rejected, "profile": conversion.profile},
    )  # fmt: skip
    try:
        if conversion.status is Status.REJECTED:
            head["counts"] = counts(conversion, None, 0)
            return _file_and_report(
                source, entry, services, head, conversion, RunStatus.REJECTED, conversion.reason or "", "rejected"
            )
        layout = options.output.layout
        with _stage(head, "plan"):
            plan = make_plan(
                services.ledger, converted_rows(conversion), layout, feed=source.feed,
                kind=config.export, policy=config.duplicate_policy,
            )  # fmt: skip
        to_send = workdir / "programs.txt"
        sent = _write_programs(to_send, options.output, plan.rows_to_send(converted_rows(conversion)))
        head["counts"] = counts(conversion, plan, sent)
        head["ledger"] = plan.report()
        head["sent"] = {"key": entry.sent_key, "rows": sent}
        logger.info("planned", extra={"stage": "plan", "counts": head["counts"]})
        # Freeze the plan: from here on a retry delivers and commits exactly this.
        services.storage.put_file(entry.sent_key, to_send, "text/plain; charset=utf-8")
        _save_report(services.storage, entry.report_key, head, conversion)
        layout_names = tuple(f.value for f in layout.fields)
        services.journal.advance(source.feed, entry.ref_id, Stage.PLANNED, RunStatus.IN_PROGRESS.value, layout_names)
        frozen = replace(entry, stage=Stage.PLANNED, layout=layout_names)
        return _deliver_and_finish(source, frozen, services, workdir, head, to_send, config, started)
    finally:
        conversion.findings.close()


def _write_programs(path: Path, output: OutputFormat, rows: Iterable[Row]) -> int:
    """The programs.txt to send: the planned rows after the duplicate policy, in the feed's format."""
    written = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        if output.header:
            out.write(render_header(output))
        for _, fields in rows:
            out.write("\t".join(fields) + output.newline)
            written += 1
    return written


# --- a run whose plan is stored ----------------------------------------------------------------------


def _resume(source: Source, entry: RunEntry, services: Services, workdir: Path) -> Outcome:
    logger.info("resuming run", extra={"stage": entry.stage.name.lower()})
    stored = services.storage.read_text(entry.report_key)
    if stored is None:  # the report is written before PLANNED is recorded, so this cannot happen
        raise RunFailed(f"run {entry.run_id} is past planning but its report {entry.report_key} is missing")
    head = json.loads(stored)
    try:
        config = _load_config(source.feed, services.storage)
    except ConfigError as exc:
        return _fail(source, entry, services, head, None, str(exc), failure="config", stored=True)
    to_send = workdir / "programs.txt"
    services.storage.fetch(entry.sent_key, None, to_send)
    return _deliver_and_finish(source, entry, services, workdir, head, to_send, config, time.monotonic())


def _deliver_and_finish(
    source: Source,
    entry: RunEntry,
    services: Services,
    workdir: Path,
    head: dict[str, Any],
    to_send: Path,
    config: FeedConfig,
    started: float,
) -> Outcome:
    feed = source.feed
    delivery_seconds: float | None = None
    if entry.stage < Stage.DELIVERED:
        began = time.monotonic()
        try:
            with _stage(head, "deliver"):
                credentials = services.credentials(config.sftp.secret)
                receipt = services.deliver(to_send, config.sftp_target(), credentials, config.retry_policy())
        except DeliveryError as exc:
            head["delivery"] = {"error": exc.code, "attempts": exc.attempts}
            return _fail(source, entry, services, head, None, str(exc), failure="delivery", stored=True)
        delivery_seconds = time.monotonic() - began
        head["delivery"] = {
            "remote_path": receipt.remote_path, "size": receipt.size, "attempts": receipt.attempts,
            "stale_temps_removed": receipt.stale_temps_removed, "seconds": round(delivery_seconds, 3),
            "host": config.sftp.host,
        }  # fmt: skip
        logger.info("delivered", extra={"stage": "deliver", "bytes": receipt.size, "attempts": receipt.attempts})
        _save_report(services.storage, entry.report_key, head, None)
        services.journal.advance(feed, entry.ref_id, Stage.DELIVERED, RunStatus.IN_PROGRESS.value)

    if entry.stage < Stage.COMMITTED:
        layout = custom_layout(entry.layout) if entry.layout else config.output_layout
        record = RunRecord(
            run_id=entry.run_id,
            source_key=source.key,
            source_version=source.version_id or source.etag,
            sha256=head["source"].get("sha256", ""),
            report_location=entry.report_key,
            counts=head.get("counts", {}),
        )
        with _stage(head, "commit"):
            rows = _sent_rows(to_send, layout, header=config.header)
            result = commit(services.ledger, record, rows, layout, feed=feed)
        head["commit"] = result.to_json()
        services.journal.set_delivered(
            feed, LastDelivered(entry.run_id, head["source"].get("sha256", ""), _iso(source.last_modified))
        )
        services.journal.advance(feed, entry.ref_id, Stage.COMMITTED, RunStatus.IN_PROGRESS.value)
        logger.info("committed", extra={"stage": "commit", "records_written": result.records_written})

    return _file_and_report(source, entry, services, head, None, RunStatus.DELIVERED, None, "processed",
                            delivery_seconds=delivery_seconds, started=started)  # fmt: skip


def _sent_rows(path: Path, layout: Layout, *, header: bool) -> Iterator[Row]:
    """The delivered programs.txt read back for the ledger (line numbers are programs.txt lines)."""
    with path.open(encoding="utf-8", newline="") as rows:
        if header:
            rows.readline()
        for number, text in enumerate(rows, start=2 if header else 1):
            yield number, text.rstrip("\r\n").split("\t")


# --- endings -------------------------------------------------------------------------------------------


def _file_and_report(
    source: Source,
    entry: RunEntry,
    services: Services,
    head: dict[str, Any],
    conversion: Conversion | None,
    status: RunStatus,
    reason: str | None,
    folder: str,
    *,
    delivery_seconds: float | None = None,
    started: float | None = None,
) -> Outcome:
    feed = source.feed
    filed_as = f"{folder}/{feed}/{entry.run_id}-{source.name}"
    if entry.stage < Stage.FILED and services.storage.exists(source.key):
        services.storage.file_away(source.key, source.version_id, filed_as)
    services.journal.advance(feed, entry.ref_id, Stage.FILED, RunStatus.IN_PROGRESS.value)
    head.update(status=status.value, filed_as=filed_as, finished_at=_iso(services.clock()))
    if reason is not None:
        head["reason"] = reason
    if started is not None:
        head["seconds"] = round(time.monotonic() - started, 3)
    _save_report(services.storage, entry.report_key, head, conversion)
    services.journal.advance(feed, entry.ref_id, Stage.FINISHED, status.value)
    run_counts = head.get("counts", {})
    emit_run_metrics(feed, status.value, run_counts, delivery_seconds=delivery_seconds)
    logger.info("run finished", extra={"status": status.value, "counts": run_counts, "report": entry.report_key})
    _notify(services.notifier, feed, entry, status, run_counts, reason)
    return Outcome(entry.run_id, status.value, entry.report_key)


def _fail(
    source: Source,
    entry: RunEntry,
    services: Services,
    head: dict[str, Any],
    conversion: Conversion | None,
    reason: str,
    *,
    failure: str,
    stored: bool = False,
) -> Outcome:
    """Report a failure, leave the export in place, and raise so the queue retries."""
    head.update(status=RunStatus.FAILED.value, reason=reason, failure=failure, finished_at=_iso(services.clock()))
    _save_report(services.storage, entry.report_key, head, conversion)
    emit_run_metrics(source.feed, RunStatus.FAILED.value, head.get("counts", {}), failure=failure)
    logger.error("run failed", extra={"status": "failed", "failure": failure, "report": entry.report_key})
    _notify(services.notifier, source.feed, entry, RunStatus.FAILED, head.get("counts", {}), reason)
    raise RunFailed(f"{failure} failure in run {entry.run_id}: {reason}")


def _notify(
    notifier: Notifier, feed: str, entry: RunEntry, status: RunStatus, run_counts: dict[str, int], reason: str | None
) -> None:
    risks = run_counts.get("duplicate_risks", 0)
    if status in (RunStatus.REJECTED, RunStatus.FAILED):
        subject = f"programs-bridge {feed}: export {status.value}"
    elif risks:
        subject = f"programs-bridge {feed}: {risks} duplicate risk(s)"
    else:
        return
    notifier.notify(subject, f"{subject}\nrun {entry.run_id}\n{reason or ''}\nreport: {entry.report_key}\n")


def _head(source: Source, entry: RunEntry) -> dict[str, Any]:
    return {
        "report_version": 1,
        "run_id": entry.run_id,
        "feed": source.feed,
        "status": RunStatus.IN_PROGRESS.value,
        "reason": None,
        "source": {
            "key": source.key,
            "version": source.version_id or source.etag,
            "last_modified": _iso(source.last_modified),
        },
        "counts": counts(None, None, 0),
    }


def _save_report(storage: Storage, key: str, head: dict[str, Any], conversion: Conversion | None) -> None:
    """The JSON report and its Markdown summary.  With the conversion, the findings are streamed in;
    without it (a resumed run), they are already in ``head`` from the stored report."""
    if conversion is not None:
        text = run_report_json(conversion, head)
    else:
        text = json.dumps(head, ensure_ascii=False, indent=2) + "\n"
    storage.put_text(key, text, "application/json")
    storage.put_text(key.removesuffix(".json") + ".md", markdown_summary(head, conversion), "text/markdown")
    if conversion is not None:  # keep the findings in ``head`` for later saves of the same run
        stored = json.loads(text)
        head.clear()
        head.update(stored)


@contextmanager
def _stage(head: dict[str, Any], name: str) -> Iterator[None]:
    """One stage: an X-Ray subsegment, and its seconds in the report (``stages``), for the dashboard-less."""
    began = time.monotonic()
    with tracer.provider.in_subsegment(f"## {name}"):
        yield
    head.setdefault("stages", {})[name] = round(time.monotonic() - began, 3)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load_config(feed: str, storage: Storage) -> FeedConfig:
    key = f"config/{feed}.toml"
    text = storage.read_text(key)
    if text is None:
        raise ConfigError(f"no configuration for feed {feed!r}: put it at {key} (see the README)")
    return parse_feed_config(text, key)


def _load_code_table(config: FeedConfig, storage: Storage) -> CodeTable | None:
    if config.code_table is None:
        return None
    key = f"config/{config.code_table}"
    text = storage.read_text(key)
    if text is None:
        raise ConfigError(f"the code table {key} named in the feed's configuration is not in the bucket")
    return parse_code_table(text, key)
