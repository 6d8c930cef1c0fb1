"""Query items read as DynamoDB sent them are exactly what botocore's parser would have made of them.

Against the moto server, over HTTP: one client with the hook, one without, the same Queries.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from programs_bridge.ledger import items_as_sent
from programs_bridge.ledger.items_as_sent import read_items_as_sent
from programs_bridge.ledger.store import create_table

TABLE = "as-sent"

#: Every attribute shape the low-level client hands back, but binary.
ITEMS: list[dict[str, Any]] = [
    {"pk": {"S": "p"}, "sk": {"S": "a"}, "state": {"S": "open"}, "end_date": {"S": ""}},
    {"pk": {"S": "p"}, "sk": {"S": "b"}, "line": {"N": "12"}, "matches": {"L": [{"S": "x|1"}, {"S": "y|2"}]}},
    {"pk": {"S": "p"}, "sk": {"S": "c"}, "nested": {"M": {"k": {"S": 'é "quoted" \\ text'}}}, "ok": {"BOOL": True}},
    {"pk": {"S": "p"}, "sk": {"S": "d"}, "gone": {"NULL": True}, "tags": {"SS": ["a", "b"]}, "ns": {"NS": ["1"]}},
]


@pytest.fixture
def clients(aws: Any) -> tuple[Any, Any]:
    plain = boto3.client("dynamodb")
    create_table(TABLE, plain)
    for item in ITEMS:
        plain.put_item(TableName=TABLE, Item=item)
    hooked = boto3.client("dynamodb")
    read_items_as_sent(hooked)
    read_items_as_sent(hooked)  # registering twice must not run the hook twice
    return plain, hooked


def query(client: Any, **extra: Any) -> dict[str, Any]:
    response: dict[str, Any] = client.query(
        TableName=TABLE, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "p"}}, **extra
    )
    response.pop("ResponseMetadata")
    return response


def test_items_as_sent_equal_what_botocore_parses_and_the_hook_really_ran(
    clients: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, hooked = clients
    taken: list[int] = []
    original = items_as_sent.items_as_sent

    def spy(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **kwargs: Any) -> None:
        original(response_dict, customized_response_dict, **kwargs)
        taken.append(len(customized_response_dict.get("Items", [])))

    hooked.meta.events.unregister(items_as_sent.EVENT, unique_id=items_as_sent._UNIQUE_ID)
    hooked.meta.events.register(items_as_sent.EVENT, spy)
    assert query(hooked) == query(plain)
    assert taken == [len(ITEMS)]  # the items came past botocore's parser, once

    # Paged: LastEvaluatedKey (still parsed by botocore) carries the next page, items still equal.
    first = query(hooked, Limit=2)
    assert first == query(plain, Limit=2)
    rest = query(hooked, ExclusiveStartKey=first["LastEvaluatedKey"])
    assert [i["sk"]["S"] for i in first["Items"] + rest["Items"]] == ["a", "b", "c", "d"]


def test_a_page_with_a_binary_value_is_left_to_botocore(clients: tuple[Any, Any]) -> None:
    plain, hooked = clients
    plain.put_item(TableName=TABLE, Item={"pk": {"S": "p"}, "sk": {"S": "e"}, "blob": {"B": b"\x00\xff"}})
    items = query(hooked)["Items"]
    assert items[-1]["blob"]["B"] == b"\x00\xff"  # bytes, as botocore decodes them; the wire has base64 text
    assert query(hooked) == query(plain)


def test_an_error_answer_is_still_raised_by_botocore(clients: tuple[Any, Any]) -> None:
    _, hooked = clients
    with pytest.raises(hooked.exceptions.ResourceNotFoundException):
        hooked.query(
            TableName="no-such-table", KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "p"}}
        )
