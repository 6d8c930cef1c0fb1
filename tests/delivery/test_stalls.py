"""A stalled, slow, cut or refusing server, through the TCP proxy in front of a real sshd: a delivery given a
deadline always ends by it (plus :data:`DEADLINE_SLACK`), and one without a deadline behaves as it always did.

Timing: upper bounds are the deadline plus the slack, or generous multiples of a timeout; the one lower
bound (the stalled upload waits until its deadline) holds however slow the machine is.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import paramiko
import pytest
from paramiko.sftp_client import SFTPClient

from programs_bridge.delivery import (
    DEADLINE_SLACK,
    ConnectionFailed,
    RetryPolicy,
    TimeBudgetExceeded,
    Timeouts,
    deliver,
)
from support.proxy import BOTH, DOWNSTREAM, UPSTREAM, TcpProxy
from support.sshd import KeyPair, SshdServer

from .conftest import QUICK_RETRY, MakeTarget, files_on, key_credentials

pytestmark = pytest.mark.sshd


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "programs.txt"
    path.write_bytes(os.urandom(24 * 1024 * 1024 + 7))
    return path


def test_a_server_that_stalls_mid_upload_ends_with_the_time_budget_error_within_the_budget(
    sshd: SshdServer, proxy: TcpProxy, make_proxied_target: MakeTarget, client_key: KeyPair, programs_txt: Path
) -> None:
    proxy.stall(UPSTREAM, after_bytes=1_000_000)  # the handshake, then about 1 MB of the upload, then silence
    started = time.monotonic()
    with pytest.raises(TimeBudgetExceeded) as caught:
        deliver(
            programs_txt,
            make_proxied_target(),  # default timeouts: a single io wait may last 60 s
            key_credentials(sshd, client_key),
            retry=QUICK_RETRY,
            deadline=started + 10.0,
        )
    elapsed = time.monotonic() - started
    assert 9.0 <= elapsed < 10.0 + DEADLINE_SLACK
    error = caught.value
    assert (error.code, error.phase, error.attempts, error.retryable) == ("time_budget", "upload", 1, True)
    text = str(error)
    assert f"delivery to [127.0.0.1]:{proxy.port} ran out of time while uploading" in text
    assert "it was allowed 10 s, 1 attempt(s) made" in text
    assert f"of {programs_txt.stat().st_size:,} bytes" in text
    assert proxy.stats().connections == 1
    files = files_on(sshd)
    assert "programs.txt" not in files  # nothing half-written under the final name
    assert len(files) == 1 and files[0].endswith(".part")  # left for the next delivery to remove


def test_a_stall_that_lasts_uses_up_the_retries_budget_and_says_where_it_stopped(
    sshd: SshdServer, proxy: TcpProxy, make_proxied_target: MakeTarget, client_key: KeyPair, programs_txt: Path
) -> None:
    proxy.stall(UPSTREAM, after_bytes=1_000_000)  # and every later connection stalls from its first byte
    policy = RetryPolicy(attempts=5, base_delay=0.2, max_delay=0.5, min_attempt_seconds=1.0)
    started = time.monotonic()
    with pytest.raises(TimeBudgetExceeded) as caught:
        deliver(
            programs_txt,
            make_proxied_target(timeouts=Timeouts(io=1.0)),
            key_credentials(sshd, client_key),
            retry=policy,
            deadline=started + 6.0,
        )
    assert time.monotonic() - started < 6.0 + DEADLINE_SLACK
    # Attempt 1's upload timed out after 1 s (retryable); attempt 2's handshake (banner 15 s, handshake
    # 30 s) was cut off at the deadline.
    error = caught.value
    assert (error.phase, error.attempts) == ("handshake", 2)
    assert "during the SSH handshake" in str(error) and "2 attempt(s) made" in str(error)
    assert isinstance(error.__cause__, ConnectionFailed)
    assert proxy.stats().connections == 2


@pytest.mark.parametrize("budget", [None, 60.0], ids=["no-deadline", "deadline"])
def test_a_connection_cut_mid_upload_is_retried_and_delivers(
    sshd: SshdServer,
    proxy: TcpProxy,
    make_proxied_target: MakeTarget,
    client_key: KeyPair,
    programs_txt: Path,
    budget: float | None,
) -> None:
    proxy.cut(after_bytes=1_500_000, direction=UPSTREAM)  # one-shot: the retry's connection passes
    receipt = deliver(
        programs_txt,
        make_proxied_target(),
        key_credentials(sshd, client_key),
        retry=QUICK_RETRY,
        deadline=None if budget is None else time.monotonic() + budget,
    )
    assert receipt.attempts == 2
    assert receipt.stale_temps_removed == 1  # the cut attempt's temporary file
    assert (sshd.sftp_root / "programs.txt").read_bytes() == programs_txt.read_bytes()
    assert files_on(sshd) == ["programs.txt"]
    stats = proxy.stats()
    assert (stats.cuts, stats.connections) == (1, 2)


def test_a_slow_drip_server_is_bounded_by_the_deadline_not_by_the_io_timeout(
    sshd: SshdServer, proxy: TcpProxy, make_proxied_target: MakeTarget, client_key: KeyPair, big_file: Path
) -> None:
    acknowledged: list[int] = []

    def drip_after_the_first_ack(done: int, total: int) -> None:
        if not acknowledged:
            # ~300 bytes/s of answers: an acknowledgement (under 100 bytes) every fraction of a second, far
            # inside the 3 s io timeout, so no single wait ever times out; 24 MiB would take minutes.
            proxy.drip(300, DOWNSTREAM)
        acknowledged.append(done)

    started = time.monotonic()
    with pytest.raises(TimeBudgetExceeded) as caught:
        deliver(
            big_file,
            make_proxied_target(timeouts=Timeouts(io=3.0)),
            key_credentials(sshd, client_key),
            retry=RetryPolicy(attempts=3, base_delay=0.1, min_attempt_seconds=1.0),
            progress=drip_after_the_first_ack,
            deadline=started + 6.0,
        )
    assert time.monotonic() - started < 6.0 + DEADLINE_SLACK
    error = caught.value
    assert (error.phase, error.attempts) == ("upload", 1)  # never an io timeout, so never a retry
    assert len(acknowledged) >= 3  # the server kept answering, slowly
    assert acknowledged[-1] < big_file.stat().st_size
    assert proxy.stats().connections == 1


def test_without_a_deadline_a_stalled_attempt_costs_one_io_timeout_and_sends_nothing_after_it(
    sshd: SshdServer,
    proxy: TcpProxy,
    make_proxied_target: MakeTarget,
    client_key: KeyPair,
    programs_txt: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: the acknowledgement wait, then closing the file handle, then removing the temporary file each
    waited the io timeout on the dead channel (3 x io).  Now the first timeout ends the attempt."""
    sent_after_timeout: list[int] = []
    timed_out: list[float] = []
    real_read, real_send = getattr(SFTPClient, "_read_response"), getattr(SFTPClient, "_async_request")  # noqa: B009

    def read_response(self: SFTPClient, waitfor: int | None = None) -> Any:
        try:
            return real_read(self, waitfor)
        except TimeoutError:
            timed_out.append(time.monotonic())
            raise

    def async_request(self: SFTPClient, fileobj: Any, t: int, *args: Any) -> Any:
        if timed_out:
            sent_after_timeout.append(t)
        return real_send(self, fileobj, t, *args)

    monkeypatch.setattr(SFTPClient, "_read_response", read_response)
    monkeypatch.setattr(SFTPClient, "_async_request", async_request)
    stalled: list[float] = []

    def stall_a_quarter_in(done: int, total: int) -> None:
        if not stalled and done > total // 4:
            proxy.stall(BOTH)
            stalled.append(time.monotonic())

    io = 1.5
    with pytest.raises(ConnectionFailed) as caught:  # no deadline: today's error, today's code
        deliver(
            programs_txt,
            make_proxied_target(timeouts=Timeouts(io=io)),
            key_credentials(sshd, client_key),
            retry=RetryPolicy(attempts=1),
            progress=stall_a_quarter_in,
        )
    ended = time.monotonic()
    assert caught.value.code == "connection_failed" and "uploading to" in str(caught.value)
    assert len(timed_out) == 1 and sent_after_timeout == []
    assert ended - stalled[0] < 2 * io  # one io timeout and a prompt close (it was 3 x io)


