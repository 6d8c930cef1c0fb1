"""The time budget's arithmetic, with a fake clock: clipping, starting attempts, backoff, the error's words.

Nothing here waits on the real clock, except the two small checks at the end that a silent server and a
hanging name lookup are cut off at the deadline (bounded above generously, never below by speed).
"""

from __future__ import annotations

import math
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from programs_bridge.delivery import (
    DEADLINE_SLACK,
    ConnectionFailed,
    DeliveryError,
    RetryPolicy,
    SftpCredentials,
    SftpTarget,
    TimeBudgetExceeded,
    Timeouts,
    TransferIncomplete,
    deliver,
)
from programs_bridge.delivery import sftp as sftp_module
from programs_bridge.delivery.budget import MIN_WAIT, WATCHDOG_GRACE, Budget, seconds
from programs_bridge.delivery.errors import PHASES
from programs_bridge.delivery.retry import call_with_retries
from support.sshd import KeyPair


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


# --- Budget -------------------------------------------------------------------------------------------


def test_without_a_deadline_time_is_endless() -> None:
    budget = Budget(None, FakeClock())
    assert budget.remaining() == math.inf and not budget.expired() and not budget.limited
    assert budget.clip(60.0) == 60.0
    assert budget.can_start(1e9)
    assert budget.sleep_for(7.5, 5.0) == 7.5
    assert budget.allowed == math.inf


def test_timeouts_are_clipped_to_what_remains() -> None:
    clock = FakeClock()
    budget = Budget(clock.now + 10.0, clock)
    assert budget.allowed == 10.0
    assert budget.clip(60.0) == 10.0  # the io timeout, cut to the budget
    assert budget.clip(3.0) == 3.0  # a shorter limit stays
    clock.now += 8.5
    assert budget.clip(60.0) == pytest.approx(1.5)
    assert budget.alarm(60.0) == pytest.approx(clock.now + 1.5 + WATCHDOG_GRACE)
    clock.now += 2.0  # past the deadline
    assert budget.expired() and budget.remaining() == pytest.approx(-0.5)
    assert budget.clip(60.0) == MIN_WAIT  # never 0, which sockets read as "non-blocking"
    assert budget.allowed == 10.0  # what was granted, not what is left


def test_an_attempt_starts_only_with_its_minimum_left() -> None:
    clock = FakeClock()
    budget = Budget(clock.now + 6.0, clock)
    assert budget.can_start(5.0)
    clock.now += 1.5
    assert not budget.can_start(5.0)
    assert budget.can_start(4.5)


def test_backoff_is_shortened_so_the_next_attempt_keeps_its_minimum() -> None:
    clock = FakeClock()
    budget = Budget(clock.now + 20.0, clock)
    assert budget.sleep_for(8.0, 5.0) == 8.0  # 20 - 8 = 12 left: fine
    assert budget.sleep_for(30.0, 5.0) == 15.0  # cut so that 5 s remain
    clock.now += 17.0
    assert budget.sleep_for(2.0, 5.0) == 0.0  # 3 s left: no point sleeping, no attempt either


def test_seconds_read_like_a_person_would_write_them() -> None:
    assert [seconds(v) for v in (840.2, 10.0, 2.5, 2.0, 0.04, math.inf)] == [
        "840 s",
        "10 s",
        "2.5 s",
        "2 s",
        "0 s",
        "unlimited time",
    ]


# --- the retry loop under a budget ------------------------------------------------------------------


def test_no_budget_retries_exactly_as_before() -> None:
    clock = FakeClock()
    calls: list[int] = []

    def operation(attempt: int) -> str:
        calls.append(attempt)
        if attempt < 3:
            raise ConnectionFailed("reset")
        return "delivered"

    result = call_with_retries(operation, RetryPolicy(attempts=5), sleep=clock.sleep, unit_random=lambda: 0.5)
    assert (result, calls, clock.now) == ("delivered", [1, 2, 3], 1000.0 + 0.5 + 1.0)


