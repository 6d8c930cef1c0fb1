"""Backoff schedule and which failures are retried: pure, with the clock and randomness injected."""

from __future__ import annotations

import pytest

from programs_bridge.delivery.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    DeliveryError,
    HostKeyRejected,
    TransferIncomplete,
)
from programs_bridge.delivery.retry import RetryPolicy, backoff_delay, call_with_retries


def test_backoff_doubles_up_to_the_cap_and_jitter_scales_it() -> None:
    policy = RetryPolicy(attempts=10, base_delay=1.0, max_delay=5.0)
    assert [backoff_delay(policy, n, 0.999999) for n in range(1, 6)] == pytest.approx([1, 2, 4, 5, 5], rel=1e-5)
    assert backoff_delay(policy, 3, 0.5) == pytest.approx(2.0)
    assert backoff_delay(policy, 3, 0.0) == 0.0


def test_transient_failures_are_retried_until_one_succeeds() -> None:
    sleeps: list[float] = []
    outcomes: list[Exception | str] = [ConnectionFailed("reset"), TransferIncomplete("short"), "delivered"]

    def operation(attempt: int) -> str:
        outcome = outcomes[attempt - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    result = call_with_retries(
        operation, RetryPolicy(attempts=5, base_delay=1, max_delay=30), sleep=sleeps.append, unit_random=lambda: 0.5
    )
    assert result == "delivered"
    assert sleeps == [0.5, 1.0]


def test_giving_up_reraises_the_last_error_with_the_attempt_count() -> None:
    sleeps: list[float] = []

    def operation(attempt: int) -> None:
        raise ConnectionFailed(f"refused on attempt {attempt}")

    with pytest.raises(ConnectionFailed, match="attempt 3") as caught:
        call_with_retries(operation, RetryPolicy(attempts=3), sleep=sleeps.append, unit_random=lambda: 1.0)
    assert caught.value.attempts == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    "error", [HostKeyRejected("h", 22, "ssh-ed25519", "SHA256:x"), AuthenticationFailed("refused")]
)
def test_host_key_and_authentication_failures_are_never_retried(error: DeliveryError) -> None:
    calls: list[int] = []

    def operation(attempt: int) -> None:
        calls.append(attempt)
        raise error

    with pytest.raises(type(error)):
        call_with_retries(operation, RetryPolicy(attempts=5), sleep=lambda _: None)
    assert calls == [1]


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
