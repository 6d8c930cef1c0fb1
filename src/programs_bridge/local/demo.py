"""``programs-bridge demo``: the whole pipeline on a laptop, on an embedded local stack.

Starts moto in server mode (S3, DynamoDB, Secrets Manager, SNS) and a pure-Python SFTP server on 127.0.0.1,
creates the bucket, tables, secret and feed configuration the SAM template would, then drops each export into
``incoming/<feed>/`` as the next night and invokes the real Lambda handler with the S3-via-SQS event AWS would
send.  After each night it prints the run's summary and copies what reached the SFTP server to
``DIR/NN-programs.txt`` and the run report to ``DIR/NN-report.json``.

Items are played in order: a plain path is dropped as the next night's export, ``illuminate:PATH`` under
``illuminate/<feed>/`` (Illuminate's own records: a seed the first time, a reconcile after), and
``resolutions:PATH`` under ``resolutions/<feed>/`` (a clerk's decisions about held rows).  With no items it
plays the bundled story (``story.py``): a seed from Illuminate's records, exits of seeded records, a re-keyed
exit held and then resolved, a reconcile that finds what Illuminate got wrong, and a course roster dropped by
mistake.  Needs the dev extras (moto, asyncssh), which ``make demo`` installs; nothing here is imported by
the Lambda.
"""

from __future__ import annotations

import argparse
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
from programs_bridge.local.story import Item, story
from programs_bridge.pipeline.events import PREFIXES, Kind, ObjectRef, s3_record

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


def feed_config(
    sftp: LocalSftp, profile: str | None, mapping_toml: str | None, user_config: str | None, *, unseeded: str = "send"
) -> str:
    """The feed's config/<feed>.toml: the user's own (its ``[sftp]`` table replaced by the local server's),
    or one built from ``--profile`` / ``--mapping`` (``unseeded``: send, unless the demo seeds the feed)."""
    if user_config is not None:
        body = _without_table(user_config, "sftp")
    else:
        body = f'profile = "{profile}"\n' if profile else ""
        body += 'duplicate_policy = "hold"\n'
        body += f'unseeded = "{unseeded}"\n'
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


def play(items: Sequence[Item], out: Path, config_text: str | None, profile: str | None,
         mapping_toml: str | None, log: IO[str]) -> int:  # fmt: skip
    """Drop each item in turn (an export as the next night); return how many runs failed."""
    out.mkdir(parents=True, exist_ok=True)
    saved_environ = dict(os.environ)
    try:
        return _play(items, out, config_text, profile, mapping_toml, log)
    finally:  # the local stack's endpoint and tables are gone once it stops: leave no trace of them
        os.environ.clear()
        os.environ.update(saved_environ)


def _play(items: Sequence[Item], out: Path, config_text: str | None, profile: str | None,
          mapping_toml: str | None, log: IO[str]) -> int:  # fmt: skip
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # type: ignore[no-untyped-call]  # each stack has its own SFTP client key behind the same secret name
    failures = 0
    # A demo that seeds the feed first says nothing about it; one that does not stands for an empty Illuminate.
    unseeded = "hold" if any(item.kind is Kind.ILLUMINATE for item in items) else "send"
    with (
        tempfile.TemporaryDirectory(prefix="programs-bridge-demo-") as scratch,
        local_stack(Path(scratch)) as (
            _,
            sftp,
        ),
    ):
        _provision(sftp, feed_config(sftp, profile, mapping_toml, config_text, unseeded=unseeded))
        os.environ["PROGRAMS_BRIDGE_WORKDIR"] = str(Path(scratch) / "work")
        with redirect_stdout(log):  # structured logs and EMF metrics go to the log file, summaries to the screen
            from programs_bridge.pipeline import handler
        s3 = boto3.client("s3")
        seen: set[str] = set()
        for number, item in enumerate(items, start=1):
            name = (
                f"night {number:02d} {item.path.name}" if item.kind is Kind.EXPORT else f"{number:02d} {item.path.name}"
            )
            key = f"{PREFIXES[item.kind]}{FEED}/{name}"  # a space, as people name files
            body = item.path.read_bytes()
            response = s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            with redirect_stdout(log):
                result = handler.lambda_handler(
                    s3_event_via_sqs(BUCKET, key, dict(response), len(body)),
                    FakeContext(aws_request_id=f"item-{number}"),
                )
            failed = bool(result.get("batchItemFailures"))
            failures += failed
            print(_outcome(number, item, s3, sftp, out, failed, seen))
    return failures


