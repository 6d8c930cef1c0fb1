"""The Lambda's wiring: SQS batches of S3 notifications (or a direct S3 event) in, runs out.

``handler.py`` imports this module on the first event (see there why).  For each new object under
``incoming/<feed>/``, ``resolutions/<feed>/`` or ``illuminate/<feed>/`` it takes the feed's lease and drains
the feed's three folders: first the clerk's resolutions (so tonight's export already applies them), then
reports of Illuminate's records (so an export that waits for a seed is planned against it), then the exports,
each folder oldest first, so two exports dropped together are processed one after the other and the
programs.txt left on the server is the newer one's.  Powertools Idempotency, keyed on bucket, key and
version, makes a redelivered event a no-op; Powertools batch processing reports failed messages
individually so the queue retries only those (and moves them to the dead-letter queue after its
``maxReceiveCount``).

The invocation's time is a budget (``budget.py``) read from the Lambda context.  A run that stops at a safe
point because that time ran out (``RunContinues``) is put back on the queue at once as a continuation, and
its message counts as handled: a first night that spans several invocations is neither delayed by the
queue's visibility timeout nor counted against ``maxReceiveCount``.  Failures that happen before a run can
start (listing the bucket, the lease, the journal) have no run to report on: they are logged, counted as
``RunFailures`` and notified, and the message is retried.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from programs_bridge.delivery.credentials import load_credentials
from programs_bridge.delivery.sftp import deliver
from programs_bridge.ledger.store import LedgerStore
from programs_bridge.pipeline.budget import InvocationBudget
from programs_bridge.pipeline.events import PREFIXES, Ignored, Kind, ObjectRef, continuation_body, kind_of, objects_in
from programs_bridge.pipeline.illuminate_drop import run_illuminate
from programs_bridge.pipeline.journal import Journal
from programs_bridge.pipeline.lease import FeedBusy, FeedLease
from programs_bridge.pipeline.observe import (
    Notifier,
    emit_misplaced,
    emit_run_metrics,
    logger,
    route_library_logs,
    tracer,
)
from programs_bridge.pipeline.resolutions_drop import run_resolutions
from programs_bridge.pipeline.run import Outcome, RunContinues, RunFailed, Services, Source, ref_id, run_source
from programs_bridge.pipeline.storage import ObjectVersion, Storage

WORKDIR = Path(os.environ.get("PROGRAMS_BRIDGE_WORKDIR", "/tmp/programs-bridge"))  # noqa: S108 - Lambda's scratch
_LEASE_MARGIN_SECONDS = 60
#: How each kind of object is run, in the order a feed's folders are drained (``events.PREFIXES``).
RUNNERS: dict[Kind, Callable[[Source, Services], Outcome]] = {
    Kind.RESOLUTIONS: run_resolutions,
    Kind.ILLUMINATE: run_illuminate,
    Kind.EXPORT: run_source,
}
#: A batch whose every message failed still answers with its failures (each retried on its own), instead of
#: failing the invocation as Powertools does by default.
_processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
_idempotency = IdempotencyConfig(
    event_key_jmespath="[bucket, key, version, continuation]", expires_after_seconds=7 * 24 * 3600
)


route_library_logs()


@cache
def _persistence(table: str, endpoint: str | None) -> DynamoDBPersistenceLayer:
    """One persistence layer (and its boto3 client) per table and endpoint, reused across events."""
    return DynamoDBPersistenceLayer(table_name=table)


def services_for(bucket: str, budget: InvocationBudget) -> Services:
    table = os.environ["LEDGER_TABLE"]
    return Services(
        storage=Storage(bucket),
        ledger=LedgerStore(table),
        journal=Journal(table),
        deliver=lambda path, target, credentials, retry, deadline: deliver(
            path, target, credentials, retry=retry, deadline=deadline
        ),
        credentials=load_credentials,
        notifier=Notifier(os.environ.get("NOTIFY_TOPIC_ARN") or None),
        workdir=WORKDIR,
        budget=budget,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _idempotency.register_lambda_context(context)
    budget = InvocationBudget.from_context(context)
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:sqs":
        response = process_partial_response(
            event=event, record_handler=lambda record: _handle(record, budget), processor=_processor, context=context
        )
        return dict(response)
    outcomes = [outcome for item in objects_in(event) for outcome in _handle_item(item, budget)]
    return {"runs": outcomes}


def _handle(record: SQSRecord, budget: InvocationBudget) -> list[dict[str, str]]:
    return [outcome for item in objects_in(record.json_body) for outcome in _handle_item(item, budget)]


def _handle_item(item: ObjectRef | Ignored, budget: InvocationBudget) -> list[dict[str, str]]:
    if isinstance(item, Ignored):
        if item.misplaced:
            _misplaced(item)
        else:
            logger.info("event ignored", extra={"reason": item.reason})
        return []
    process = idempotent_function(
        data_keyword_argument="ref",
        persistence_store=_persistence(os.environ["IDEMPOTENCY_TABLE"], os.environ.get("AWS_ENDPOINT_URL")),
        config=_idempotency,
    )(_process_object)
    try:
        result: list[dict[str, str]] = process(ref=item.idempotency_data() | _extra(item), budget=budget)
    except RunContinues as paused:
        if not _queue_continuation(item, paused.source):
            raise
        if paused.source.ref_id != ref_id(item.key, item.version_id, item.etag):
            raise  # this message's own export is still to come: the queue retries it
        return []
    return result


def _extra(item: ObjectRef) -> dict[str, str]:
    return {
        "feed": item.feed, "version_id": item.version_id or "", "etag": item.etag, "event_time": item.event_time,
        "size": str(item.size), "sequencer": item.sequencer,
    }  # fmt: skip


def _process_object(ref: dict[str, str], budget: InvocationBudget) -> list[dict[str, str]]:
    """Drain the object's feed under its lease; the object itself is among the files drained."""
    feed = ref["feed"]
    try:
        services = services_for(ref["bucket"], budget)
        owner = str(uuid.uuid4())
        seconds = budget.remaining() + _LEASE_MARGIN_SECONDS
        with FeedLease(os.environ["LEDGER_TABLE"]).hold(feed, owner, seconds):
            outcomes = drain(feed, ref, services)
    except (RunFailed, RunContinues, FeedBusy):
        raise
    except Exception as exc:  # before any run could start: nothing to report on, so say it loudly here
        _before_any_run(feed, ref, exc)
        raise
    return [{"run_id": o.run_id, "status": o.status, "report": o.report_key} for o in outcomes]


