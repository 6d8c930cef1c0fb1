"""What S3 told us: the objects to process, from S3 notifications delivered directly or through SQS.

S3 events are at-least-once and unordered, and they carry URL-encoded keys (a space arrives as ``+``, a ``+``
as ``%2B``).  Three folders hold work, each a ``Kind`` of object: ``incoming/<feed>/`` the nightly exports,
``resolutions/<feed>/`` a clerk's decisions about held rows (a CSV), ``illuminate/<feed>/`` a report of
Illuminate's own records (to seed the feed's ledger).  Everything else is ignored here, on purpose and with
a reason the handler logs: S3's ``s3:TestEvent`` sent when a notification is configured, "folder"
placeholder keys ending in ``/``, objects directly under one of the three folders (no feed) and other
prefixes.

A run that must continue in a new invocation (a long first commit) puts a *continuation* on the queue: the
same notification for its object version, marked with a fresh token, so Powertools Idempotency does not take
it for the original message (``continuation_body``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventRecord
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

INCOMING = "incoming/"
RESOLUTIONS = "resolutions/"
ILLUMINATE = "illuminate/"


class Kind(StrEnum):
    """What a dropped object is, by the folder it was dropped in."""

    EXPORT = "export"
    RESOLUTIONS = "resolutions"
    ILLUMINATE = "illuminate"


#: Each kind's folder: ``<prefix><feed>/<file>``.  A feed's lease drains them in this order.
PREFIXES: dict[Kind, str] = {Kind.RESOLUTIONS: RESOLUTIONS, Kind.ILLUMINATE: ILLUMINATE, Kind.EXPORT: INCOMING}


def kind_of(key: str) -> Kind | None:
    """The kind of object ``key`` names, by its folder; None outside the three."""
    for kind, prefix in PREFIXES.items():
        if key.startswith(prefix):
            return kind
    return None


#: The key of a continuation's token at the top of an S3 notification body.
CONTINUATION = "programsBridgeContinuation"
_FEED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One dropped object (an export, a resolutions CSV, a report of Illuminate's records), as the event named it."""

    bucket: str
    key: str
    version_id: str | None
    etag: str
    size: int
    sequencer: str
    event_time: str
    #: Empty for S3's own notification; a token for a continuation the pipeline queued itself.
    continuation: str = ""

    @property
    def version(self) -> str:
        """The S3 version id, or the ETag on an unversioned bucket: with bucket and key, it names the bytes."""
        return self.version_id or self.etag

    @property
    def kind(self) -> Kind:
        kind = kind_of(self.key)
        assert kind is not None, "object_ref makes ObjectRefs of the three folders only"
        return kind

    @property
    def feed(self) -> str:
        return self.key[len(PREFIXES[self.kind]) :].split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    def idempotency_data(self) -> dict[str, str]:
        return {"bucket": self.bucket, "key": self.key, "version": self.version, "continuation": self.continuation}


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str
    #: A file a person dropped in one of the three folders, but not in a feed's folder: nobody reads it, and
    #: whoever dropped it believes it was read (``wiring`` tells them so).
    misplaced: bool = False


def objects_in(event: Mapping[str, Any]) -> Iterator[ObjectRef | Ignored]:
    """Every S3 record in a direct S3 event or in the bodies of an SQS batch, in event order."""
    if event.get("Event") == "s3:TestEvent":
        yield Ignored("s3:TestEvent (sent when the bucket notification is set up)")
        return
    token = str(event.get(CONTINUATION, ""))
    for record in event.get("Records", ()):
        if record.get("eventSource") == "aws:sqs":
            yield from objects_in(SQSRecord(record).json_body)
        elif record.get("eventSource") == "aws:s3":
            yield object_ref(S3EventRecord(record), token)
        else:
            yield Ignored(f"not an S3 record ({record.get('eventSource')!r})")


def object_ref(record: S3EventRecord, continuation: str = "") -> ObjectRef | Ignored:
    """One S3 notification record as an ``ObjectRef``, or why it is not one to process."""
    if not record.event_name.startswith("ObjectCreated:"):
        return Ignored(f"event {record.event_name!r} is not a new object")
    obj = record.s3.get_object
    key = unquote_plus(obj.key)
    kind = kind_of(key)
    if kind is None:
        return Ignored("key is not under incoming/, resolutions/ or illuminate/")
    if key.endswith("/"):
        return Ignored("a folder placeholder, not a file")
    prefix = PREFIXES[kind]
    feed, _, rest = key[len(prefix) :].partition("/")
    if not rest:
        return Ignored(f"a file directly under {prefix}: put it under {prefix}<feed>/", misplaced=True)
    if not _FEED.fullmatch(feed):  # (``$`` would let a trailing line break through)
        return Ignored(
            f"a file under {prefix} in a folder whose name is no feed's (a feed name is 1 to 64 letters, digits, "
            f"'.', '_' and '-', and starts with a letter or digit): put it under {prefix}<feed>/",
            misplaced=True,
        )
    return ObjectRef(
        bucket=record.s3.bucket.name,
        key=key,
        version_id=obj.version_id or None,
        etag=obj.etag,
        size=obj.size,
        sequencer=obj.sequencer,
        event_time=record.event_time,
        continuation=continuation,
    )


def continuation_body(ref: ObjectRef, token: str) -> dict[str, Any]:
    """The queue message that brings ``ref``'s run back: S3's notification shape, with ``token``."""
    return {"Records": [s3_record(ref)], CONTINUATION: token}


def s3_record(ref: ObjectRef) -> dict[str, Any]:
    """The S3 ObjectCreated notification record for ``ref``, as S3 writes it (the key URL-encoded): the
    inverse of ``object_ref``, for continuations and for the demo's and tests' events."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": ref.event_time,
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": ref.bucket, "arn": f"arn:aws:s3:::{ref.bucket}"},
            "object": {
                "key": quote_plus(ref.key, safe="/"),
                "size": ref.size,
                "eTag": ref.etag,
                "versionId": ref.version_id or "",
                "sequencer": ref.sequencer,
            },
        },
    }