def test_a_budget_too_short_for_an_attempt_never_connects(
    sshd: SshdServer, proxy: TcpProxy, make_proxied_target: MakeTarget, client_key: KeyPair, programs_txt: Path
) -> None:
    with pytest.raises(TimeBudgetExceeded) as caught:
        deliver(
            programs_txt,
            make_proxied_target(),
            key_credentials(sshd, client_key),
            deadline=time.monotonic() + 2.0,  # the default policy wants 5 s for an attempt
        )
    assert (caught.value.phase, caught.value.attempts) == ("start", 0)
    assert proxy.stats().connections == 0


def test_refused_connections_are_retried_and_the_next_delivery_gets_through(
    sshd: SshdServer, proxy: TcpProxy, make_proxied_target: MakeTarget, client_key: KeyPair, programs_txt: Path
) -> None:
    proxy.refuse()
    with pytest.raises(ConnectionFailed, match="connecting to") as caught:
        deliver(
            programs_txt,
            make_proxied_target(),
            key_credentials(sshd, client_key),
            retry=RetryPolicy(attempts=2, base_delay=0.1),
            deadline=time.monotonic() + 30.0,
        )
    assert caught.value.attempts == 2
    proxy.pass_through()
    receipt = deliver(programs_txt, make_proxied_target(), key_credentials(sshd, client_key))
    assert receipt.attempts == 1
    assert (sshd.sftp_root / "programs.txt").read_bytes() == programs_txt.read_bytes()


