"""The Lambda's wiring: SQS batches of S3 notifications (or a direct S3 event) in, runs out.

``handler.py`` imports this module on the first event (see there why).  For each new object under
``incoming/<feed>/`` it takes the feed's lease and drains the feed's ``incoming/`` folder oldest first, so
two exports dropped together are processed one after the other and the programs.txt left on the server is
the newer one's.  Powertools Idempotency, keyed on bucket, key and version, makes a redelivered event a
no-op; Powertools batch processing reports failed messages individually so the queue retries only those
(and moves them to the dead-letter queue after its ``maxReceiveCount``).
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

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
from programs_bridge.pipeline.events import INCOMING, Ignored, ObjectRef, objects_in
from programs_bridge.pipeline.journal import Journal
from programs_bridge.pipeline.lease import FeedLease
from programs_bridge.pipeline.observe import Notifier, logger, tracer
from programs_bridge.pipeline.run import Outcome, Services, Source, run_source
from programs_bridge.pipeline.storage import Storage

WORKDIR = Path(os.environ.get("PROGRAMS_BRIDGE_WORKDIR", "/tmp/programs-bridge"))  # noqa: S108 - Lambda's scratch
_LEASE_MARGIN_SECONDS = 60
#: A batch whose every message failed still answers with its failures (each retried on its own), instead of
#: failing the invocation as Powertools does by default.
_processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
_idempotency = IdempotencyConfig(event_key_jmespath="[bucket, key, version]", expires_after_seconds=7 * 24 * 3600)


@cache
def _persistence(table: str, endpoint: str | None) -> DynamoDBPersistenceLayer:
    """One persistence layer (and its boto3 client) per table and endpoint, reused across events."""
    return DynamoDBPersistenceLayer(table_name=table)


def services_for(bucket: str) -> Services:
    table = os.environ["LEDGER_TABLE"]
    return Services(
        storage=Storage(bucket),
        ledger=LedgerStore(table),
        journal=Journal(table),
        deliver=lambda path, target, credentials, retry: deliver(path, target, credentials, retry=retry),
        credentials=load_credentials,
        notifier=Notifier(os.environ.get("NOTIFY_TOPIC_ARN") or None),
        workdir=WORKDIR,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _idempotency.register_lambda_context(context)
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:sqs":
        response = process_partial_response(
            event=event, record_handler=lambda record: _handle(record, context), processor=_processor, context=context
        )
        return dict(response)
    outcomes = [outcome for item in objects_in(event) for outcome in _handle_item(item, context)]
    return {"runs": outcomes}


def _handle(record: SQSRecord, context: LambdaContext) -> list[dict[str, str]]:
    return [outcome for item in objects_in(record.json_body) for outcome in _handle_item(item, context)]


def _handle_item(item: ObjectRef | Ignored, context: LambdaContext) -> list[dict[str, str]]:
    if isinstance(item, Ignored):
        logger.info("event ignored", extra={"reason": item.reason})
        return []
    seconds = context.get_remaining_time_in_millis() / 1000 + _LEASE_MARGIN_SECONDS
    process = idempotent_function(
        data_keyword_argument="ref",
        persistence_store=_persistence(os.environ["IDEMPOTENCY_TABLE"], os.environ.get("AWS_ENDPOINT_URL")),
        config=_idempotency,
    )(_process_object)
    result: list[dict[str, str]] = process(ref=item.idempotency_data() | _extra(item), lease_seconds=seconds)
    return result


def _extra(item: ObjectRef) -> dict[str, str]:
    return {"feed": item.feed, "version_id": item.version_id or "", "etag": item.etag, "event_time": item.event_time}


def _process_object(ref: dict[str, str], lease_seconds: float) -> list[dict[str, str]]:
    """Drain the object's feed under its lease; the object itself is among the files drained."""
    services = services_for(ref["bucket"])
    owner = str(uuid.uuid4())
    with FeedLease(os.environ["LEDGER_TABLE"]).hold(ref["feed"], owner, lease_seconds):
        outcomes = drain(ref["feed"], _trigger(ref), services)
    return [{"run_id": o.run_id, "status": o.status, "report": o.report_key} for o in outcomes]


def drain(feed: str, trigger: Source, services: Services) -> list[Outcome]:
    """Every export waiting under ``incoming/<feed>/`` (and the one that triggered us), oldest first.

    Stops at the first failure so a later file never overtakes an earlier one that is still to be sent.
    """
    storage = services.storage
    waiting = (Source(feed, key, *storage.version_of(key)) for key in storage.listing(f"{INCOMING}{feed}/"))
    sources = {source.ref_id: source for source in waiting}
    if trigger.ref_id not in sources:
        # Gone from incoming/ (or overwritten by a newer version): either filed by an earlier run, which may
        # still have a report to finish, or deleted by someone; only the first has a journal entry.
        if services.journal.entry(feed, trigger.ref_id) is not None:
            sources[trigger.ref_id] = trigger
        else:
            logger.info("object no longer in incoming/ and never seen: nothing to do")
    return [run_source(source, services) for source in sorted(sources.values(), key=lambda s: (s.last_modified, s.key))]


def _trigger(ref: dict[str, str]) -> Source:
    """The triggering object as the event described it.  Used only when it is no longer in incoming/, and
    then its run is already in the journal, which keeps the run id: the event time is only a stand-in."""
    modified = datetime.fromisoformat(ref["event_time"].replace("Z", "+00:00")).astimezone(UTC)
    return Source(ref["feed"], ref["key"], ref["version_id"] or None, ref["etag"], modified)