def _outcome(number: int, item: Item, s3: Any, sftp: LocalSftp, out: Path, failed: bool, seen: set[str]) -> str:
    """The item's summary for the screen; its report (and what reached the server, or a fix file) to ``out``."""
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"reports/{FEED}/").get("Contents", [])
    new = sorted(r["Key"] for r in listed if r["Key"] not in seen)
    seen.update(new)
    what = {Kind.EXPORT: "night's export", Kind.ILLUMINATE: "Illuminate's records", Kind.RESOLUTIONS: "resolutions"}
    lines = [
        f"\n=== {number:02d} {what[item.kind]}: {item.path.name}" + (" (run FAILED, will be retried)" if failed else "")
    ]
    reports = [k for k in new if k.endswith(".json")]
    if not reports:
        return "\n".join([*lines, "  no report written"])
    report_text = s3.get_object(Bucket=BUCKET, Key=reports[-1])["Body"].read().decode()
    (out / f"{number:02d}-report.json").write_text(report_text, encoding="utf-8")
    summary_key = reports[-1].removesuffix(".json") + ".md"
    if summary_key in new:
        summary = s3.get_object(Bucket=BUCKET, Key=summary_key)["Body"].read().decode()
        lines += ["  " + line for line in summary.splitlines() if line and not line.startswith("The JSON")]
    delivered = sftp.root / "programs.txt"
    report = json.loads(report_text)
    if item.kind is Kind.EXPORT and report["status"] == "delivered" and delivered.exists():
        (out / f"{number:02d}-programs.txt").write_bytes(delivered.read_bytes())
        lines.append(f"  -> what reached the SFTP server: {out / f'{number:02d}-programs.txt'}")
    for fix in (k for k in new if k.endswith(".fix.programs.txt")):
        (out / f"{number:02d}-fix.txt").write_bytes(s3.get_object(Bucket=BUCKET, Key=fix)["Body"].read())
        lines.append(f"  -> rows that fix what a row can fix, for a person to review: {out / f'{number:02d}-fix.txt'}")
    if any(risk.get("action") == "held" for risk in report.get("ledger", {}).get("duplicate_risks", [])):
        lines.append(
            "  -> in this demo the stack lives only while it runs: decide with an item, resolutions:FILE "
            "(id,decision,note), before the next night's export"
        )
    lines.append(f"  -> report: {out / f'{number:02d}-report.json'}")
    return "\n".join(lines)


#: What a demo writes per item (``_outcome``): cleared when a demo starts, so none is left from a longer story.
_OUTPUTS = ("[0-9][0-9]-report.json", "[0-9][0-9]-programs.txt", "[0-9][0-9]-fix.txt")


def _read_toml(path: Path | None, what: str) -> str | None:
    """A --mapping or --config file's text, as ``validate --mapping`` reads it (a byte-order mark from a
    Windows editor dropped); ValueError with a sentence when it cannot be read."""
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"the {what} file {path} is not UTF-8 text: save it as UTF-8") from None
    except OSError as exc:
        raise ValueError(f"cannot read the {what} file {path}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, a folder we may not write
        print(f"programs-bridge demo: cannot use {out} for the results: {exc.strerror or exc}", file=sys.stderr)
        return 64
    for stale in (p for pattern in _OUTPUTS for p in out.glob(pattern)):  # an earlier story's, not this one's
        stale.unlink(missing_ok=True)
    log_path = out / "handler.log"
    with log_path.open("w", encoding="utf-8") as log, tempfile.TemporaryDirectory() as generated:
        items = [Item.parse(text) for text in args.items] or story(Path(generated))
        for item in items:
            if not item.path.is_file():
                print(f"programs-bridge demo: no such file: {item.path}", file=sys.stderr)
                return 64
        try:
            mapping, config = _read_toml(args.mapping, "mapping"), _read_toml(args.config, "config")
        except ValueError as exc:
            print(f"programs-bridge demo: {exc}", file=sys.stderr)
            return 64
        failures = play(items, out, config, args.profile, mapping, log)
    print(f"\n{len(items)} item(s) in {time.monotonic() - started:.1f}s; handler logs (JSON): {log_path}")
    return 1 if failures else 0