def test_a_budget_too_small_for_any_attempt_raises_before_connecting() -> None:
    clock = FakeClock()
    calls: list[int] = []
    with pytest.raises(TimeBudgetExceeded) as caught:
        call_with_retries(
            calls.append,
            RetryPolicy(min_attempt_seconds=5.0),
            sleep=clock.sleep,
            budget=Budget(clock.now + 3.0, clock),
            where="[sftp.example]:22",
        )
    error = caught.value
    assert calls == [] and error.attempts == 0 and error.phase == "start" and error.retryable
    assert error.code == "time_budget"
    text = str(error)
    assert "[sftp.example]:22" in text and "before the first attempt could start" in text
    assert "allowed 3.0 s" in text.replace("3 s", "3.0 s") and "no attempt was made" in text
    assert "server was not contacted" in text


def test_backoff_never_sleeps_past_the_deadline_and_no_hopeless_attempt_starts() -> None:
    clock = FakeClock()
    starts: list[float] = []

    def operation(attempt: int) -> None:
        starts.append(clock.now)
        clock.now += 4.0  # each attempt takes 4 s to fail
        raise ConnectionFailed(f"reset on attempt {attempt}")

    policy = RetryPolicy(attempts=10, base_delay=16.0, max_delay=30.0, min_attempt_seconds=5.0)
    deadline = clock.now + 30.0
    with pytest.raises(TimeBudgetExceeded) as caught:
        call_with_retries(
            operation, policy, sleep=clock.sleep, unit_random=lambda: 0.99, budget=Budget(deadline, clock)
        )
    # Attempt 1 at 0 s fails at 4 s: its 15.84 s backoff fits (26 s left).  Attempt 2 at 19.84 s fails at
    # 23.84 s with 6.16 s left: its 29.7 s backoff is cut to 1.16 s, so attempt 3 starts at 25 s with exactly
    # the 5 s minimum.  It fails at 29 s: 1 s left, no sleep and no attempt 4.
    assert [t - 1000.0 for t in starts] == pytest.approx([0.0, 19.84, 25.0])
    assert clock.now <= deadline
    error = caught.value
    assert error.attempts == 3 and error.phase == "between_attempts"
    assert "attempt 3 failed: reset on attempt 3" in str(error) and "3 attempt(s) made" in str(error)
    assert isinstance(error.__cause__, ConnectionFailed)


def test_an_attempt_that_ran_out_of_time_is_final() -> None:
    clock = FakeClock()

    def operation(attempt: int) -> None:
        raise TimeBudgetExceeded("[h]:22", "upload", 10.0, attempts=attempt)

    with pytest.raises(TimeBudgetExceeded) as caught:
        call_with_retries(operation, RetryPolicy(attempts=5), sleep=clock.sleep, budget=Budget(clock.now + 60, clock))
    assert caught.value.attempts == 1 and caught.value.phase == "upload"


def test_non_retryable_errors_are_still_not_retried_under_a_budget() -> None:
    clock = FakeClock()
    calls: list[int] = []

    def operation(attempt: int) -> None:
        calls.append(attempt)
        raise DeliveryError("no")

    with pytest.raises(DeliveryError):
        call_with_retries(operation, RetryPolicy(), sleep=clock.sleep, budget=Budget(clock.now + 600, clock))
    assert calls == [1]


def test_the_last_allowed_attempt_reraises_its_own_error() -> None:
    clock = FakeClock()

    def operation(attempt: int) -> None:
        raise TransferIncomplete("short")

    with pytest.raises(TransferIncomplete):
        call_with_retries(operation, RetryPolicy(attempts=2), sleep=clock.sleep, budget=Budget(clock.now + 600, clock))


# --- the error a clerk reads ----------------------------------------------------------------------


def test_the_time_budget_message_names_phase_allowance_and_attempts() -> None:
    error = TimeBudgetExceeded(
        "[sftp.illuminate.example]:22",
        "upload",
        840.0,
        attempts=1,
        detail="the server had acknowledged 1,048,576 of 3,158,073 bytes",
    )
    error.attempts = 2  # set by the retry loop after the fact
    text = str(error)
    assert text.startswith("delivery to [sftp.illuminate.example]:22 ran out of time while uploading")
    assert "1,048,576 of 3,158,073 bytes" in text
    assert "allowed 840 s, 2 attempt(s) made" in text
    assert "ask Illuminate" in text
    assert set(PHASES) >= {"connect", "handshake", "auth", "channel", "upload", "publish", "start"}


