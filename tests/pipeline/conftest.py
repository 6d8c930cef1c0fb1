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

from programs_bridge.demo import FakeContext, s3_event_via_sqs
from programs_bridge.ledger.store import create_table
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
    s3: Any = field(default_factory=lambda: boto3.client("s3"))
    nights: int = 0

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
        return f'profile = "powerschool"\nduplicate_policy = "hold"\n[sftp]\n{body}\n'

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

        result: dict[str, Any] = lambda_handler(event, FakeContext())
        return result

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
    topic = boto3.client("sns").create_topic(Name="pb-notices")["TopicArn"]
    for name, value in {
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
            built = Stack(aws, sshd, key, captured, tmp_path / "work")
            built.put_config()
            yield built
    finally:
        for logger in watched:
            logger.removeHandler(captured)
