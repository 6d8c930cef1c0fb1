"""The invocation's time as the pipeline shares it out: a reserve for reporting, the rest for work."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from programs_bridge.pipeline.budget import InvocationBudget


@dataclass
class Context:
    remaining_ms: int

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.mark.parametrize(
    ("timeout_s", "reserve_s"),
    [(900, 30.0), (120, 12.0), (20, 5.0), (6, 3.0)],  # capped; a tenth; at least 5 s; never over half
)
def test_the_reserve_is_a_tenth_of_the_time_within_bounds(timeout_s: int, reserve_s: float) -> None:
    assert InvocationBudget.from_context(Context(timeout_s * 1000)).reserve == pytest.approx(reserve_s)


def test_work_stops_where_the_reserve_begins_and_the_deadline_says_when() -> None:
    context = Context(900_000)
    budget = InvocationBudget.from_context(context)
    budget = InvocationBudget(budget.remaining, budget.reserve, clock=lambda: 1000.0)
    assert budget.left() == pytest.approx(870.0) and budget.deadline() == pytest.approx(1870.0)
    assert budget.allows_a_run() and not budget.exhausted()
    context.remaining_ms = 50_000  # 20 s of work left: less than one more reserve, so no new run starts
    assert not budget.allows_a_run() and not budget.exhausted()
    context.remaining_ms = 29_000
    assert budget.exhausted() and budget.deadline() == pytest.approx(1000.0)


def test_outside_lambda_there_is_no_deadline() -> None:
    budget = InvocationBudget.unlimited()
    assert budget.deadline() is None and not budget.exhausted() and budget.allows_a_run()
