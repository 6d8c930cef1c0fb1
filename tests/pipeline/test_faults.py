"""The pipeline under the faults S3, SQS, AWS and a bad network really produce, end to end through the handler
(moto in server mode, a real sshd): no export is lost, Illuminate is never rolled back, and every failure
leaves a report and a notice."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from programs_bridge.ledger.store import LedgerStore
from programs_bridge.local.demo import FakeContext
from programs_bridge.pipeline import wiring
from programs_bridge.pipeline.journal import Journal
from support.log_leaks import leaked
from support.proxy import DOWNSTREAM, ProxyFactory

from .conftest import BUCKET, FEED, LEDGER, Stack
from .test_handler import ENROLLED, EXITED, PERSONAL, export, ledger_records

NAME = "export.csv"  # one key, overwritten night after night, as districts do


def versions(stack: Stack, key: str) -> list[str]:
    listed = stack.s3.list_object_versions(Bucket=BUCKET, Prefix=key)
    return [v["VersionId"] for v in listed.get("Versions", []) if v["Key"] == key]


def filed_exports(stack: Stack) -> list[str]:
    """The bytes of every export filed under processed/, oldest run first."""
    keys = sorted(k for k in stack.keys(f"processed/{FEED}/") if k.endswith(NAME))
    return [stack.s3.get_object(Bucket=BUCKET, Key=k)["Body"].read().decode() for k in keys]


def test_an_export_overwritten_while_its_run_is_going_is_not_lost_and_the_newer_one_is_delivered(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_deliver = wiring.deliver
    newer: list[dict[str, Any]] = []

    def overwritten_mid_run(*args: Any, **kwargs: Any) -> Any:
        if not newer:  # the district's next export lands on the same key while this one is being sent
            newer.append(stack.drop(export(EXITED), name=NAME))
        return real_deliver(*args, **kwargs)

    monkeypatch.setattr(wiring, "deliver", overwritten_mid_run)
    assert stack.invoke(stack.drop(export(ENROLLED), name=NAME)) == {"batchItemFailures": []}
    # Filing the first run removed its own version only: the newer one is still waiting, untouched.
    assert stack.keys(f"incoming/{FEED}/") == [f"incoming/{FEED}/{NAME}"]
    assert len(versions(stack, f"incoming/{FEED}/{NAME}")) == 1

    assert stack.invoke(newer[0]) == {"batchItemFailures": []}
    reports = sorted(stack.reports(), key=lambda r: r["run_id"])
    assert [r["status"] for r in sorted(reports, key=lambda r: r["finished_at"])] == ["delivered", "delivered"]
    assert "06/05/2026" in (stack.delivered() or "")  # the newer export is what Illuminate has
    assert sorted(filed_exports(stack)) == sorted([export(ENROLLED), export(EXITED)])
    assert stack.keys(f"incoming/{FEED}/") == []


def test_a_run_retried_after_a_newer_export_was_delivered_is_superseded_and_sends_nothing(stack: Stack) -> None:
    stack.sshd.kill()
    older = stack.drop(export(ENROLLED), name=NAME)
    assert len(stack.invoke(older)["batchItemFailures"]) == 1  # planned, then SFTP down: failed, kept
    stack.notices()
    stack.sshd.start()
    newer = stack.drop(export(EXITED), name=NAME)
    assert stack.invoke(newer) == {"batchItemFailures": []}
    on_server = stack.delivered()
    assert on_server is not None and "06/05/2026" in on_server
    store = LedgerStore(LEDGER)
    head = store.head(FEED)
    (stack.sshd.sftp_root / "programs.txt").unlink()

    assert stack.invoke(older) == {"batchItemFailures": []}  # the queue brings the first message back
    assert stack.delivered() is None  # nothing sent over the newer file
    assert store.head(FEED) == head  # the ledger did not go back
    snapshot, _ = store.read_snapshot(FEED)
    assert sum(snapshot.is_open(n) for n in range(len(snapshot))) == 2  # the exit stays an exit
    last = Journal(LEDGER).last_delivered(FEED)
    assert last is not None and last.run_id == head
    statuses = {r["source"]["version"]: r for r in stack.reports()}
    superseded = [r for r in statuses.values() if r["status"] == "superseded"]
    assert len(superseded) == 1 and head in superseded[0]["reason"]
    assert "failure" not in superseded[0] and superseded[0]["earlier_failures"][0]["failure"] == "delivery"
    assert stack.notices() == [f"programs-bridge {FEED}: export superseded"]
    assert stack.keys(f"incoming/{FEED}/") == []


def test_an_aws_failure_mid_run_is_reported_and_notified_and_the_retry_report_is_clean(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_read = LedgerStore.read_snapshot
    failures = [ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "Query")]

    def throttled(self: LedgerStore, feed: str) -> Any:
        if failures:
            raise failures.pop()
        return real_read(self, feed)

    monkeypatch.setattr(LedgerStore, "read_snapshot", throttled)
    event = stack.drop(export(ENROLLED))
    assert len(stack.invoke(event)["batchItemFailures"]) == 1
    [report] = stack.reports()
    assert report["status"] == "failed" and report["failure"] == "aws" and report["failed_stage"] == "plan"
    assert "Query" in report["reason"] and "ProvisionedThroughputExceededException" in report["reason"]
    assert stack.notices() == [f"programs-bridge {FEED}: export failed"]
    assert len(stack.keys(f"incoming/{FEED}/")) == 1

    assert stack.invoke(event) == {"batchItemFailures": []}
    [report] = stack.reports()
    assert report["status"] == "delivered" and report["reason"] is None and "failure" not in report
    assert [f["failure"] for f in report["earlier_failures"]] == ["aws"]
    assert report["commit"]["records_written"] == 3 and ledger_records() == 3


def test_a_fault_in_our_own_code_is_reported_without_quoting_data_and_retried(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from programs_bridge.pipeline import run as run_module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError(PERSONAL[0])  # a bug whose message quotes a student ID

    monkeypatch.setattr(run_module, "make_plan", broken)
    assert len(stack.invoke(stack.drop(export(ENROLLED)))["batchItemFailures"]) == 1
    [report] = stack.reports()
    assert report["status"] == "failed" and report["failure"] == "internal"
    assert "KeyError" in report["reason"] and PERSONAL[0] not in report["reason"]
    assert stack.notices() == [f"programs-bridge {FEED}: export failed"]
    assert leaked(stack.logs.texts, [PERSONAL[0]]) == []
    assert any("unexpected failure" in text and "broken" in text for text in stack.logs.texts)  # where, for us


def test_a_failure_before_any_run_can_start_is_counted_and_notified(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(self: Journal, feed: str, entry: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalServerError"}}, "PutItem")

    monkeypatch.setattr(Journal, "begin", unreachable)
    assert len(stack.invoke(stack.drop(export(ENROLLED)))["batchItemFailures"]) == 1
    assert stack.reports() == []  # there is no run to report on
    assert stack.notices() == [f"programs-bridge {FEED}: could not start a run"]
    assert any("could not start the run" in text for text in stack.logs.texts)


def test_the_plan_reads_the_ledger_once_and_the_commit_reuses_it(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    real_read = LedgerStore.read_snapshot

    def counted(self: LedgerStore, feed: str) -> Any:
        reads.append(feed)
        return real_read(self, feed)

    monkeypatch.setattr(LedgerStore, "read_snapshot", counted)
    stack.invoke(stack.drop(export(ENROLLED)))
    [first] = stack.reports()
    stack.invoke(stack.drop(export(EXITED)))
    assert reads == [FEED, FEED]  # one read a night: the plan's
    # finished_at has whole seconds, and two nights here often finish within one: tell them apart by run id
    [newest] = [report for report in stack.reports() if report["run_id"] != first["run_id"]]
    assert newest["ledger"]["ledger_read"]["consistent"] is True
    assert newest["commit"]["records_written"] == 1  # the exit
    assert boto3.client("dynamodb").describe_table(TableName=LEDGER)["Table"]["TableName"] == LEDGER


@dataclass(frozen=True)
class DwindlingContext(FakeContext):
    """A Lambda context whose remaining time drops by ``step_ms`` each time anyone asks: the pipeline asks
    before every ledger write request, so a long commit runs out of time at a predictable point."""

    step_ms: int = 10_000
    asked: list[int] = field(default_factory=list)

    def get_remaining_time_in_millis(self) -> int:
        self.asked.append(1)
        return max(0, self.timeout_ms - self.step_ms * len(self.asked))


def test_a_first_night_too_big_for_one_invocation_commits_in_two_and_is_delivered_once(stack: Stack) -> None:
    from programs_bridge.pipeline.handler import lambda_handler

    rows = [f"{900000000 + n},Lastname,Firstname,1/2/2012,144,8/15/2025,,101" for n in range(3000)]
    event = stack.drop(export(rows))
    # About 80 write requests of 25 fit before the reserve: 3,000 records need a second invocation.
    assert lambda_handler(event, DwindlingContext()) == {"batchItemFailures": []}  # handled: continued, not failed
    [report] = stack.reports()
    assert report["status"] == "in_progress" and report["commit"]["complete"] is False
    first_share = report["commit"]["records_written"]
    assert 0 < first_share < 3000 and ledger_records() == first_share
    sent = (stack.sshd.sftp_root / "programs.txt").stat()
    assert stack.keys(f"incoming/{FEED}/")  # not filed until committed

    continuation = stack.queued()  # put back on the queue at once, not after the visibility timeout
    assert continuation is not None and stack.queued() is None
    assert stack.invoke(continuation) == {"batchItemFailures": []}
    [report] = stack.reports()
    assert report["status"] == "delivered" and report["commit"]["complete"] is True
    assert report["commit"]["records_written"] == 3000 and report["commit"]["attempts"] == 2
    assert report["commit"]["ledger_write"]["items"] == 3000 - first_share
    assert ledger_records() == 3000
    assert (stack.sshd.sftp_root / "programs.txt").stat().st_mtime_ns == sent.st_mtime_ns  # delivered once
    assert report["delivery"]["attempts"] == 1
    assert stack.keys(f"incoming/{FEED}/") == []
    assert stack.queued() is None


def test_a_stalled_sftp_server_fails_the_run_within_the_functions_time_with_a_report_and_a_notice(
    stack: Stack, tcp_proxy: ProxyFactory
) -> None:
    proxy = tcp_proxy(stack.sshd.host, stack.sshd.port)
    pins = [line.replace(f"]:{stack.sshd.port} ", f"]:{proxy.port} ") for line in stack.sshd.known_hosts_lines()]
    stack.put_config(stack.config(port=proxy.port, known_hosts=pins, attempts=5, retry_base_seconds=1.0))
    proxy.stall(DOWNSTREAM)  # TCP connects, then the server says nothing more: a hung server
    stack.timeout_ms = 20_000  # a short function timeout; unbudgeted, five 15 s banner waits would outlast it
    event = stack.drop(export(ENROLLED))

    began = time.monotonic()
    assert len(stack.invoke(event)["batchItemFailures"]) == 1
    assert time.monotonic() - began < 20  # finished before Lambda would have killed it
    [report] = stack.reports()
    assert report["status"] == "failed" and report["failure"] == "delivery"
    assert report["delivery"]["error"] == "time_budget"
    assert stack.notices() == [f"programs-bridge {FEED}: export failed"]
    assert len(stack.keys(f"incoming/{FEED}/")) == 1

    proxy.pass_through()  # the server is back: the queue's retry delivers
    stack.timeout_ms = 900_000
    assert stack.invoke(event) == {"batchItemFailures": []}
    [report] = stack.reports()
    assert report["status"] == "delivered" and "failure" not in report
    assert [f["failure"] for f in report["earlier_failures"]] == ["delivery"]
    assert "918273647" in (stack.delivered() or "")


def test_a_retried_run_keeps_every_finding_of_its_conversion_in_the_report_and_the_summary(stack: Stack) -> None:
    damaged = [*ENROLLED, "918273650,Brightwater,Ilse,2/30/2012,144,8/15/2025,,101"]  # an impossible birth date
    stack.put_config(
        stack.config().replace('duplicate_policy = "hold"', 'duplicate_policy = "hold"\nmax_reject_share = 0.5')
    )
    stack.sshd.kill()
    event = stack.drop(export(damaged))
    assert len(stack.invoke(event)["batchItemFailures"]) == 1
    [failed] = stack.reports()
    assert [f["code"] for f in failed["issues"]] == ["impossible_date"]
    stack.sshd.start()
    assert stack.invoke(event) == {"batchItemFailures": []}  # resumed in a new invocation: no conversion at hand
    [report] = stack.reports()
    assert report["status"] == "delivered" and report["issues"] == failed["issues"]
    [summary] = [k for k in stack.keys(f"reports/{FEED}/") if k.endswith(".md")]
    text = stack.s3.get_object(Bucket=BUCKET, Key=summary)["Body"].read().decode()
    assert "DELIVERED" in text and "impossible_date" in text
