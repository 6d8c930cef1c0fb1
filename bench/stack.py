"""The local AWS stack the benchmarks measure against: moto in server mode for S3, SQS, SNS and Secrets
Manager, and dynalite for DynamoDB when ``make bench`` could install it (node on PATH), else moto for that too.

Why dynalite: moto's DynamoDB sorts the whole table on every Query, so a benchmark of a 1M-record ledger
measured moto, not our code (``programs_bridge.local.dynalite_server`` has the figures).  Every benchmark
prints which DynamoDB it ran on and writes it into its results as ``dynamodb``, so figures from the two are
never compared unawares.  ``PB_BENCH_DYNAMODB=moto`` keeps DynamoDB on moto even when dynalite is installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

from programs_bridge.ledger.items_as_sent import read_items_as_sent
from programs_bridge.ledger.store import READERS, LedgerStore
from programs_bridge.local.dynalite_server import dynalite_command, dynalite_server
from programs_bridge.local.moto_server import moto_server

#: The npm prefix the Makefile installs dynalite into (pinned by its package-lock.json).
DYNALITE = Path(__file__).resolve().parent / "dynalite"


@dataclass(frozen=True)
class Stack:
    """A running local stack: the environment that points boto3 at it, which DynamoDB serves it, and that
    server's process id (``server_cpu_seconds``)."""

    environ: dict[str, str]
    dynamodb: str
    dynamodb_pid: int


def server_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user and system) process ``pid`` has used so far, from ``/proc``; None where there is no
    ``/proc``.  A local DynamoDB answers on a core of its own, so a read's wall time is bounded by whichever
    side is slower: its CPU beside ours says which one a figure measures (proc(5), fields 14 and 15)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def aws_stack() -> Iterator[Stack]:
    """Start moto (and dynalite, when installed and not turned off) and point this process's boto3 at them;
    the previous environment comes back on exit."""
    command = None if os.environ.get("PB_BENCH_DYNAMODB") == "moto" else dynalite_command(DYNALITE)
    saved = dict(os.environ)
    with ExitStack() as servers:
        moto = servers.enter_context(moto_server())
        environ, pid = dict(moto.environ), moto.pid
        if command is not None:
            dynalite = servers.enter_context(dynalite_server(command))
            environ, pid = environ | dynalite.environ, dynalite.pid
        os.environ.update(environ)
        try:
            yield Stack(environ, "dynalite" if command is not None else "moto", pid)
        finally:
            os.environ.clear()
            os.environ.update(saved)


def ledger_store(table: str) -> LedgerStore:
    """A store configured as the product's (``ledger.store._client``), but for a client that waits long enough
    for moto: one Query page over a 1M-item table costs moto seconds of CPU, and concurrent ones share its one
    interpreter, so botocore's 60 s default times out."""
    config = Config(
        max_pool_connections=READERS + 4, read_timeout=1800, retries={"mode": "standard"}, parameter_validation=False
    )
    client = boto3.client("dynamodb", config=config)
    read_items_as_sent(client)
    return LedgerStore(table, client)
