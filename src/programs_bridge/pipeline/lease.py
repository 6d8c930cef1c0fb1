"""One run per feed at a time: a lease item in the ledger table, taken with a conditional write.

S3 events arrive unordered and possibly in parallel; two exports of one feed processed at once could deliver
the older file last or interleave two ledger commits.  The lease serialises a feed (other feeds run in
parallel), and it expires on its own, so a crashed or timed-out invocation never blocks a feed for longer
than its own time limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError

from programs_bridge.pipeline.dynamo import condition_failed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class FeedBusy(Exception):
    """Another invocation holds the feed's lease; the message goes back to the queue and is retried."""


def pipeline_pk(feed: str) -> dict[str, str]:
    return {"S": f"{feed}#pipeline"}


class FeedLease:
    def __init__(
        self, table: str, client: DynamoDBClient | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.table = table
        self.client: DynamoDBClient = client or boto3.client("dynamodb")
        self.clock = clock

    @contextmanager
    def hold(self, feed: str, owner: str, seconds: float) -> Iterator[None]:
        """Hold ``feed`` for at most ``seconds``; raise FeedBusy when someone else holds it."""
        now = self.clock()
        key = {"pk": pipeline_pk(feed), "sk": {"S": "lease"}}
        try:
            self.client.put_item(
                TableName=self.table,
                Item={**key, "owner": {"S": owner}, "expires_at": {"N": f"{now + seconds:.3f}"}},
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now OR #owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":now": {"N": f"{now:.3f}"}, ":owner": {"S": owner}},
            )
        except ClientError as exc:
            if condition_failed(exc):
                raise FeedBusy(f"feed {feed!r} is being processed by another invocation") from None
            raise
        try:
            yield
        finally:
            try:
                self.client.delete_item(
                    TableName=self.table,
                    Key=key,
                    ConditionExpression="#owner = :owner",
                    ExpressionAttributeNames={"#owner": "owner"},
                    ExpressionAttributeValues={":owner": {"S": owner}},
                )
            except ClientError as exc:  # expired and taken over: the new holder's lease stays
                if not condition_failed(exc):
                    raise