@pytest.mark.parametrize("budget", [None, 1.5], ids=["channel-limit", "deadline"])
def test_a_wait_paramiko_has_no_timeout_for_is_ended_by_the_watchdog(
    sshd: SshdServer,
    proxy: TcpProxy,
    make_proxied_target: MakeTarget,
    client_key: KeyPair,
    programs_txt: Path,
    monkeypatch: pytest.MonkeyPatch,
    budget: float | None,
) -> None:
    """paramiko waits for the reply to the SFTP subsystem request without any timeout: a server that stalls
    just then used to hang the delivery for good."""
    real = paramiko.Channel.invoke_subsystem

    def stall_first(self: paramiko.Channel, subsystem: str) -> None:
        proxy.stall(BOTH)
        real(self, subsystem)

    monkeypatch.setattr(paramiko.Channel, "invoke_subsystem", stall_first)
    started = time.monotonic()
    expected: type[Exception] = ConnectionFailed if budget is None else TimeBudgetExceeded
    with pytest.raises(expected) as caught:
        deliver(
            programs_txt,
            # Without a deadline the channel limit (1 s) ends the wait; with one, the 10 s limit is cut to it.
            make_proxied_target(timeouts=Timeouts(channel=1.0 if budget is None else 10.0)),
            key_credentials(sshd, client_key),
            retry=RetryPolicy(attempts=1, min_attempt_seconds=0.5),
            deadline=None if budget is None else started + budget,
        )
    assert time.monotonic() - started < 1.5 + DEADLINE_SLACK
    if budget is None:
        assert "while opening the SFTP session" in str(caught.value) and "no answer within 1 s" in str(caught.value)
    else:
        assert isinstance(caught.value, TimeBudgetExceeded) and caught.value.phase == "channel"


def test_a_delivery_through_a_passing_proxy_is_an_ordinary_delivery(
    sshd: SshdServer, proxy: TcpProxy, make_proxied_target: MakeTarget, client_key: KeyPair, programs_txt: Path
) -> None:
    receipt = deliver(
        programs_txt, make_proxied_target(), key_credentials(sshd, client_key), deadline=time.monotonic() + 60
    )
    assert (receipt.attempts, receipt.stale_temps_removed) == (1, 0)
    assert (sshd.sftp_root / "programs.txt").read_bytes() == programs_txt.read_bytes()
    assert proxy.stats().bytes_up > programs_txt.stat().st_size