def test_every_phase_has_words() -> None:
    for phase, words in PHASES.items():
        text = str(TimeBudgetExceeded("[h]:22", phase, 10.0, attempts=1))
        assert words in text


# --- Timeouts ---------------------------------------------------------------------------------------


def test_timeouts_from_plain_numbers() -> None:
    timeouts = Timeouts.from_mapping({"connect": 5, "io": 30.5})
    assert timeouts == Timeouts(connect=5.0, io=30.5)
    assert timeouts.banner == Timeouts().banner
    assert isinstance(timeouts.connect, float)
    assert Timeouts.from_mapping({}) == Timeouts()


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"io": 0}, "'io' must be a positive number of seconds, not 0"),
        ({"connect": -1}, "'connect' must be a positive"),
        ({"auth": "30"}, "'auth' must be a positive number of seconds, not '30'"),
        ({"channel": True}, "'channel' must be a positive"),
        ({"handshake": math.inf}, "'handshake' must be a positive"),
        ({"banner": math.nan}, "'banner' must be a positive"),
        ({"ioo": 5}, "unknown timeout 'ioo' (known: connect, banner, handshake, auth, channel, io)"),
    ],
)
def test_timeouts_refuse_nonsense_by_name(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match="timeout") as caught:
        Timeouts.from_mapping(values)
    assert complaint in str(caught.value)


def test_the_constructor_validates_too_and_names_every_problem() -> None:
    with pytest.raises(ValueError, match="must be a positive number") as caught:
        Timeouts(io=0, auth=-2)
    assert "'io'" in str(caught.value) and "'auth'" in str(caught.value)


def test_timeouts_work_as_a_pydantic_field_for_the_feed_config() -> None:
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        timeouts: Timeouts = Timeouts()

    assert Settings.model_validate({}).timeouts == Timeouts()
    assert Settings.model_validate({"timeouts": {"io": 20, "connect": 3}}).timeouts == Timeouts(io=20, connect=3)
    for bad in ({"io": 0}, {"iox": 3}, {"io": "soon"}):
        with pytest.raises(ValidationError) as caught:
            Settings.model_validate({"timeouts": bad})
        assert caught.value.errors()[0]["loc"][0] == "timeouts"


def test_a_target_carries_its_timeouts() -> None:
    target = SftpTarget(host="h", known_hosts=(), timeouts=Timeouts.from_mapping({"io": 45}))
    assert target.timeouts.io == 45.0 and SftpTarget(host="h", known_hosts=()).timeouts == Timeouts()


# --- one attempt's timekeeping ----------------------------------------------------------------------


class FakeChannel:
    def __init__(self) -> None:
        self.timeouts: list[float] = []
        self.closed = False

    def settimeout(self, value: float) -> None:
        self.timeouts.append(value)


def test_each_phase_and_each_wait_gets_its_limit_cut_to_the_budget() -> None:
    clock = FakeClock()
    timeouts = Timeouts(connect=10, handshake=30, auth=30, channel=15, io=60)
    attempt = sftp_module._Attempt(Budget(clock.now + 40.0, clock), timeouts, "[h]:22", 1, 100)
    try:
        assert attempt.enter("connect", timeouts.connect) == 10.0
        clock.now += 1
        assert attempt.enter("handshake", timeouts.handshake) == 30.0
        clock.now += 20  # 19 s left
        assert attempt.enter("auth", timeouts.auth) == 19.0
        clock.now += 1
        assert attempt.enter("channel", timeouts.channel) == 15.0
        channel = FakeChannel()
        attempt.channel = channel  # type: ignore[assignment]
        attempt.wait("upload")
        clock.now += 10
        attempt.wait()
        clock.now += 7.5
        attempt.wait()
        assert channel.timeouts == [18.0, 8.0, 0.5]  # io 60 s, cut to what is left each time
        clock.now += 0.5
        with pytest.raises(TimeBudgetExceeded) as caught:
            attempt.wait()  # checked between writes: no request starts after the deadline
        assert caught.value.phase == "upload" and caught.value.attempts == 1
        assert "acknowledged 0 of 100 bytes" in str(caught.value)
    finally:
        attempt.finish()