def drain(feed: str, ref: dict[str, str], services: Services) -> list[Outcome]:
    """Every object waiting in the feed's folders, and the version that triggered us: the resolutions, then
    the reports of Illuminate's records, then the exports, each oldest first.

    The triggering version is run even when a newer upload of the same key has replaced it meanwhile (it
    still exists as a noncurrent version): it then ends as delivered or superseded, with its own report,
    and the newer version has a run of its own.  Stops at the first failure so a later file never overtakes
    an earlier one that is still to be sent, and before a run that the invocation has no time left for.
    """
    storage = services.storage
    sources: dict[str, Source] = {}
    for prefix in PREFIXES.values():
        for key in storage.listing(f"{prefix}{feed}/"):
            version = storage.version_of(key)
            if version is not None:
                source = Source(feed, key, version)
                sources[source.ref_id] = source
    current = set(sources)
    if ref_id(ref["key"], ref["version_id"] or None, ref["etag"]) not in current:  # listed already: no lookup
        trigger = _trigger(ref, services)
        if trigger is not None:
            sources[trigger.ref_id] = trigger
    order = list(PREFIXES)

    def position(s: Source) -> tuple[int, str, str, bool]:
        # Kind first; then oldest first; in one second, by key name, and a key's current version last.
        return order.index(_kind(s)), s.uploaded, s.key, s.ref_id in current

    outcomes = []
    for source in sorted(sources.values(), key=position):
        if not services.budget.allows_a_run():
            raise RunContinues(source, "not started: too little of the invocation's time was left")
        outcomes.append(RUNNERS[_kind(source)](source, services))
    return outcomes


def _kind(source: Source) -> Kind:
    kind = kind_of(source.key)
    assert kind is not None, "only the three folders are listed, and events name nothing else"
    return kind


def _trigger(ref: dict[str, str], services: Services) -> Source | None:
    """The triggering object version: still in the bucket (current or not), or already filed by an earlier
    run that may still have a report to finish (the journal keeps its upload time); None when it is gone
    and was never seen (deleted by someone before any run)."""
    feed, key, version_id = ref["feed"], ref["key"], ref["version_id"] or None
    version = services.storage.version_of(key, version_id)
    if version is not None and (version_id is not None or version.etag == ref["etag"]):
        return Source(feed, key, version)
    entry = services.journal.entry(feed, ref_id(key, version_id, ref["etag"]))
    if entry is None:
        logger.info("object no longer in the bucket and never seen: nothing to do")
        return None
    uploaded = _parse_time(entry.source_time or ref["event_time"])
    return Source(feed, key, ObjectVersion(version_id, ref["etag"], uploaded))


def _queue_continuation(item: ObjectRef, source: Source) -> bool:
    """Queue the paused run's continuation; False when there is no queue to put it on (a direct invocation,
    or ``DROP_QUEUE_URL`` unset), and the queue's own retry has to do."""
    queue_url = os.environ.get("DROP_QUEUE_URL")
    if not queue_url:
        return False
    ref = ObjectRef(
        bucket=item.bucket, key=source.key, version_id=source.version_id, etag=source.version.etag,
        size=item.size if source.key == item.key else 0, sequencer=item.sequencer, event_time=source.uploaded,
    )  # fmt: skip
    body = continuation_body(ref, uuid.uuid4().hex)
    boto3.client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
    logger.info("run continues in a new invocation", extra={"feed": source.feed})
    return True


def _misplaced(item: Ignored) -> None:
    """Whoever dropped the file believes it was read: say that it was not, and where it belongs.  The key is
    not quoted (a file name may be anything); the reason names the folder."""
    logger.warning("file not read: it is in no feed's folder", extra={"reason": item.reason})
    emit_misplaced()
    _notify_without_run(
        "programs-bridge: a file was dropped where nothing reads it",
        f"A file was not read: {item.reason}. Move it there (list the folder to find it).\n",
    )


def _before_any_run(feed: str, ref: dict[str, str], exc: Exception) -> None:
    """A failure before the object's run could start (no report can be written for it): log, count, notify."""
    kind = type(exc).__name__
    logger.error("could not start the run", extra={"feed": feed, "error_type": kind})
    emit_run_metrics(feed, "failed", {}, failure="aws")
    _notify_without_run(
        f"programs-bridge {feed}: could not start a run",
        f"Processing an export of feed {feed} could not start ({kind}); the queue retries it.\n"
        f"object version: {ref['version_id'] or ref['etag']}\n",
    )


def _notify_without_run(subject: str, body: str) -> None:
    """An SNS notice about an object no run reports on; a notice that cannot be sent is logged, never raised
    (the object's own failure, if any, is what the queue must see)."""
    try:
        Notifier(os.environ.get("NOTIFY_TOPIC_ARN") or None).notify(subject, body)
    except Exception as notify_exc:
        logger.error("could not send the notice", extra={"error_type": type(notify_exc).__name__})


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
