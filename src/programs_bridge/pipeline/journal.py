"""Where each run of the pipeline has got to, so that a retry resumes instead of starting over.

One item per dropped object version (keyed by a hash of bucket, key and version) records the run id and the
last stage that completed.  Stages before ``planned`` touch nothing outside the function, so a retry simply
redoes them; from ``planned`` on, the plan is frozen (the programs.txt to send and the report are stored in
the bucket), and a retry continues from the recorded stage.  A second item per feed remembers the last
delivered export, to recognise a repeat (same SHA-256) or an export older than one already sent; it is set
the moment a delivery succeeds, before the ledger commit, so no later run can mistake what is on the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from programs_bridge.pipeline.dynamo import condition_failed
from programs_bridge.pipeline.lease import pipeline_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class Stage(IntEnum):
    STARTED = 0
    PLANNED = 1
    """programs.txt to send and the in-progress report are stored: the plan no longer changes."""
    DELIVERED = 2
    COMMITTED = 3
    FILED = 4
    FINISHED = 5


@dataclass(frozen=True)
class RunEntry:
    ref_id: str
    run_id: str
    stage: Stage
    status: str
    report_key: str
    sent_key: str
    layout: tuple[str, ...]
    #: The ledger head the frozen plan was made against (None: the feed had none); set at ``PLANNED``.
    planned_head: str | None = None
    #: When the export version was uploaded (ISO 8601 UTC): it orders runs even once the version is filed.
    source_time: str = ""


@dataclass(frozen=True)
class LastDelivered:
    """The export on the district's server now, and what is needed to tell whether another one is older."""

    run_id: str
    sha256: str
    source_time: str  # ISO 8601 UTC to the second (S3's own precision), comparable as text
    key: str = ""
    #: Versions of ``key`` that S3 listed as older than the delivered one when it was delivered.  S3 times
    #: have one-second precision, so two uploads of one key in the same second are told apart by S3's own
    #: version order; the delivered version itself may be filed away (deleted) since.
    older_versions: tuple[str, ...] = ()

    def is_newer_than(self, key: str, version_id: str | None, uploaded: str) -> bool:
        """Whether the delivered export is newer than the export version ``key``/``version_id``, uploaded at
        ``uploaded``: later by the clock; in the same second, later in S3's version order for one key, or
        later by key name for two keys (the README asks for dates in file names)."""
        if self.source_time != uploaded:
            return self.source_time > uploaded
        if key == self.key:
            return version_id is not None and version_id in self.older_versions
        return self.key > key


class Journal:
    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self.table = table
        self.client: DynamoDBClient = client or boto3.client("dynamodb")

    def _key(self, feed: str, sk: str) -> dict[str, Any]:
        return {"pk": pipeline_pk(feed), "sk": {"S": sk}}

    def begin(self, feed: str, entry: RunEntry) -> RunEntry:
        """Record a new run, or return the run already recorded for the same object version."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **self._key(feed, f"run#{entry.ref_id}"),
                    "run_id": {"S": entry.run_id},
                    "stage": {"N": str(int(entry.stage))},
                    "status": {"S": entry.status},
                    "report_key": {"S": entry.report_key},
                    "sent_key": {"S": entry.sent_key},
                    "layout": {"S": ",".join(entry.layout)},
                    "source_time": {"S": entry.source_time},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            existing = self.entry(feed, entry.ref_id)
            assert existing is not None
            return existing
        return entry

    def entry(self, feed: str, ref_id: str) -> RunEntry | None:
        item = self.client.get_item(
            TableName=self.table, Key=self._key(feed, f"run#{ref_id}"), ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        layout = item.get("layout", {}).get("S", "")
        return RunEntry(
            ref_id,
            item["run_id"]["S"],
            Stage(int(item["stage"]["N"])),
            item["status"]["S"],
            item["report_key"]["S"],
            item["sent_key"]["S"],
            tuple(layout.split(",")) if layout else (),
            item.get("planned_head", {}).get("S"),
            item.get("source_time", {}).get("S", ""),
        )

    def advance(self, feed: str, ref_id: str, stage: Stage, status: str) -> None:
        """Record that ``stage`` completed (stages only move forward)."""
        self._update(feed, ref_id, stage, status, "#stage <= :stage")

    def freeze(self, feed: str, ref_id: str, layout: tuple[str, ...], planned_head: str | None) -> None:
        """Record that the plan is stored (``PLANNED``), with its layout and the ledger head it was made against."""
        extra: dict[str, Any] = {"layout": {"S": ",".join(layout)}}
        extra["planned_head"] = {"S": planned_head} if planned_head is not None else {"NULL": True}
        self._update(feed, ref_id, Stage.PLANNED, "in_progress", "#stage <= :stage", extra)

    def replan(self, feed: str, ref_id: str) -> bool:
        """Send a run whose frozen plan was overtaken (another run committed since) back to ``STARTED``,
        if it has delivered nothing yet.  False when it had already moved on."""
        planned = {":planned": {"N": str(int(Stage.PLANNED))}}
        return self._update(feed, ref_id, Stage.STARTED, "in_progress", "#stage = :planned", condition_values=planned)

    def _update(
        self,
        feed: str,
        ref_id: str,
        stage: Stage,
        status: str,
        condition: str,
        extra: dict[str, Any] | None = None,
        *,
        condition_values: dict[str, Any] | None = None,
    ) -> bool:
        """Set the stage and status (and ``extra`` attributes) when ``condition`` holds; False when it did not."""
        names = {"#stage": "stage", "#status": "status"}
        values: dict[str, Any] = {
            ":stage": {"N": str(int(stage))},
            ":status": {"S": status},
            **(condition_values or {}),
        }
        update = "SET #stage = :stage, #status = :status"
        for name, value in (extra or {}).items():
            update += f", {name} = :{name}"
            values[f":{name}"] = value
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(feed, f"run#{ref_id}"),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            return False
        return True

    def last_delivered(self, feed: str) -> LastDelivered | None:
        item = self.client.get_item(TableName=self.table, Key=self._key(feed, "delivered"), ConsistentRead=True).get(
            "Item"
        )
        if item is None:
            return None
        return LastDelivered(
            item["run_id"]["S"],
            item["sha256"]["S"],
            item["source_time"]["S"],
            item.get("key", {}).get("S", ""),
            tuple(version["S"] for version in item.get("older_versions", {}).get("L", [])),
        )

    def set_delivered(self, feed: str, last: LastDelivered) -> None:
        self.client.put_item(
            TableName=self.table,
            Item={
                **self._key(feed, "delivered"),
                "run_id": {"S": last.run_id},
                "sha256": {"S": last.sha256},
                "source_time": {"S": last.source_time},
                "key": {"S": last.key},
                "older_versions": {"L": [{"S": version} for version in last.older_versions]},
            },
        )
