"""What DynamoDB's conditional writes answer, in one place: the pipeline's lease and journal rely on them."""

from __future__ import annotations

from botocore.exceptions import ClientError


def condition_failed(exc: ClientError) -> bool:
    """The write was refused because its condition did not hold (the expected, not an error, outcome)."""
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
