"""Run dynalite (an in-memory DynamoDB written for Node.js) as a child process on 127.0.0.1.

Why beside moto: moto's DynamoDB sorts the whole table on every Query, so reading a 100k-record ledger
costs minutes of moto CPU and a 1M-record ledger about half an hour; the nightly case a district lives with
(a big ledger, a few hundred changes) could not be measured on the local stack at all.  dynalite keeps each
table in a sorted LevelDB store (memory-level) and answers the same Queries tens of times faster, with no
change to our code: botocore takes a service-specific ``AWS_ENDPOINT_URL_DYNAMODB`` over the global
``AWS_ENDPOINT_URL`` (AWS SDKs and Tools reference guide, "Service-specific endpoints":
https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html), so DynamoDB goes to dynalite
while S3, SQS and SNS stay on moto.

dynalite implements the item, query, scan and batch APIs we call; it has no transactions and no
``UpdateTimeToLive``, which our code does not use.  It is installed by the Makefile (``bench/dynalite``,
pinned by its ``package-lock.json``) and used by ``make bench``; the test suite stays on moto.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from programs_bridge.local.child_server import serving
from programs_bridge.local.moto_server import FAKE_CREDENTIALS, free_port

#: dynalite keeps a new table in CREATING for 500 ms by default, to imitate DynamoDB; nothing here waits
#: on table states, so tables are ACTIVE at once.
_STATE_DELAYS = ("--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0")


@dataclass(frozen=True)
class DynaliteServer:
    """A running dynalite: its endpoint, its process id (benchmarks read its CPU time, to tell the emulator's
    share of a read from ours) and the variable that sends boto3's DynamoDB calls to it."""

    endpoint: str
    pid: int

    @property
    def environ(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL_DYNAMODB": self.endpoint}


def dynalite_command(install: Path) -> list[str] | None:
    """How to start the dynalite installed under ``install`` (an npm prefix), or None when it or node is
    missing; the caller then keeps DynamoDB on moto."""
    script = install / "node_modules" / "dynalite" / "cli.js"
    node = shutil.which("node")
    if node is None or not script.is_file():
        return None
    return [node, str(script)]


def _listening(port: int) -> bool:
    """True once dynalite accepts connections: it binds only after its store is ready."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def dynalite_server(command: list[str], startup_timeout: float = 30.0) -> Iterator[DynaliteServer]:
    """Start dynalite (``command`` from :func:`dynalite_command`) on a free loopback port; stop it on exit."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    argv = [*command, "--host", "127.0.0.1", "--port", str(port), *_STATE_DELAYS]
    with serving(argv, {**os.environ, **FAKE_CREDENTIALS}, lambda: _listening(port), f"dynalite on {endpoint}",
                 startup_timeout) as process:  # fmt: skip
        yield DynaliteServer(endpoint, process.pid)