def test_without_a_budget_the_limits_are_the_configured_ones() -> None:
    clock = FakeClock()
    attempt = sftp_module._Attempt(Budget(None, clock), Timeouts(), "[h]:22", 1, 100)
    try:
        assert [attempt.enter(name, getattr(Timeouts(), name)) for name in ("connect", "auth", "io")] == [
            10.0,
            30.0,
            60.0,
        ]
    finally:
        attempt.finish()


def test_a_connection_failure_at_the_deadline_is_reported_as_the_budget() -> None:
    clock = FakeClock()
    attempt = sftp_module._Attempt(Budget(clock.now + 5.0, clock), Timeouts(), "[h]:22", 2, 100)
    attempt.finish()
    failure = ConnectionFailed("uploading: connection failed (TimeoutError)")
    assert attempt.explain(failure) is failure  # 5 s left: an ordinary timeout
    attempt.phase = "upload"
    clock.now += 5.0
    explained = attempt.explain(failure)
    assert isinstance(explained, TimeBudgetExceeded) and explained.phase == "upload" and explained.attempts == 2
    other = TransferIncomplete("short")
    assert attempt.explain(other) is other  # a real answer stays what it is


# --- two real waits, cut at the deadline --------------------------------------------------------------


def test_a_silent_server_is_cut_off_at_the_deadline_whatever_the_phase_timeouts(
    client_key: KeyPair, tmp_path: Path
) -> None:
    file = tmp_path / "programs.txt"
    file.write_bytes(b"x" * 1000)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never says a word
        port = silent.getsockname()[1]
        target = SftpTarget(host="127.0.0.1", port=port, known_hosts=f"[127.0.0.1]:{port} {client_key.public_line}")
        credentials = SftpCredentials.model_validate({"username": "u", "private_key": client_key.private_text})
        started = time.monotonic()
        with pytest.raises(TimeBudgetExceeded) as caught:
            deliver(
                file,
                target,
                credentials,
                retry=RetryPolicy(attempts=5, min_attempt_seconds=0.5),
                deadline=started + 1.5,
            )
        elapsed = time.monotonic() - started
    assert elapsed < 1.5 + DEADLINE_SLACK  # the banner (15 s) and handshake (30 s) timeouts were cut to 1.5 s
    assert caught.value.phase == "handshake" and caught.value.attempts == 1


def test_a_name_lookup_that_hangs_is_given_up_on_time(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real = socket.getaddrinfo

    def hanging(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "hangs.invalid" and not kwargs.get("flags", 0) & socket.AI_NUMERICHOST:
            release.wait(10)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match=r"looking up 'hangs\.invalid'"):
            sftp_module._connect("hangs.invalid", 22, 0.3)
        assert time.monotonic() - started < 0.3 + DEADLINE_SLACK
    finally:
        release.set()


# --- the watchdog -------------------------------------------------------------------------------------


def test_the_watchdog_fires_once_its_alarm_is_due_and_not_before() -> None:
    fired = threading.Event()
    watchdog = sftp_module._Watchdog(time.monotonic, fired.set)
    try:
        watchdog.arm(time.monotonic() + 30.0)
        assert not fired.wait(0.2)
        watchdog.arm(time.monotonic() + 0.05)  # moved earlier: it wakes up for it
        assert fired.wait(5.0) and watchdog.fired
    finally:
        watchdog.stop()


def test_a_stopped_watchdog_never_fires() -> None:
    fired = threading.Event()
    watchdog = sftp_module._Watchdog(time.monotonic, fired.set)
    watchdog.arm(time.monotonic() + 0.2)
    watchdog.stop()
    assert not fired.wait(0.4) and not watchdog.fired
