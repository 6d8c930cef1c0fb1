"""Retries with capped exponential backoff and full jitter, for transient delivery failures only.

Full jitter (a uniform delay between 0 and the capped exponential bound) keeps a fleet of feeds that
failed together, say when the district's server restarted, from reconnecting in lock-step.  Whether an
error is worth retrying is the error's own ``retryable`` flag (see :mod:`.errors`); the loop never
retries host-key or authentication failures.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from programs_bridge.delivery.errors import DeliveryError

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most ``attempts`` tries; the n-th wait is uniform in [0, min(max_delay, base_delay * 2**(n-1))]."""

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("attempts must be >= 1 and delays >= 0")


def backoff_delay(policy: RetryPolicy, retry: int, unit_random: float) -> float:
    """The wait before retry number ``retry`` (1-based), given a uniform sample in [0, 1)."""
    bound = min(policy.max_delay, policy.base_delay * 2.0 ** (retry - 1))
    return bound * unit_random


def call_with_retries(
    operation: Callable[[int], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    unit_random: Callable[[], float] = random.random,
) -> T:
    """Call ``operation(attempt_number)`` until it returns, a non-retryable error, or attempts run out.

    The final error is re-raised with ``attempts`` set to the number of tries made.
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return operation(attempt)
        except DeliveryError as exc:
            exc.attempts = attempt
            if not exc.retryable or attempt == policy.attempts:
                raise
            delay = backoff_delay(policy, attempt, unit_random())
            log.warning(
                "delivery attempt failed, retrying",
                extra={"attempt": attempt, "error_code": exc.code, "retry_in_s": round(delay, 2)},
            )
            sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
