"""The invocation's time, read from the Lambda context, shared out between the stages of the runs in it.

Lambda stops a function at its timeout without warning: a run still waiting on a stalled SFTP server or
still writing a first night's ledger then leaves its report ``in_progress`` and tells nobody.  So every
stage that can take long asks the budget first.  A part of the time, the *reserve*, is kept back from the
work for what must happen whatever went wrong: writing the report, filing the export, telling SNS.
Delivery gets a deadline that ends where the reserve begins; a ledger commit stops at a request boundary
there and continues in a fresh invocation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

#: The most kept back for reporting: a report of 100k findings uploads in a few seconds.
MAX_RESERVE_SECONDS = 30.0
#: The least: delivery may overrun its deadline by up to 2 s (closing a stalled connection), then the
#: report, the filing and the notice need a few seconds of their own.
MIN_RESERVE_SECONDS = 5.0
#: Otherwise a tenth of the invocation's time (and never more than half), so short timeouts still work.
RESERVE_SHARE = 0.1


class RemainingTime(Protocol):
    """The one method of a Lambda context the budget reads."""

    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(frozen=True)
class InvocationBudget:
    """Seconds of work left in this invocation: ``remaining()`` less the ``reserve``."""

    remaining: Callable[[], float]
    reserve: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def from_context(cls, context: RemainingTime) -> InvocationBudget:
        def remaining() -> float:
            return context.get_remaining_time_in_millis() / 1000

        first = remaining()
        reserve = min(MAX_RESERVE_SECONDS, max(MIN_RESERVE_SECONDS, RESERVE_SHARE * first), first / 2)
        return cls(remaining, reserve=reserve)

    @classmethod
    def unlimited(cls) -> InvocationBudget:
        """No deadline: the CLI, and code that runs outside Lambda."""
        return cls(lambda: float("inf"), reserve=0.0)

    def left(self) -> float:
        """Seconds of work left before the reserve."""
        return self.remaining() - self.reserve

    def exhausted(self) -> bool:
        return self.left() <= 0

    def allows_a_run(self) -> bool:
        """Whether another run may start: at least one more reserve's worth of work is left."""
        return self.left() >= self.reserve

    def deadline(self) -> float | None:
        """The ``clock`` value by which work must be done (None: no deadline)."""
        left = self.left()
        return None if left == float("inf") else self.clock() + max(0.0, left)
