"""A delivery's time budget: the arithmetic that keeps every wait inside a deadline.  Pure: no I/O, no threads.

The Lambda has a hard limit (900 s); a delivery that is still waiting on a stalled server when it hits
that limit is killed before the run can record its failure.  So the pipeline gives :func:`.sftp.deliver`
a *deadline* (a :func:`time.monotonic` value: the Lambda's remaining time less what the pipeline needs to
write its report), and the delivery keeps to it:

- no attempt starts with less than ``RetryPolicy.min_attempt_seconds`` left (:meth:`Budget.can_start`);
- each phase's timeout, and each single wait on the server, is the smaller of its own limit and the time
  left (:meth:`Budget.clip`), so no wait ends after the deadline;
- a backoff sleep is shortened so the next attempt still starts with its minimum (:meth:`Budget.sleep_for`);
- what no timeout covers is cut by the attempt's watchdog at the deadline plus :data:`WATCHDOG_GRACE`.

A delivery therefore returns or raises by ``deadline + DEADLINE_SLACK`` (in practice within a few tenths
of a second of it).  ``deadline=None`` means no budget: every method then answers as if time were endless,
and the delivery behaves exactly as it did before budgets existed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]

#: The promise to callers: :func:`.sftp.deliver` returns or raises at the latest this long after its deadline.
DEADLINE_SLACK = 2.0
#: How long after a wait should have ended the watchdog closes the connection (so a timeout paramiko does
#: honour fires first, with its own error).
WATCHDOG_GRACE = 0.25
#: The shortest timeout ever handed to a socket: 0 would mean "non-blocking" to socket and paramiko.
MIN_WAIT = 0.001


@dataclass(frozen=True, slots=True)
class Budget:
    """The time a delivery may take: until ``deadline`` on ``clock``, or forever when ``deadline`` is None."""

    deadline: float | None = None
    clock: Clock = time.monotonic
    #: The clock's reading when the budget was made: ``allowed`` is measured from here.
    started: float = field(default=math.nan)

    def __post_init__(self) -> None:
        if math.isnan(self.started):
            object.__setattr__(self, "started", self.clock())
        if self.deadline is not None and math.isnan(self.deadline):
            raise ValueError("deadline must be a clock reading or None")

    @property
    def limited(self) -> bool:
        return self.deadline is not None

    @property
    def allowed(self) -> float:
        """Seconds the budget granted when it was made (``inf`` without a deadline)."""
        return math.inf if self.deadline is None else max(0.0, self.deadline - self.started)

    def remaining(self) -> float:
        """Seconds left (negative once the deadline has passed; ``inf`` without a deadline)."""
        return math.inf if self.deadline is None else self.deadline - self.clock()

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def clip(self, limit: float) -> float:
        """A phase's or a wait's own ``limit``, cut to the time left; never below :data:`MIN_WAIT`."""
        return max(MIN_WAIT, min(limit, self.remaining()))

    def can_start(self, minimum: float) -> bool:
        """Is there time for an attempt that needs at least ``minimum`` seconds?"""
        return self.remaining() >= minimum

    def sleep_for(self, delay: float, minimum: float) -> float:
        """The backoff ``delay`` shortened so that ``minimum`` seconds are left after it (0 if they are not now)."""
        return max(0.0, min(delay, self.remaining() - minimum))

    def alarm(self, limit: float) -> float:
        """When a wait of (clipped) ``limit`` seconds starting now is overdue: the watchdog's moment."""
        return self.clock() + self.clip(limit) + WATCHDOG_GRACE


def seconds(value: float) -> str:
    """Seconds for a person: ``10 s``, ``2.5 s``, ``840 s``."""
    if math.isinf(value):
        return "unlimited time"
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s".replace(".0 s", " s")
