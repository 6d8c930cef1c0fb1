"""The stages of one dropped export: fetch, convert, plan, deliver, commit, file, report.

Exactly once in effect.  Each object version gets a run id and a journal entry (``journal.py``).  Until the
plan is stored, nothing outside the function has changed, so a retry starts over.  Once it is stored (the
programs.txt to send under ``processed/``, the report marked ``in_progress`` under ``reports/``), a retry
does not plan again: it delivers the stored file if that had not happened, commits (idempotent in the ledger
itself), files the source and finishes the stored report.  Re-delivering identical bytes after a crash
between delivery and its journal entry is the one repetition allowed: it leaves the server as one delivery
would.

A retried run never rolls Illuminate back.  Before it delivers a stored plan it checks what was delivered
since it planned: a newer export of the feed makes it ``superseded`` (reported, notified, nothing sent),
and a plan that another run has committed over is made again.  A run delivered but overtaken before its
ledger commit leaves the ledger to the newer run.

Every failure ends in a ``failed`` report, a metric and an SNS notice, then ``RunFailed`` so the queue
retries; the export stays in ``incoming/``.  Failures have a kind (``config``, ``delivery``, ``aws``,
``timeout``, ``internal``) and a reason that names the stage, never a student's data.  A run that runs out
of the invocation's time at a safe point (a long first commit) raises ``RunContinues`` instead, and the
handler has it picked up again at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from programs_bridge.convert.codetable import MAX_BYTES as CODE_TABLE_BYTES
from programs_bridge.convert.codetable import CodeTable, CodeTableError, read_code_table
from programs_bridge.convert.engine import Conversion, Status, convert_export, converted_rows
from programs_bridge.convert.finding_log import FindingLog
from programs_bridge.delivery.credentials import SftpCredentials
from programs_bridge.delivery.errors import DeliveryError
from programs_bridge.delivery.retry import RetryPolicy
from programs_bridge.delivery.sftp import DeliveryReceipt, SftpTarget
from programs_bridge.ledger.commit import commit
from programs_bridge.ledger.model import Row, is_unseed_run
from programs_bridge.ledger.plan import Plan, make_plan
from programs_bridge.ledger.shrink import REASON_CODE as SHRUNKEN
from programs_bridge.ledger.shrink import ShrinkVerdict, judge_plan
from programs_bridge.ledger.snapshot import LedgerSnapshot
from programs_bridge.ledger.store import LedgerError, LedgerStore, RunRecord, StaleLedgerError
from programs_bridge.pipeline.budget import InvocationBudget
from programs_bridge.pipeline.config import ConfigError, FeedConfig, parse_feed_config
from programs_bridge.pipeline.journal import Journal, LastDelivered, RunEntry, Stage
from programs_bridge.pipeline.observe import Notifier, emit_continued, emit_run_metrics, logger, tracer
from programs_bridge.pipeline.storage import ObjectVersion, Storage
from programs_bridge.programs_txt.layout import Layout, custom_layout
from programs_bridge.programs_txt.render import OutputFormat, render_header
from programs_bridge.report.conversion import report_text, split_report
from programs_bridge.report.run import (
    FIRST_FINDINGS,
    RunStatus,
    counts,
    held_lines,
    markdown_summary,
    run_report_head,
)

#: ``deliver(file, target, credentials, retry, deadline)``: the deadline is a ``time.monotonic()`` value.
Deliver = Callable[[Path, SftpTarget, SftpCredentials, RetryPolicy, float | None], DeliveryReceipt]
LoadCredentials = Callable[[str], SftpCredentials]

#: Invocations one commit may span before the run fails as ``timeout`` (a first night of 2M records takes
#: two or three; twenty means the table cannot keep up).
MAX_COMMIT_ATTEMPTS = 20
#: A feed's configuration is a few lines; a larger object there is not one (and is not read whole).
_CONFIG_BYTES = 1 << 20


class RunFailed(Exception):
    """The run could not finish for a reason outside the export; it is reported and will be retried."""


class RunContinues(Exception):
    """The run stopped at a safe point because the invocation's time ran out; continue it in a new one."""

    def __init__(self, source: Source, progress: str) -> None:
        super().__init__(f"run of {source.name} continues in a new invocation: {progress}")
        self.source = source


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
    budget: InvocationBudget = field(default_factory=InvocationBudget.unlimited)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def ref_id(key: str, version_id: str | None, etag: str) -> str:
    """Stable id of one object version's bytes: key and version (or ETag), hashed."""
    return hashlib.sha256(f"{key}\0{version_id or etag}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Source:
    """One export version in the bucket."""

    feed: str
    key: str
    version: ObjectVersion

    @property
    def version_id(self) -> str | None:
        return self.version.version_id

    @property
    def last_modified(self) -> datetime:
        return self.version.last_modified

    @property
    def ref_id(self) -> str:
        return ref_id(self.key, self.version_id, self.version.etag)

    @property
    def run_id(self) -> str:
        return f"{self.last_modified.astimezone(UTC):%Y%m%dT%H%M%SZ}-{self.ref_id[:8]}"

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def uploaded(self) -> str:
        return _iso(self.last_modified)


@dataclass(frozen=True)
class Outcome:
    run_id: str
    status: str
    report_key: str


def _spooled(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            yield line.rstrip("\n")


def _no_findings() -> Iterable[str]:
    return ()


@dataclass
class Run:
    """One export version's run: what every stage reads and adds to.  ``report`` is the run report so far."""

    source: Source
    entry: RunEntry
    services: Services
    workdir: Path
    report: dict[str, Any]
    stage: str = "start"
    """The stage under way, named in a failure's reason."""
    started: float = field(default_factory=time.monotonic)
    retried: bool = False
    """An earlier attempt began this run (its stored report may hold failures to carry on)."""
    #: The report's findings as JSON texts, walked again at every save (never all in memory).
    findings: Callable[[], Iterable[str]] = _no_findings
    first_findings: list[dict[str, Any]] = field(default_factory=list)
    #: The converter's finding log, while this run streams from it; closed when the run ends.
    finding_log: FindingLog | None = None

    @property
    def feed(self) -> str:
        return self.source.feed

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """One stage: an X-Ray subsegment, and its seconds in the report (``stages``)."""
        self.stage = name
        began = time.monotonic()
        with tracer.provider.in_subsegment(f"## {name}"):
            yield
        self.report.setdefault("stages", {})[name] = round(time.monotonic() - began, 3)

    def advance(self, stage: Stage) -> None:
        self.services.journal.advance(self.feed, self.entry.ref_id, stage, RunStatus.IN_PROGRESS.value)
        self.entry = replace(self.entry, stage=stage)

    def save(self) -> None:
        """The JSON report, streamed with its findings, and its Markdown summary."""
        storage, key = self.services.storage, self.entry.report_key
        storage.put_stream(key, report_text(self.report, self.findings()), "application/json")
        summary = markdown_summary(self.report, self.first_findings)
        storage.put_text(key.removesuffix(".json") + ".md", summary, "text/markdown")

    def converted(self, conversion: Conversion) -> None:
        """Take the converter's part of the report: its head now, its findings streamed at every save."""
        self.report = run_report_head(conversion, self.report)
        self.findings = conversion.findings.json_lines
        self.first_findings = [f.to_json() for f in conversion.findings.first[:FIRST_FINDINGS]]
        self.finding_log = conversion.findings

    def load_stored_report(self, lines: Iterable[str]) -> None:
        """Take the report an earlier attempt stored: its head in memory, its findings spooled to disk."""
        spool = self.workdir / "findings.jsonl"
        with spool.open("w", encoding="utf-8") as out:
            self.report = split_report(lines, out)
        self.findings = lambda: _spooled(spool)
        self.first_findings = [json.loads(line) for line in islice(_spooled(spool), FIRST_FINDINGS)]


def run_source(source: Source, services: Services) -> Outcome:
    """Take one export through every stage, resuming where an earlier attempt stopped."""
    sent_key = f"processed/{source.feed}/{source.run_id}.programs.txt"
    return journaled(source, services, lambda run: _fresh(run) if run.entry.stage is Stage.STARTED else _resume(run),
                     sent_key=sent_key)  # fmt: skip


def journaled(
    source: Source, services: Services, work: Callable[[Run], Outcome], *, sent_key: str = "", kind: str | None = None
) -> Outcome:
    """One object version's run, exactly once in effect: its journal entry begun (or found), ``work`` done on
    a ``Run`` unless an earlier attempt finished it, and every failure ending in a report, a metric and a
    notice.  Exports (``run_source``) and the drops beside them (``drops.run_drop``, ``kind`` in the report)
    share it."""
    new = RunEntry(
        ref_id=source.ref_id,
        run_id=source.run_id,
        stage=Stage.STARTED,
        status=RunStatus.IN_PROGRESS.value,
        report_key=f"reports/{source.feed}/{source.run_id}.json",
        sent_key=sent_key,
        layout=(),
        source_time=source.uploaded,
    )
    entry = services.journal.begin(source.feed, new)
    logger.append_keys(feed=source.feed, run_id=entry.run_id)
    try:
        if entry.stage is Stage.FINISHED:
            logger.info("run already finished", extra={"status": entry.status, "kind": kind or "export"})
            return Outcome(entry.run_id, entry.status, entry.report_key)
        workdir = services.workdir / entry.run_id
        workdir.mkdir(parents=True, exist_ok=True)
        report = _new_report(source, entry) | ({"kind": kind} if kind else {})
        run = Run(source, entry, services, workdir, report, retried=entry is not new)
        try:
            return work(run)
        except (RunFailed, RunContinues):
            raise
        except Exception as exc:  # every other failure still ends in a report, a metric and a notice
            return _failed(run, exc)
        finally:
            if run.finding_log is not None:
                run.finding_log.close()
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        logger.remove_keys(["feed", "run_id"])


def _failed(run: Run, exc: Exception) -> Outcome:
    """An unexpected failure's report: the feed's configuration (a ``ConfigError`` a drop's work raised) is a
    ``config`` failure, which the queue's retry gets past once it is fixed; anything else is described by its
    kind and stage, never by its message."""
    if isinstance(exc, ConfigError):
        return _fail(run, "config", str(exc))
    failure, reason = _describe(exc, run.stage)
    _log_failure(exc, run.stage)
    return _fail(run, failure, reason)


# --- a run that has not stored its plan yet ----------------------------------------------------------


def _fresh(run: Run) -> Outcome:
    services, source = run.services, run.source
    if run.retried:
        _carry_earlier_failures(run)
    try:
        config = _load_config(source.feed, services.storage)
        code_table = _load_code_table(config, services.storage)
    except (ConfigError, CodeTableError) as exc:
        return _fail(run, "config", str(exc))

    with run.step("fetch"):
        fetched = services.storage.fetch(source.key, source.version_id, run.workdir / "export")
    run.report["source"].update(sha256=fetched.sha256, size=fetched.size)
    logger.info("fetched", extra={"stage": "fetch", "bytes": fetched.size})
    ending = _overtaken(run, fetched.sha256)
    if ending is not None:
        return _end(run, *ending)

    with run.step("convert"):
        options = config.convert_options(code_table, today=source.last_modified.date())
        conversion = convert_export(fetched.path, run.workdir / "converted.txt", options)
    logger.info(
        "converted",
        extra={"stage": "convert", "status": conversion.status.value, "rows_read": conversion.rows_read,
               "rows_rejected": conversion.rows_rejected, "profile": conversion.profile},
    )  # fmt: skip
    run.converted(conversion)
    if conversion.status is Status.REJECTED:
        run.report["counts"] = counts(conversion, None, 0)
        return _end(run, RunStatus.REJECTED, conversion.reason or "", "rejected")
    layout = options.output.layout
    with run.step("plan"):
        plan = make_plan(
            services.ledger, converted_rows(conversion), layout, feed=source.feed,
            kind=config.export, policy=config.duplicate_policy,
        )  # fmt: skip
    if plan.pending.unfinished is not None:
        return _await_unfinished(run, conversion, plan, plan.pending.unfinished)
    if plan.pending.seeds_to_repeat:
        return _await_reseed(run, conversion, plan, plan.pending.seeds_to_repeat)
    if config.unseeded == "hold" and plan.snapshot.head_run is None and not len(plan.snapshot):
        return _await_seed(run, conversion, plan)
    verdict = judge_plan(plan, config.shrink_guard.rule())
    run.report["shrink_guard"] = verdict.to_json()
    if verdict.fires:
        return _hold_shrunken(run, conversion, plan, verdict)
    to_send = run.workdir / "programs.txt"
    sent = _write_programs(to_send, options.output, plan.rows_to_send(converted_rows(conversion)))
    run.report["counts"] = counts(conversion, plan, sent)
    run.report["ledger"] = plan.report()
    run.report["sent"] = {"key": run.entry.sent_key, "rows": sent}
    logger.info("planned", extra={"stage": "plan", "counts": run.report["counts"]})
    # Freeze the plan: from here on a retry delivers and commits exactly this, or finds it overtaken.
    services.storage.put_file(run.entry.sent_key, to_send, "text/plain; charset=utf-8")
    run.save()
    services.ledger.put_held(source.feed, plan.held(run.entry.run_id))  # what `ledger resolve` can name
    layout_names = tuple(f.value for f in layout.fields)
    services.journal.freeze(source.feed, run.entry.ref_id, layout_names, plan.snapshot.head_run)
    run.entry = replace(run.entry, stage=Stage.PLANNED, layout=layout_names, planned_head=plan.snapshot.head_run)
    return _deliver_and_commit(run, config, to_send, plan.snapshot, plan.classification.missing)


def _await_seed(run: Run, conversion: Conversion, plan: Plan) -> Outcome:
    """End a feed's first run when its ledger knows nothing: checked against nothing, every exit whose key
    differs from a record Illuminate already holds would open a duplicate."""
    reason = (
        f"not delivered: feed {run.feed!r} has no ledger yet, so this first export could not be checked against "
        "what Illuminate already holds. Either seed the ledger from Illuminate's own program records (drop "
        f"Illuminate's report under illuminate/{run.feed}/, or run programs-bridge ledger seed REPORT --table "
        f"<LedgerTable> --feed {run.feed}; README: First night) "
        f'and drop this export again, or, if Illuminate holds nothing for this feed yet, set unseeded = "send" '
        f"in config/{run.feed}.toml and drop it again"
    )
    logger.warning("first export held: the feed's ledger was never seeded", extra={"stage": "plan"})
    return _end_unsent(run, conversion, plan, RunStatus.NEEDS_SEED, RunStatus.NEEDS_SEED.value, reason)


def _await_unfinished(run: Run, conversion: Conversion, plan: Plan, unfinished: str) -> Outcome:
    """End a run while a seed, or the undo of one, that was cut short holds the feed: the ledger holds only
    part of what it should, and an export checked against it could open the duplicates a seed prevents."""
    if is_unseed_run(unfinished):
        what, finish = "the undo of a seed", "run the same programs-bridge ledger unseed command again to finish it"
    else:
        what, finish = (
            "the seed",
            (
                f"seed the same report again to finish it (programs-bridge ledger seed REPORT --table <LedgerTable> "
                f"--feed {run.feed}; README: First night)"
            ),
        )
    reason = (
        f"not delivered: {what} {unfinished} of feed {run.feed!r} did not finish (it was cut short), so the "
        f"ledger holds only part of what it should and this export could not be checked against the rest: "
        f"{finish}, then drop this export again"
    )
    logger.warning("export held: the feed's last seed or undo did not finish", extra={"stage": "plan"})
    return _end_unsent(run, conversion, plan, RunStatus.NEEDS_SEED, RunStatus.NEEDS_SEED.value, reason)


def _await_reseed(run: Run, conversion: Conversion, plan: Plan, seeds: tuple[str, ...]) -> Outcome:
    """End a run while seeds marked ``reseed`` wait to be seeded again: the undo of another seed took out
    records their reports may also list, so Illuminate may hold records the ledger no longer knows."""
    reason = (
        f"not delivered: a seed of feed {run.feed!r} was undone, and it took out records that {len(seeds)} other "
        f"seed(s) may also list ({', '.join(seeds)}), so the ledger may lack records Illuminate holds and this "
        "export could not be checked against them: seed each of those reports again (programs-bridge ledger seed "
        f"REPORT --table <LedgerTable> --feed {run.feed}, the same command as before; README: First night), "
        "then drop this export again"
    )
    logger.warning("export held: seeds wait to be seeded again after an undo", extra={"stage": "plan"})
    return _end_unsent(run, conversion, plan, RunStatus.NEEDS_SEED, RunStatus.NEEDS_SEED.value, reason)


def _hold_shrunken(run: Run, conversion: Conversion, plan: Plan, verdict: ShrinkVerdict) -> Outcome:
    """End a run whose full export the shrink guard holds: nothing delivered, the ledger untouched (so the
    next complete export is planned against the same records), the export filed, a notice that says how to
    go on."""
    config_key = f"config/{run.feed}.toml"
    check = "Check that the SIS export job finished and drop a complete export"
    if verdict.after_seed:  # not a job that stopped half-way, necessarily: Illuminate may hold more than the SIS
        how_on = (
            "This is the first full export since the feed was seeded, so the guard compares it with what "
            f"Illuminate holds open. {check}. If it is complete and Illuminate holds records the SIS no longer "
            f"sends, set [shrink_guard] enabled = false in {config_key} for one night and drop this export again: "
            "those records stay open in Illuminate, and `programs-bridge ledger reconcile` lists them as "
            "open_not_exported"
        )
    else:
        how_on = (
            f"{check}; the ledger is unchanged, so it goes through as usual. If these records really ended (a new "
            f"school year, a school closed), set [shrink_guard] max_missing_share higher, or enabled = false, in "
            f"{config_key} and drop this export again"
        )
    reason = f"held, nothing delivered: {verdict.describe()}. {how_on}"
    logger.warning("export held by the shrink guard", extra={"stage": "plan", "shrink_guard": verdict.to_json()})
    return _end_unsent(run, conversion, plan, RunStatus.HELD, SHRUNKEN, reason)


def _end_unsent(run: Run, conversion: Conversion, plan: Plan, status: RunStatus, code: str, reason: str) -> Outcome:
    """End a planned run that sends nothing and commits nothing: the plan's counts and ledger section in the
    report, with the reason and its code."""
    run.report["counts"] = counts(conversion, plan, 0)
    run.report["ledger"] = plan.report()
    run.report["reason_code"] = code
    return _end(run, status, reason)


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


def _overtaken(run: Run, sha256: str) -> tuple[RunStatus, str] | None:
    """Whether what was delivered for the feed since makes sending this export wrong."""
    last = run.services.journal.last_delivered(run.feed)
    if last is None or last.run_id == run.entry.run_id:
        return None
    if last.sha256 == sha256 and not _resolved_since(run, last.source_time):
        return RunStatus.REPEAT, f"the same bytes as run {last.run_id}, already delivered: nothing sent again"
    if last.is_newer_than(run.source.key, run.source.version_id, run.source.uploaded):
        return (
            RunStatus.SUPERSEDED,
            f"older than the export of run {last.run_id}, already delivered: sending it would roll Illuminate back",
        )
    return None


def _resolved_since(run: Run, delivered_upload: str) -> bool:
    """Whether a clerk resolved a held row after the delivered export was uploaded: then the same bytes
    make a different programs.txt, and are planned again rather than skipped as a repeat."""
    return any(r.at >= delivered_upload for r in run.services.ledger.resolutions(run.feed))  # same second: yes


# --- a run whose plan is stored ----------------------------------------------------------------------


def _resume(run: Run) -> Outcome:
    services, entry = run.services, run.entry
    logger.info("resuming run", extra={"stage": entry.stage.name.lower()})
    stored = services.storage.lines(entry.report_key)
    if stored is None:  # the report is written before PLANNED is recorded, so this is a fault
        return _fail(run, "internal", f"the run is past planning but its report {entry.report_key} is missing")
    run.load_stored_report(stored)
    _clear_failure(run.report)
    try:
        config = _load_config(run.feed, services.storage)
    except ConfigError as exc:
        return _fail(run, "config", str(exc))

    if entry.stage < Stage.DELIVERED:
        ending = _overtaken(run, run.report["source"].get("sha256", ""))
        if ending is not None:
            return _end(run, *ending)
        head = services.ledger.head(run.feed)
        if head != entry.planned_head and services.journal.replan(run.feed, entry.ref_id):
            # Another run committed since this plan was made: its classes (exit, duplicate risk) are stale.
            logger.info("plan overtaken by a later commit: planning again", extra={"stage": "plan"})
            earlier = run.report.get("earlier_failures")
            run.entry = replace(entry, stage=Stage.STARTED, layout=(), planned_head=None)
            run.report = _new_report(run.source, run.entry)
            if earlier:
                run.report["earlier_failures"] = earlier
            run.findings, run.first_findings, run.retried = _no_findings, [], False  # nothing more to read back
            return _fresh(run)
    elif entry.stage < Stage.COMMITTED:
        last = services.journal.last_delivered(run.feed)
        if last is not None and last.run_id != entry.run_id:
            reason = (
                f"delivered, but the export of run {last.run_id} was delivered after it before this run's ledger "
                f"commit: Illuminate and the ledger hold run {last.run_id}'s file"
            )
            return _end(run, RunStatus.SUPERSEDED, reason)
    to_send = run.workdir / "programs.txt"
    services.storage.fetch(entry.sent_key, None, to_send)
    return _deliver_and_commit(run, config, to_send, None)


def _deliver_and_commit(
    run: Run, config: FeedConfig, to_send: Path, snapshot: LedgerSnapshot | None, missing: Iterable[int] = ()
) -> Outcome:
    """Deliver the frozen plan (unless that is done), then commit it; ``snapshot`` is the plan's, when the
    plan was made in this invocation, and ``missing`` the records it found missing (marked by the commit)."""
    services, source = run.services, run.source
    delivery_seconds: float | None = None
    if run.entry.stage < Stage.DELIVERED:
        began = time.monotonic()
        try:
            with run.step("deliver"):
                credentials = services.credentials(config.sftp.secret)
                receipt = services.deliver(
                    to_send, config.sftp_target(), credentials, config.retry_policy(), services.budget.deadline()
                )
        except DeliveryError as exc:
            run.report["delivery"] = {"error": exc.code, "attempts": exc.attempts}
            return _fail(run, "delivery", str(exc))
        delivery_seconds = time.monotonic() - began
        run.report["delivery"] = {
            "remote_path": receipt.remote_path, "size": receipt.size, "attempts": receipt.attempts,
            "stale_temps_removed": receipt.stale_temps_removed, "seconds": round(delivery_seconds, 3),
            "host": config.sftp.host,
        }  # fmt: skip
        logger.info("delivered", extra={"stage": "deliver", "bytes": receipt.size, "attempts": receipt.attempts})
        # What is on the server now, before anything else can fail: no later run may mistake it.
        sha256 = run.report["source"].get("sha256", "")
        older = services.storage.older_versions(source.key, source.version_id)
        services.journal.set_delivered(
            run.feed, LastDelivered(run.entry.run_id, sha256, source.uploaded, source.key, older)
        )
        run.save()
        run.advance(Stage.DELIVERED)

    if run.entry.stage < Stage.COMMITTED:
        layout = custom_layout(run.entry.layout) if run.entry.layout else config.output_layout
        record = RunRecord(
            run_id=run.entry.run_id,
            source_key=source.key,
            source_version=source.version_id or source.version.etag,
            sha256=run.report["source"].get("sha256", ""),
            report_location=run.entry.report_key,
            counts=run.report.get("counts", {}),
        )
        try:
            with run.step("commit"), _sent_rows(to_send, layout, header=config.header) as rows:
                result = commit(
                    services.ledger, record, rows, layout, feed=run.feed, snapshot=snapshot,
                    planned_head=run.entry.planned_head, stop=services.budget.exhausted, missing=missing,
                )  # fmt: skip
        except StaleLedgerError:
            reason = "delivered, but another run committed to the feed's ledger first: the ledger keeps that run's"
            return _end(run, RunStatus.SUPERSEDED, reason + " records")
        attempts = int(run.report.get("commit", {}).get("attempts", 0)) + 1
        run.report["commit"] = {**result.to_json(), "attempts": attempts}
        if not result.complete:
            progress = f"{result.records_written:,} ledger record(s) written so far, in {attempts} invocation(s)"
            if attempts >= MAX_COMMIT_ATTEMPTS:
                return _fail(run, "timeout", f"the ledger commit did not finish in {attempts} invocations: {progress}")
            run.save()
            emit_continued(run.feed)
            written = result.records_written
            logger.info(
                "commit continues in a new invocation",
                extra={"stage": "commit", "attempts": attempts, "records_written": written},
            )
            raise RunContinues(source, progress)
        run.advance(Stage.COMMITTED)
        logger.info("committed", extra={"stage": "commit", "records_written": result.records_written})

    return _end(run, RunStatus.DELIVERED, None, delivery_seconds=delivery_seconds)


@contextmanager
def _sent_rows(path: Path, layout: Layout, *, header: bool) -> Iterator[Iterator[Row]]:
    """The delivered programs.txt read back for the ledger (line numbers are programs.txt lines)."""
    with path.open(encoding="utf-8", newline="") as lines:
        if header:
            lines.readline()
        yield ((number, text.rstrip("\r\n").split("\t")) for number, text in enumerate(lines, 2 if header else 1))


# --- endings -------------------------------------------------------------------------------------------


def _end(
    run: Run,
    status: RunStatus,
    reason: str | None,
    folder: str = "processed",
    *,
    delivery_seconds: float | None = None,
) -> Outcome:
    """File the export (this version only), finish the report, count it and tell whoever must know."""
    services, entry = run.services, run.entry
    filed_as = f"{folder}/{run.feed}/{entry.run_id}-{run.source.name}"
    run.stage = "file"
    if entry.stage < Stage.FILED:
        services.storage.file_away(run.source.key, run.source.version, filed_as)
        run.advance(Stage.FILED)
    run.report.update(status=status.value, filed_as=filed_as, finished_at=_iso(services.clock()))
    if reason is not None:
        run.report["reason"] = reason
    run.report["seconds"] = round(time.monotonic() - run.started, 3)
    run.stage = "report"
    run.save()
    services.journal.advance(run.feed, entry.ref_id, Stage.FINISHED, status.value)
    run_counts = run.report.get("counts", {})
    emit_run_metrics(run.feed, status.value, run_counts, delivery_seconds=delivery_seconds)
    logger.info("run finished", extra={"status": status.value, "counts": run_counts, "report": entry.report_key})
    _notify(run, status, reason)
    return Outcome(entry.run_id, status.value, entry.report_key)


def _fail(run: Run, failure: str, reason: str) -> Outcome:
    """Report a failure, leave the export in place, and raise so the queue retries.

    Each step is attempted on its own: when S3 is what failed, the metric and the notice still go out.
    """
    run.report.update(
        status=RunStatus.FAILED.value, reason=reason, failure=failure, finished_at=_iso(run.services.clock())
    )
    run.report["failed_stage"] = run.stage
    emit_run_metrics(run.feed, RunStatus.FAILED.value, run.report.get("counts", {}), failure=failure)
    logger.error("run failed", extra={"status": "failed", "failure": failure, "stage": run.stage,
                                      "report": run.entry.report_key})  # fmt: skip
    steps: tuple[Callable[[], None], ...] = (run.save, lambda: _notify(run, RunStatus.FAILED, reason))
    for step in steps:
        try:
            step()
        except Exception as exc:
            logger.error("could not finish the failed run's report or notice", extra={"error_type": type(exc).__name__})
    raise RunFailed(f"{failure} failure in run {run.entry.run_id}: {reason}")


def _notify(run: Run, status: RunStatus, reason: str | None) -> None:
    ledger = run.report.get("ledger") or {}
    run_counts = run.report.get("counts", {})
    held = run_counts.get("held", 0)
    risks = run_counts.get("duplicate_risks", 0) - ledger.get("resolved", {}).get("new", 0)  # resolved: no notice
    if status in (RunStatus.REJECTED, RunStatus.HELD, RunStatus.NEEDS_SEED, RunStatus.FAILED, RunStatus.SUPERSEDED):
        subject = f"programs-bridge {run.feed}: {_what(run.source.key)} {status.value}"
    elif held:
        subject = f"programs-bridge {run.feed}: {held} row(s) held as duplicate risks"
    elif risks:
        subject = f"programs-bridge {run.feed}: {risks} duplicate risk(s)"
    elif ledger.get("resolutions_not_applied") or ledger.get("resolutions_stale"):  # a decision that did nothing
        subject = f"programs-bridge {run.feed}: resolution(s) not applied"
    else:
        return
    body = [subject, f"run {run.entry.run_id}", reason or "", f"report: {run.entry.report_key}"]
    if status is RunStatus.DELIVERED:
        body += held_lines(run.feed, held, [r for r in ledger.get("duplicate_risks", []) if r.get("action") == "held"])
    run.services.notifier.notify(subject, "\n".join(body) + "\n")


def _what(key: str) -> str:
    """What a notice calls the dropped object: the drops beside the exports fail through here too."""
    folder = key.split("/", 1)[0]
    return {"resolutions": "resolutions file", "illuminate": "Illuminate report"}.get(folder, "export")


def _describe(exc: BaseException, stage: str) -> tuple[str, str]:
    """A failure's kind and a reason a data clerk or an engineer can act on.  Never the exception's text,
    except our own ledger errors (which carry counts and run ids only): an SDK's or a bug's message may
    quote a value from the export."""
    retried = "the export stays in incoming/ and the queue retries it"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return "aws", f"AWS refused {exc.operation_name} during {stage} ({error.get('Code', 'error')}); {retried}"
    if isinstance(exc, BotoCoreError):
        return "aws", f"AWS could not be reached during {stage} ({type(exc).__name__}); {retried}"
    if isinstance(exc, LedgerError):
        return "aws", f"the ledger failed during {stage}: {exc}; {retried}"
    return (
        "internal",
        f"unexpected {type(exc).__name__} during {stage} (a fault in programs-bridge: the log says where); {retried}",
    )


def _log_failure(exc: BaseException, stage: str) -> None:
    """Where it happened, for the engineer: the frames only, never the message (it may quote data)."""
    frames = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in traceback.extract_tb(exc.__traceback__)]
    cause = exc.__cause__ or exc.__context__
    logger.error(
        "unexpected failure",
        extra={"stage": stage, "error_type": type(exc).__name__, "where": frames[-8:],
               "cause_type": type(cause).__name__ if cause else None},
    )  # fmt: skip


def _new_report(source: Source, entry: RunEntry) -> dict[str, Any]:
    return {
        "report_version": 1,
        "run_id": entry.run_id,
        "feed": source.feed,
        "status": RunStatus.IN_PROGRESS.value,
        "reason": None,
        "source": {
            "key": source.key,
            "version": source.version_id or source.version.etag,
            "last_modified": source.uploaded,
        },
        "counts": counts(None, None, 0),
    }


def _carry_earlier_failures(run: Run) -> None:
    """A run started again after a failure before its plan was stored keeps that failure's history."""
    stored = run.services.storage.lines(run.entry.report_key)
    if stored is not None:
        with Path(os.devnull).open("w", encoding="utf-8") as nowhere:
            earlier = split_report(stored, nowhere)
        _clear_failure(earlier)
        if earlier.get("earlier_failures"):
            run.report["earlier_failures"] = earlier["earlier_failures"]


def _clear_failure(report: dict[str, Any]) -> None:
    """A retry's report carries no stale ``failure``/``reason``: they move to ``earlier_failures``."""
    if report.get("status") == RunStatus.FAILED.value:
        report.setdefault("earlier_failures", []).append(
            {key: report.get(key) for key in ("failure", "failed_stage", "reason", "finished_at")}
        )
    for key in ("failure", "failed_stage", "finished_at"):
        report.pop(key, None)
    if isinstance(report.get("delivery"), dict) and "error" in report["delivery"]:
        del report["delivery"]
    report.update(status=RunStatus.IN_PROGRESS.value, reason=None)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load_config(feed: str, storage: Storage) -> FeedConfig:
    key = f"config/{feed}.toml"
    raw = storage.read_bytes(key, _CONFIG_BYTES)
    if raw is None:
        raise ConfigError(f"no configuration for feed {feed!r}: put it at {key} (see the README)")
    if len(raw) > _CONFIG_BYTES:
        raise ConfigError(f"{key} is larger than {_CONFIG_BYTES >> 20} MiB: a feed's configuration is a few lines")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{key} is not UTF-8 text (byte {exc.start + 1} cannot be read): save it as UTF-8") from None
    return parse_feed_config(text, key)


def _load_code_table(config: FeedConfig, storage: Storage) -> CodeTable | None:
    if config.code_table is None:
        return None
    key = f"config/{config.code_table}"
    raw = storage.read_bytes(key, CODE_TABLE_BYTES)
    if raw is None:
        raise ConfigError(f"the code table {key} named in the feed's configuration is not in the bucket")
    return read_code_table(raw, key)
