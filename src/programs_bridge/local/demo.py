"""``programs-bridge demo``: the whole pipeline on a laptop, on an embedded local stack.

Starts moto in server mode (S3, DynamoDB, Secrets Manager, SNS) and a pure-Python SFTP server on 127.0.0.1,
creates the bucket, tables, secret and feed configuration the SAM template would, then drops each export into
``incoming/<feed>/`` as the next night and invokes the real Lambda handler with the S3-via-SQS event AWS would
send.  After each night it prints the run's summary and copies what reached the SFTP server to
``DIR/NN-programs.txt`` and the run report to ``DIR/NN-report.json``.

With no exports it plays the bundled story: enrolments, then exits, then a re-keyed exit that the ledger holds
as a duplicate risk, then a course roster dropped by mistake.  Needs the dev extras (moto, asyncssh), which
``make demo`` installs; nothing here is imported by the Lambda.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import boto3

from programs_bridge.ledger.store import create_table
from programs_bridge.local.moto_server import MotoServer, moto_server
from programs_bridge.local.sftp_server import LocalSftp, local_sftp
from programs_bridge.pipeline.events import ObjectRef, s3_record

FEED = "district"
BUCKET = "programs-bridge-demo"
LEDGER_TABLE = "programs-bridge-ledger"
IDEMPOTENCY_TABLE = "programs-bridge-idempotency"
SECRET_NAME = "programs-bridge/district-sftp"  # noqa: S105 - a name in Secrets Manager, not a secret


@dataclass(frozen=True)
class FakeContext:
    """The parts of a Lambda context the handler and Powertools read."""

    function_name: str = "programs-bridge-demo"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:programs-bridge-demo"
    aws_request_id: str = "demo"
    log_group_name: str = "/aws/lambda/programs-bridge-demo"
    log_stream_name: str = "demo"
    #: The function's timeout: what Lambda's context counts down from (the template's default, 900 s).
    timeout_ms: int = 900_000
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.timeout_ms - int((time.monotonic() - self.started) * 1000))


def story(folder: Path) -> list[Path]:
    """The bundled nights, generated (synthetic, no real students) into ``folder``."""
    from programs_bridge.local.synthetic import COURSE_ROSTER_HEADER, course_roster, generate, write_table

    monday = folder / "night1-enrolments.csv"
    generate(monday, "powerschool", 40, seed=7)
    with monday.open(encoding="utf-8", newline="") as source:
        header, *rows = list(csv.reader(source))
    enter, exit_, code = (header.index(f"SPEnrollments.{c}") for c in ("Enter_Date", "Exit_Date", "ExitCode"))
    open_rows = [n for n, row in enumerate(rows) if row[exit_] in ("", "1/1/1900")]

    tuesday = [list(row) for row in rows]
    for n in open_rows[:3]:  # three students leave their program: real exits, keys unchanged
        tuesday[n][exit_], tuesday[n][code] = "6/5/2026", "EX"
    wednesday = [list(row) for row in tuesday]
    rekeyed = open_rows[3]  # the SIS re-keyed one start date, then exited it: Illuminate would duplicate it
    wednesday[rekeyed][enter] = _shift(wednesday[rekeyed][enter])
    wednesday[rekeyed][exit_], wednesday[rekeyed][code] = "6/10/2026", "EX"

    nights = [monday, folder / "night2-exits.csv", folder / "night3-rekeyed-exit.csv"]
    for path, body in ((nights[1], tuesday), (nights[2], wednesday)):
        with path.open("w", encoding="utf-8", newline="") as out:
            csv.writer(out, lineterminator="\n").writerows([header, *body])
    roster = folder / "night4-course-roster.csv"
    write_table(roster, COURSE_ROSTER_HEADER, course_roster(20, seed=7), delimiter=",")
    return [*nights, roster]


def _shift(us_date: str) -> str:
    month, day, year = (int(part) for part in us_date.split("/"))
    return f"{month}/{min(day + 3, 28)}/{year}" if day <= 25 else f"{month}/{day - 3}/{year}"


def feed_config(sftp: LocalSftp, profile: str | None, mapping_toml: str | None, user_config: str | None) -> str:
    """The feed's config/<feed>.toml: the user's own (its ``[sftp]`` table replaced by the local server's),
    or one built from ``--profile`` / ``--mapping``."""
    if user_config is not None:
        body = _without_table(user_config, "sftp")
    else:
        body = f'profile = "{profile}"\n' if profile else ""
        body += 'duplicate_policy = "hold"\n'
        body += 'unseeded = "send"\n'  # the demo's Illuminate starts empty
        if mapping_toml:
            body += "[mapping]\n" + _nested(mapping_toml, "mapping")
    sftp_table = [
        "[sftp]",
        f'host = "{sftp.host}"',
        f"port = {sftp.port}",
        'remote_dir = "/"',
        f'secret = "{SECRET_NAME}"',
        f"known_hosts = [{json.dumps(sftp.known_hosts_line)}]",
    ]
    return body.rstrip("\n") + "\n\n" + "\n".join(sftp_table) + "\n"


def _nested(toml_text: str, table: str) -> str:
    """A mapping file's TOML moved under ``[table]``: ``[columns]`` becomes ``[table.columns]``."""
    out = []
    for line in toml_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[["):
            line = "[[" + table + "." + stripped[2:]
        elif stripped.startswith("["):
            line = "[" + table + "." + stripped[1:]
        out.append(line)
    return "\n".join(out) + "\n"


def _without_table(toml_text: str, table: str) -> str:
    """``toml_text`` without ``[table]`` and its sub-tables."""
    out, skipping = [], False
    for line in toml_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            name = stripped.strip("[]").strip()
            skipping = name == table or name.startswith(table + ".")
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


def _provision(sftp: LocalSftp, config_text: str) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKET, Key=f"config/{FEED}.toml", Body=config_text.encode())
    dynamodb = boto3.client("dynamodb")
    create_table(LEDGER_TABLE, dynamodb)  # the ledger's own schema, as the SAM template declares it
    dynamodb.create_table(
        TableName=IDEMPOTENCY_TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    secret = {"username": sftp.username, "private_key": sftp.client_key_pem}
    boto3.client("secretsmanager").create_secret(Name=SECRET_NAME, SecretString=json.dumps(secret))
    topic = boto3.client("sns").create_topic(Name="programs-bridge-demo")["TopicArn"]
    os.environ.update(
        LEDGER_TABLE=LEDGER_TABLE,
        IDEMPOTENCY_TABLE=IDEMPOTENCY_TABLE,
        NOTIFY_TOPIC_ARN=topic,
        POWERTOOLS_SERVICE_NAME="programs-bridge",
        POWERTOOLS_TRACE_DISABLED="true",
    )


def s3_event_via_sqs(bucket: str, key: str, response: dict[str, Any], size: int) -> dict[str, Any]:
    """The SQS message AWS sends for an S3 ObjectCreated notification (the key URL-encoded, as S3 does)."""
    ref = ObjectRef(
        bucket=bucket, key=key, version_id=response.get("VersionId") or None, etag=response["ETag"].strip('"'),
        size=size, sequencer=f"{time.time_ns():X}", event_time=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
    )  # fmt: skip
    record = s3_record(ref)
    return {
        "Records": [
            {
                "messageId": f"demo-{time.time_ns()}",
                "receiptHandle": "demo",
                "body": json.dumps({"Records": [record]}),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:programs-bridge-demo",
                "awsRegion": "us-east-1",
            }
        ]
    }


@contextmanager
def local_stack(sftp_root: Path) -> Iterator[tuple[MotoServer, LocalSftp]]:
    with ExitStack() as stack:
        moto = stack.enter_context(moto_server())
        os.environ.update(moto.environ)
        sftp = stack.enter_context(local_sftp(sftp_root))
        yield moto, sftp


def play(exports: Sequence[Path], out: Path, config_text: str | None, profile: str | None,
         mapping_toml: str | None, log: IO[str]) -> int:  # fmt: skip
    """Drop each export as the next night; return how many runs failed."""
    out.mkdir(parents=True, exist_ok=True)
    saved_environ = dict(os.environ)
    try:
        return _play(exports, out, config_text, profile, mapping_toml, log)
    finally:  # the local stack's endpoint and tables are gone once it stops: leave no trace of them
        os.environ.clear()
        os.environ.update(saved_environ)


def _play(exports: Sequence[Path], out: Path, config_text: str | None, profile: str | None,
          mapping_toml: str | None, log: IO[str]) -> int:  # fmt: skip
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # type: ignore[no-untyped-call]  # each stack has its own SFTP client key behind the same secret name
    failures = 0
    with (
        tempfile.TemporaryDirectory(prefix="programs-bridge-demo-") as scratch,
        local_stack(Path(scratch)) as (
            _,
            sftp,
        ),
    ):
        _provision(sftp, feed_config(sftp, profile, mapping_toml, config_text))
        os.environ["PROGRAMS_BRIDGE_WORKDIR"] = str(Path(scratch) / "work")
        with redirect_stdout(log):  # structured logs and EMF metrics go to the log file, summaries to the screen
            from programs_bridge.pipeline import handler
        s3 = boto3.client("s3")
        seen: set[str] = set()
        for night, export in enumerate(exports, start=1):
            key = f"incoming/{FEED}/night {night:02d} {export.name}"  # a space, as people name files
            body = export.read_bytes()
            response = s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            with redirect_stdout(log):
                result = handler.lambda_handler(
                    s3_event_via_sqs(BUCKET, key, dict(response), len(body)),
                    FakeContext(aws_request_id=f"night-{night}"),
                )
            failed = bool(result.get("batchItemFailures"))
            failures += failed
            print(_night(night, export, s3, sftp, out, failed, seen))
    return failures


def _night(night: int, export: Path, s3: Any, sftp: LocalSftp, out: Path, failed: bool, seen: set[str]) -> str:
    reports = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"reports/{FEED}/").get("Contents", [])
    new = sorted(r["Key"] for r in reports if r["Key"].endswith(".json") and r["Key"] not in seen)
    seen.update(new)
    lines = [f"\n=== night {night}: {export.name}" + (" (run FAILED, will be retried)" if failed else "")]
    if not new:
        return "\n".join([*lines, "  no report written"])
    newest = {"Key": new[-1]}
    report_text = s3.get_object(Bucket=BUCKET, Key=newest["Key"])["Body"].read().decode()
    (out / f"{night:02d}-report.json").write_text(report_text, encoding="utf-8")
    summary = s3.get_object(Bucket=BUCKET, Key=newest["Key"].removesuffix(".json") + ".md")["Body"].read().decode()
    lines += ["  " + line for line in summary.splitlines() if line and not line.startswith("The JSON")]
    delivered = sftp.root / "programs.txt"
    if json.loads(report_text)["status"] == "delivered" and delivered.exists():
        (out / f"{night:02d}-programs.txt").write_bytes(delivered.read_bytes())
        lines.append(f"  -> what reached the SFTP server: {out / f'{night:02d}-programs.txt'}")
    lines.append(f"  -> report: {out / f'{night:02d}-report.json'}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "handler.log"
    with log_path.open("w", encoding="utf-8") as log, tempfile.TemporaryDirectory() as generated:
        exports = list(args.exports) or story(Path(generated))
        for export in exports:
            if not export.is_file():
                print(f"programs-bridge demo: no such file: {export}", file=sys.stderr)
                return 64
        mapping = args.mapping.read_text(encoding="utf-8") if args.mapping else None
        config = args.config.read_text(encoding="utf-8") if args.config else None
        failures = play(exports, out, config, args.profile, mapping, log)
    print(f"\n{len(exports)} night(s) in {time.monotonic() - started:.1f}s; handler logs (JSON): {log_path}")
    return 1 if failures else 0
