"""Retries with capped exponential backoff and full jitter, for transient delivery failures only.

Full jitter (a uniform delay between 0 and the capped exponential bound) keeps a fleet of feeds that
failed together, say when the district's server restarted, from reconnecting in lock-step.  Whether an
error is worth retrying is the error's own ``retryable`` flag (see :mod:`.errors`); the loop never
retries host-key or authentication failures.

With a :class:`.budget.Budget` the loop also keeps to a deadline: an attempt starts only with at least
``min_attempt_seconds`` left, a backoff sleep is shortened so the next attempt still gets them, and running
short raises :class:`.errors.TimeBudgetExceeded` (naming the last attempt's failure) instead of trying an
attempt that could not finish.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from programs_bridge.delivery.budget import Budget
from programs_bridge.delivery.errors import DeliveryError, TimeBudgetExceeded

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most ``attempts`` tries; the n-th wait is uniform in [0, min(max_delay, base_delay * 2**(n-1))].

    Under a time budget, no attempt starts with less than ``min_attempt_seconds`` left: connecting,
    the SSH handshake and logging in alone take a second or two, so a shorter attempt could only fail.
    """

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    min_attempt_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay < 0 or self.max_delay < 0 or self.min_attempt_seconds < 0:
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
    budget: Budget | None = None,
    where: str = "the server",
) -> T:
    """Call ``operation(attempt_number)`` until it returns, a non-retryable error, or attempts run out.

    The final error is re-raised with ``attempts`` set to the number of tries made.  With a ``budget``, an
    attempt that cannot get ``policy.min_attempt_seconds`` is not started: :class:`TimeBudgetExceeded`
    (about ``where``) is raised instead, and an attempt's own :class:`TimeBudgetExceeded` is final.
    """
    budget = budget or Budget()
    last: DeliveryError | None = None
    for attempt in range(1, policy.attempts + 1):
        if not budget.can_start(policy.min_attempt_seconds):
            raise _out_of_time(budget, policy, where, attempt - 1, last) from last
        try:
            return operation(attempt)
        except DeliveryError as exc:
            exc.attempts = attempt
            if not exc.retryable or attempt == policy.attempts or isinstance(exc, TimeBudgetExceeded):
                raise
            last = exc
            delay = budget.sleep_for(backoff_delay(policy, attempt, unit_random()), policy.min_attempt_seconds)
            log.warning(
                "delivery attempt failed, retrying",
                extra={"attempt": attempt, "error_code": exc.code, "retry_in_s": round(delay, 2)},
            )
            sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


def _out_of_time(
    budget: Budget, policy: RetryPolicy, where: str, made: int, last: DeliveryError | None
) -> TimeBudgetExceeded:
    left = max(0.0, budget.remaining())
    need = f"{left:.1f} s left, an attempt needs at least {policy.min_attempt_seconds:g} s"
    if last is None:
        return TimeBudgetExceeded(where, "start", budget.allowed, attempts=0, detail=need)
    return TimeBudgetExceeded(
        where, "between_attempts", budget.allowed, attempts=made, detail=f"{need}; attempt {made} failed: {last}"
    )
