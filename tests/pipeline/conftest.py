"""An end-to-end stack for the Lambda handler: moto in server mode for S3, DynamoDB, Secrets Manager and SNS,
a real OpenSSH sshd on 127.0.0.1 as the district's Illuminate SFTP server, and every log line captured."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from programs_bridge.ledger.store import create_table
from programs_bridge.local.demo import FakeContext, s3_event_via_sqs
from programs_bridge.local.moto_server import MotoServer
from support.log_leaks import LeakWatch
from support.sshd import KeyPair, SshdServer, generate_key, running_sshd

BUCKET = "district-exports"
FEED = "district"
LEDGER = "pb-ledger"
IDEMPOTENCY = "pb-idempotency"
SECRET = "programs-bridge/district"


@dataclass
class Stack:
    moto: MotoServer
    sshd: SshdServer
    client_key: KeyPair
    logs: LeakWatch
    workdir: Path
    notices_url: str = ""
    drop_queue_url: str = ""
    s3: Any = field(default_factory=lambda: boto3.client("s3"))
    sqs: Any = field(default_factory=lambda: boto3.client("sqs"))
    nights: int = 0
    timeout_ms: int = 900_000
    """The Lambda context's remaining time at the start of each invocation."""

    def config(self, **sftp: object) -> str:
        settings = {
            "host": self.sshd.host,
            "port": self.sshd.port,
            "remote_dir": ".",
            "secret": SECRET,
            "known_hosts": self.sshd.known_hosts_lines(),
            "attempts": 2,
            "retry_base_seconds": 0.1,
            **sftp,
        }
        body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
        # unseeded = "send": these stacks stand for a district new to Illuminate (test_first_night.py holds one)
        return f'profile = "powerschool"\nduplicate_policy = "hold"\nunseeded = "send"\n[sftp]\n{body}\n'

    def put_config(self, text: str | None = None) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=f"config/{FEED}.toml", Body=(text or self.config()).encode())

    def drop(self, text: str, name: str | None = None) -> dict[str, Any]:
        """Put an export under incoming/<feed>/ and return the SQS event AWS would send for it."""
        self.nights += 1
        key = f"incoming/{FEED}/{name or f'export {self.nights:02d}.csv'}"
        body = text.encode()
        response = self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return s3_event_via_sqs(BUCKET, key, dict(response), len(body))

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        from programs_bridge.pipeline.handler import lambda_handler

        result: dict[str, Any] = lambda_handler(event, FakeContext(timeout_ms=self.timeout_ms))
        return result

    def notices(self) -> list[str]:
        """The subjects of the SNS notices sent since the last call (SNS delivers them to a test queue)."""
        subjects = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.notices_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return subjects
            for message in messages:
                subjects.append(json.loads(message["Body"])["Subject"])
                self.sqs.delete_message(QueueUrl=self.notices_url, ReceiptHandle=message["ReceiptHandle"])

    def queued(self) -> dict[str, Any] | None:
        """The next message the pipeline put on the drop queue (a continuation), as the SQS event Lambda
        would hand over, or None."""
        messages = self.sqs.receive_message(QueueUrl=self.drop_queue_url, MaxNumberOfMessages=1).get("Messages", [])
        if not messages:
            return None
        [message] = messages
        self.sqs.delete_message(QueueUrl=self.drop_queue_url, ReceiptHandle=message["ReceiptHandle"])
        record = {
            "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:pb-drops",
            "awsRegion": "us-east-1",
        }  # fmt: skip
        return {"Records": [record]}

    def report_of(self, name: str) -> dict[str, Any]:
        """The one report of the export dropped as ``name``."""
        [report] = [r for r in self.reports() if r["source"]["key"].endswith("/" + name)]
        return report

    def delivered(self) -> str | None:
        path = self.sshd.sftp_root / "programs.txt"
        return path.read_text(encoding="utf-8") if path.exists() else None

    def keys(self, prefix: str) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return sorted(obj["Key"] for obj in listing.get("Contents", []))

    def reports(self) -> list[dict[str, Any]]:
        keys = [k for k in self.keys(f"reports/{FEED}/") if k.endswith(".json")]
        return [json.loads(self.s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in keys]


@pytest.fixture
def stack(aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    create_table(LEDGER)
    boto3.client("dynamodb").create_table(
        TableName=IDEMPOTENCY,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="pb-notices")["TopicArn"]
    notices_url = sqs.create_queue(QueueName="pb-notices")["QueueUrl"]
    notices_arn = sqs.get_queue_attributes(QueueUrl=notices_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=notices_arn, Attributes={"RawMessageDelivery": "false"})
    drop_queue_url = sqs.create_queue(QueueName="pb-drops")["QueueUrl"]
    for name, value in {
        "DROP_QUEUE_URL": drop_queue_url,
        "LEDGER_TABLE": LEDGER,
        "IDEMPOTENCY_TABLE": IDEMPOTENCY,
        "NOTIFY_TOPIC_ARN": topic,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PROGRAMS_BRIDGE_WORKDIR": str(tmp_path / "work"),
    }.items():
        monkeypatch.setenv(name, value)
    from programs_bridge.pipeline import wiring as handler

    monkeypatch.setattr(handler, "WORKDIR", tmp_path / "work")
    parameters.clear_caches()  # each test has its own client key behind the same secret name
    captured = LeakWatch()
    watched = [logging.getLogger(), logging.getLogger("programs-bridge"), logging.getLogger("programs_bridge")]
    for logger in watched:
        logger.addHandler(captured)
    key = generate_key(tmp_path, "ed25519")
    try:
        with running_sshd() as sshd:
            sshd.authorize(key.public_line)
            secret = {"username": sshd.user, "private_key": key.private_text}
            boto3.client("secretsmanager").create_secret(Name=SECRET, SecretString=json.dumps(secret))
            built = Stack(aws, sshd, key, captured, tmp_path / "work", notices_url, drop_queue_url)
            built.put_config()
            yield built
    finally:
        for logger in watched:
            logger.removeHandler(captured)
