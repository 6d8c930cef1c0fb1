"""Reading a feed: every page of every shard, and a failed read that surfaces instead of hanging.

A fake client stands in for DynamoDB here so pages can be small and failures certain; the scenario tests
read through the moto server.
"""

from __future__ import annotations

import gc
from typing import Any, cast

import pytest

from programs_bridge.ledger.store import SHARDS, LedgerError, LedgerStore, item_size, page_size


def record(shard: int, n: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"feed#records#{shard:02d}"},
        "sk": {"S": f"s{shard}-{n}\t144\t08/15/2025\t12"},
        "state": {"S": "open" if n % 2 else "closed"},
        "end_date": {"S": ""},
        "fields_hash": {"S": f"{n:016x}"},
        "first_run": {"S": f"run-{n % 3}"},
        "last_run": {"S": "run-9"},
    }


class PagingClient:
    """Three pages of two items per shard, chained by LastEvaluatedKey; optionally failing on one shard."""

    def __init__(self, fail_shard: int | None = None) -> None:
        self.fail_shard = fail_shard
        self.queries = 0
        self.consistent: set[bool] = set()

    def get_item(self, **_: Any) -> dict[str, Any]:
        return {"Item": {"head_run": {"S": "run-9"}}, "ConsumedCapacity": {"CapacityUnits": 1.0}}

    def query(self, ExpressionAttributeValues: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        self.queries += 1
        self.consistent.add(kwargs.get("ConsistentRead", False))
        shard = int(ExpressionAttributeValues[":pk"]["S"].rsplit("#", 1)[1])
        if shard == self.fail_shard:
            raise RuntimeError("connection reset")
        page = int(kwargs.get("ExclusiveStartKey", {}).get("page", {}).get("N", "0"))
        response: dict[str, Any] = {
            "Items": [record(shard, 2 * page), record(shard, 2 * page + 1)],
            "ConsumedCapacity": {"CapacityUnits": 0.5},
        }
        if page < 2:
            response["LastEvaluatedKey"] = {"page": {"N": str(page + 1)}}
        return response


def test_every_page_of_every_shard_is_read_and_counted() -> None:
    client = PagingClient()
    snapshot, usage = LedgerStore("ledger", cast(Any, client)).read_snapshot("feed")
    assert len(snapshot) == SHARDS * 6
    assert snapshot.head_run == "run-9"
    ordinal = snapshot.find("s3-5\t144\t08/15/2025\t12")
    assert ordinal is not None
    assert snapshot.is_open(ordinal)
    assert snapshot.hashes[ordinal] == 5
    assert snapshot.first_run(ordinal) == "run-2"
    assert usage.requests == 1 + SHARDS * 3
    assert usage.items == SHARDS * 6
    assert usage.consumed_units == 1.0 + SHARDS * 3 * 0.5
    # Strongly consistent (a plan right after a commit must see all of it): one unit a page of two small items.
    assert client.consistent == {True}
    assert usage.estimated_units == 1.0 + SHARDS * 3 * 1.0
    assert snapshot.changed_by("run-9") == SHARDS * 6 and snapshot.changed_by("run-1") == 0


def test_a_failed_shard_read_fails_the_whole_read() -> None:
    with pytest.raises(LedgerError, match="reading the ledger failed"):
        LedgerStore("ledger", cast(Any, PagingClient(fail_shard=7))).read_snapshot("feed")
    assert gc.isenabled()  # the collector paused for the read is back, failure or not


def test_the_garbage_collector_is_paused_during_a_read_and_restored_after() -> None:
    collecting: list[bool] = []

    class Watching(PagingClient):
        def query(self, **kwargs: Any) -> dict[str, Any]:
            collecting.append(gc.isenabled())
            return super().query(**kwargs)

    LedgerStore("ledger", cast(Any, Watching())).read_snapshot("feed")
    assert collecting and not any(collecting)
    assert gc.isenabled()
    gc.disable()  # a caller that turned it off itself keeps it off
    try:
        LedgerStore("ledger", cast(Any, PagingClient())).read_snapshot("feed")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_page_is_sized_as_its_items_are_whatever_they_hold() -> None:
    """``page_size`` (the read path's fast sizing) agrees with ``item_size`` item by item, UTF-8 included."""
    text = [{"pk": {"S": "f#records#01"}, "sk": {"S": "0045|101|08/20/2025|é"}, "n": {"N": "12"}} for _ in range(3)]
    mixed = [*text, {"pk": {"S": "f#held"}, "matches": {"L": [{"S": "a"}]}, "ok": {"BOOL": True}}]
    for page in (text, mixed, []):
        assert page_size(page) == sum(item_size(item) for item in page)
    assert page_size(text) == 3 * (len("pkskn") + len("f#records#01") + len("0045|101|08/20/2025|é".encode()) + 2)
