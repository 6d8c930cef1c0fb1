"""The Lambda entry point, ``programs_bridge.pipeline.handler.lambda_handler``.

Kept deliberately thin: the function's init phase imports only boto3 (every run needs it, and the SDK is the
baseline cold-start cost of any Python Lambda).  The pipeline itself (the converter, the ledger, pydantic,
Powertools batch processing and idempotency, the X-Ray SDK) is imported by the first event that needs it, in
``wiring.py``: events that carry no work (S3's test event, folders, other prefixes) never pay for it, and a
cold start's first event pays exactly once.  ``make bench`` measures both figures.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import boto3  # noqa: F401 - imported during init on purpose: see the module docstring

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@cache
def _wired() -> Handler:
    from programs_bridge.pipeline.wiring import lambda_handler as wired

    return wired


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _wired()(event, context)
