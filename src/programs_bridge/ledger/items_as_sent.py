"""Query pages as DynamoDB sent them: the ledger's items are read without botocore's per-value parsing.

Why: reading a ledger is the largest cost of a nightly plan and of a reconcile, and most of it was Python,
not DynamoDB: botocore's response parser walks the output model once per attribute value (profiled on 50k
record items: 4.9 s of the 6.9 s the read took went to ``botocore.parsers``).  DynamoDB's JSON already *is*
the low-level client's item format (``{"S": "..."}``, numbers as text, lists and maps nested the same way),
with one exception: a binary value is base64 text on the wire and ``bytes`` once botocore has parsed it.

So, for a Query answered 200 with a body that holds no binary value, the hook below takes ``Items`` out of
the body before botocore parses the rest (the count, the capacity, ``LastEvaluatedKey``) and hands them back
as they were sent.  It rides botocore's ``before-parse`` event, whose ``customized_response_dict`` is merged
into the parsed response: the same hook botocore itself uses to turn S3's "200 with an error" into an
error (botocore/handlers.py, ``_handle_200_error``).  A body with a binary value anywhere, an error, or a
body that is not JSON is left to botocore untouched, so the answer is always the one botocore would give.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

EVENT = "before-parse.dynamodb.Query"
_UNIQUE_ID = "programs-bridge-items-as-sent"

#: A binary (``B``) or binary-set (``BS``) attribute value, the one shape the wire and botocore spell apart.
#: JSON escapes a quote inside a string, so this cannot match text inside a value: at worst a page is left
#: to botocore.
_BINARY = re.compile(rb'"BS?"\s*:')


def items_as_sent(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """``before-parse`` handler: move a successful Query's ``Items`` past botocore's parser, unchanged."""
    body = response_dict.get("body")
    if response_dict.get("status_code") != 200 or not isinstance(body, bytes) or _BINARY.search(body):
        return
    try:
        data = json.loads(body)
    except ValueError:
        return  # not JSON: botocore's own parser reports it
    if not isinstance(data, dict) or not isinstance(data.get("Items"), list):
        return
    customized_response_dict["Items"] = data.pop("Items")
    response_dict["body"] = json.dumps(data).encode()


def read_items_as_sent(client: DynamoDBClient) -> None:
    """Register :func:`items_as_sent` on ``client`` (once, however often it is called)."""
    client.meta.events.register(EVENT, items_as_sent, unique_id=_UNIQUE_ID)
