"""BatchWriteItem discipline: at most 25 items a request, unprocessed items retried with capped backoff.

moto never returns UnprocessedItems, so these tests talk to a fake client that does, like a throttled table.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from programs_bridge.ledger.store import BATCH_SIZE, LedgerError, LedgerStore, backoff_delay, chunks


def item(n: int, pk: str = "feed#records#00") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": f"key-{n}"}, "state": {"S": "open"}}


class ThrottlingClient:
    """Leaves the last ``leave`` items of a request unprocessed, for the first ``times`` requests."""

    def __init__(self, times: int, leave: int = 3) -> None:
        self.times = times
        self.leave = leave
        self.requests: list[list[str]] = []
        self.stored: dict[str, dict[str, Any]] = {}

    def batch_write_item(self, RequestItems: dict[str, Any], **_: Any) -> dict[str, Any]:
        ((table, requests),) = RequestItems.items()
        self.requests.append([r["PutRequest"]["Item"]["sk"]["S"] for r in requests])
        unprocessed = requests[-self.leave :] if len(self.requests) <= self.times else []
        for request in requests[: len(requests) - len(unprocessed)]:
            stored = request["PutRequest"]["Item"]
            self.stored[stored["sk"]["S"]] = stored
        response: dict[str, Any] = {"ConsumedCapacity": [{"TableName": table, "CapacityUnits": 1.0}]}
        response["UnprocessedItems"] = {table: unprocessed} if unprocessed else {}
        return response


def store_with(client: ThrottlingClient, sleeps: list[float], max_attempts: int = 8) -> LedgerStore:
    return LedgerStore("ledger", cast(Any, client), max_attempts=max_attempts, sleep=sleeps.append, draw=lambda: 1.0)


def test_items_go_out_in_requests_of_at_most_25() -> None:
    sizes = [len(chunk) for chunk in chunks(item(n) for n in range(60))]
    assert sizes == [25, 25, 10]
    assert BATCH_SIZE == 25


def test_a_key_repeated_within_a_chunk_starts_a_new_request_so_dynamodb_does_not_reject_it() -> None:
    stream = [item(1), item(2), item(1), item(3)]
    assert [[i["sk"]["S"] for i in chunk] for chunk in chunks(stream)] == [["key-1", "key-2"], ["key-1", "key-3"]]


def test_the_same_sort_key_under_two_partitions_is_two_items_not_a_repeat() -> None:
    assert len(list(chunks([item(1, "a#records#00"), item(1, "a#records#01")]))) == 1


def test_unprocessed_items_are_retried_until_every_item_is_stored() -> None:
    client = ThrottlingClient(times=2)
    sleeps: list[float] = []
    usage, complete = store_with(client, sleeps).write_items(item(n) for n in range(30))
    assert complete
    assert sorted(client.stored) == sorted(f"key-{n}" for n in range(30))
    # 25 + retry 3 + retry 3, then the 5 left over (not throttled any more)
    assert [len(r) for r in client.requests] == [25, 3, 3, 5]
    assert client.requests[1] == client.requests[0][-3:]
    assert usage.requests == 4
    assert usage.retries == 2
    assert usage.items == 30
    assert usage.consumed_units == 4.0


def test_retries_back_off_exponentially_up_to_the_cap() -> None:
    client = ThrottlingClient(times=9)
    sleeps: list[float] = []
    store = LedgerStore(
        "ledger",
        cast(Any, client),
        max_attempts=10,
        backoff_base=0.1,
        backoff_cap=1.0,
        sleep=sleeps.append,
        draw=lambda: 1.0,
    )
    store.write_items([item(1), item(2), item(3)])
    assert sleeps == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])


def test_backoff_is_jittered_below_its_ceiling() -> None:
    assert backoff_delay(3, 0.1, 5.0, lambda: 0.25) == pytest.approx(0.2)
    assert backoff_delay(30, 0.1, 5.0, lambda: 0.5) == pytest.approx(2.5)


def test_writing_gives_up_after_max_attempts_and_says_how_many_items_without_naming_them() -> None:
    client = ThrottlingClient(times=100)
    sleeps: list[float] = []
    with pytest.raises(LedgerError) as raised:
        store_with(client, sleeps, max_attempts=4).write_items(item(n) for n in range(10))
    assert len(client.requests) == 4
    assert "3 ledger item(s) still unprocessed after 4 attempts" in str(raised.value)
    assert "key-" not in str(raised.value)


def test_a_write_asked_to_stop_ends_at_a_request_boundary_and_says_it_is_incomplete() -> None:
    client = ThrottlingClient(times=0)
    asked: list[int] = []

    def stop() -> bool:
        asked.append(len(client.requests))
        return len(asked) > 2  # time runs out before the third request

    usage, complete = store_with(client, []).write_items((item(n) for n in range(100)), stop)
    assert not complete
    assert usage.items == 50 and usage.requests == 2
    assert sorted(client.stored) == sorted(f"key-{n}" for n in range(50))  # whole requests, nothing half-sent


class ThrottlingReader:
    """Answers a BatchGetItem with all but its last ``leave`` keys, for the first ``times`` requests."""

    def __init__(self, times: int, leave: int = 3) -> None:
        self.times, self.leave = times, leave
        self.requests: list[int] = []

    def batch_get_item(self, RequestItems: dict[str, Any], **_: Any) -> dict[str, Any]:
        ((table, request),) = RequestItems.items()
        keys = request["Keys"]
        self.requests.append(len(keys))
        unprocessed = keys[-self.leave :] if len(self.requests) <= self.times else []
        answered = keys[: len(keys) - len(unprocessed)]
        response: dict[str, Any] = {
            "Responses": {table: [{"sk": key["sk"], "end_date": {"S": "06/01/2026"}} for key in answered]},
            "ConsumedCapacity": [{"TableName": table, "CapacityUnits": 1.0}],
        }
        response["UnprocessedKeys"] = {table: {"Keys": unprocessed}} if unprocessed else {}
        return response


def test_unread_keys_of_an_end_date_lookup_are_asked_again_with_backoff() -> None:
    client = ThrottlingReader(times=2)
    sleeps: list[float] = []
    keys = [f"s{n}\t144\t08/15/2025\t12" for n in range(150)]
    found = store_with(cast(Any, client), sleeps).record_end_dates("feed", keys)
    assert found == dict.fromkeys(keys, "06/01/2026")
    assert client.requests == [100, 3, 3, 50] and len(sleeps) == 2


def test_an_end_date_lookup_gives_up_after_max_attempts_without_naming_the_keys() -> None:
    client = ThrottlingReader(times=100)
    with pytest.raises(LedgerError) as raised:
        store_with(cast(Any, client), [], max_attempts=4).record_end_dates("feed", ["s1\t144\t08/15/2025\t12"] * 5)
    assert "ledger record(s) still unread after 4 attempts" in str(raised.value)
    assert "s1" not in str(raised.value)
