"""The DynamoDB adapter: table schema, sharded parallel reads, batched writes, run and feed items.

Table design (one table, on-demand; see docs/ledger.md for the access patterns and why):

===========================  ==================  ==================================================
pk                           sk                  item
===========================  ==================  ==================================================
``{feed}#records#{NN}``      record key          one program record sent (NN = shard 00..15)
``{feed}#run``               run id              one processed file
``{feed}#feed``              ``head``            the run that last committed to the feed
===========================  ==================  ==================================================

Records spread over ``SHARDS`` partitions by a CRC-32 of the key, so a feed's million records are read by
16 paginated Queries (``READERS`` at a time, in threads) and written across 16 partition keys instead of
one hot one.
"""

from __future__ import annotations

import gc
import math
import queue
import random
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from programs_bridge.ledger.items_as_sent import read_items_as_sent
from programs_bridge.ledger.resolutions import Choice, Held, Resolution
from programs_bridge.ledger.snapshot import LedgerSnapshot

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: Record partitions per feed.  Part of the table's data layout: changing it strands existing records.
SHARDS = 16
#: Shard Queries in flight at once.  Parsing is GIL-bound, so threads only hide network latency, and each
#: 1 MB page in flight costs ~25 MB of parsed Python objects: 4 readers bound that at ~100 MB.
READERS = 4
#: BatchWriteItem requests in flight during a commit.
WRITERS = 8
#: DynamoDB's limit on one BatchWriteItem request.
BATCH_SIZE = 25
#: Read and write unit sizes from DynamoDB's pricing rules, for the estimated figures.
READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024

Item = dict[str, Any]  # a DynamoDB item in the low-level wire format: {"name": {"S": "value"}}


class LedgerError(Exception):
    """The ledger could not be read or written; messages carry counts and run ids, never record keys."""


class StaleLedgerError(LedgerError):
    """Another run committed to the feed after this plan read it: planning again is the only safe move."""


@dataclass
class Usage:
    """Requests and capacity a ledger operation cost, for the run report.

    ``consumed_units`` is what DynamoDB reported through ReturnConsumedCapacity.  ``estimated_units`` applies
    DynamoDB's published sizing rules to the bytes actually moved; it is there because local emulators (moto)
    report a flat figure per request, and it is what the cost targets are checked against.
    """

    requests: int = 0
    items: int = 0
    consumed_units: float = 0.0
    estimated_units: float = 0.0
    retries: int = 0

    def add(self, other: Usage) -> None:
        self.requests += other.requests
        self.items += other.items
        self.consumed_units += other.consumed_units
        self.estimated_units += other.estimated_units
        self.retries += other.retries

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunRecord:
    """What the ledger keeps about one processed file."""

    run_id: str
    source_key: str
    source_version: str
    sha256: str
    report_location: str
    counts: Mapping[str, int]


def create_table(name: str, client: DynamoDBClient | None = None) -> None:
    """Create the ledger table (on-demand) and wait until it is usable.  For set-up scripts and tests;
    deployments create it from the SAM template with the same schema."""
    client = client or _client()
    client.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=name)


def shard_of(key_text: str) -> int:
    return zlib.crc32(key_text.encode()) % SHARDS


def records_pk(feed: str, shard: int) -> str:
    return f"{feed}#records#{shard:02d}"


def item_size(item: Item) -> int:
    """DynamoDB's size of an item of string attributes: UTF-8 bytes of every name and value (a read page is
    sized faster, all at once, by ``page_size``)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        size += sum(len(str(v).encode()) for v in value.values())
    return size


def page_size(items: Sequence[Item]) -> int:
    """``item_size`` summed over a read page, in two joins instead of a loop per item: every ledger read sizes
    every item it reads (``Usage.estimated_units``), and per item that cost a quarter of a read's Python time.
    Exact when every value is text (S or N, all the ledger writes); any other page is sized item by item."""
    names = "".join(chain.from_iterable(items))
    values = chain.from_iterable(map(dict.values, chain.from_iterable(map(dict.values, items))))
    try:
        return len(names.encode()) + len("".join(values).encode())
    except TypeError:  # a list, map or boolean value
        return sum(item_size(item) for item in items)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a read builds a snapshot, restored after.

    A read allocates about nine dicts per record (json's, freed by reference counting as each page is
    compacted); every one counts towards the collector's thresholds, so a large read ran thousands of
    collections that found nothing to free.  Measured on dynalite, a 400k-record read in one process,
    alternating: 5.05-5.46 s of CPU with the collector, 3.91-4.10 s without.  Reference counting frees all
    of it as before (nothing a read makes is cyclic); a collector another caller turned off stays off.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def chunks(items: Iterable[Item], size: int = BATCH_SIZE) -> Iterator[list[Item]]:
    """Items in lists of at most ``size``; an item whose key is already in the current list starts a new
    one, because BatchWriteItem rejects a request naming one key twice (later items still win, in order)."""
    chunk: list[Item] = []
    keys: set[tuple[str, str]] = set()
    for item in items:
        key = (item["pk"]["S"], item["sk"]["S"])
        if len(chunk) == size or key in keys:
            yield chunk
            chunk, keys = [], set()
        chunk.append(item)
        keys.add(key)
    if chunk:
        yield chunk


def backoff_delay(attempt: int, base: float, cap: float, draw: Callable[[], float]) -> float:
    """Capped exponential backoff with full jitter: a uniform draw in [0, min(cap, base * 2**attempt)).

    Full jitter spreads concurrent retriers apart, which is what un-sticks a throttled partition.
    """
    return draw() * min(cap, base * 2.0**attempt)


def _client() -> DynamoDBClient:
    """The ledger's DynamoDB client.

    One pooled connection per reader and writer thread; botocore's standard mode retries throttling errors
    itself.  ``parameter_validation=False``: botocore otherwise walks every value of every request against
    the model before sending it, a fifth of a commit's CPU (50k items on dynalite, alternating in one
    process: 8.97-9.05 s of CPU validated, 6.45-7.19 s not); every request here is built by this module,
    and DynamoDB still validates what it receives (a ``ValidationException`` is raised as before).
    """
    config = Config(
        max_pool_connections=READERS + WRITERS + 4,
        retries={"mode": "standard", "max_attempts": 8},
        parameter_validation=False,
    )
    try:
        client = boto3.client("dynamodb", config=config)
    except ValueError as exc:  # what botocore raises for an endpoint that is not a URL
        if isinstance(exc, BotoCoreError):  # a bad region is one too: the callers say those by name
            raise
        raise LedgerError(f"the AWS settings cannot make a DynamoDB client ({exc}): check AWS_ENDPOINT_URL") from None
    read_items_as_sent(client)  # otherwise most of a ledger read is botocore's parser
    return client


def _capacity(response: Mapping[str, Any]) -> float:
    consumed = response.get("ConsumedCapacity")
    if consumed is None:
        return 0.0
    entries = consumed if isinstance(consumed, list) else [consumed]
    return sum(float(entry.get("CapacityUnits", 0.0)) for entry in entries)


#: One ledger record as a reader thread hands it over: key text, fields hash, open, first run, last run, and
#: whether a full export left it out (``missing_run`` set).
#: Raw boto3 items are ~10x larger; converting in the reader keeps in-flight pages small.
_Compact = tuple[str, int, bool, str, str, bool]


@dataclass(frozen=True)
class _Page:
    records: list[_Compact]
    usage: Usage


@dataclass(frozen=True)
class _RawPage:
    items: list[Item]
    usage: Usage


class LedgerStore:
    """One ledger table.  Thread-safe for reads; one commit at a time per feed (the feed head enforces it)."""

    def __init__(
        self,
        table: str,
        client: DynamoDBClient | None = None,
        *,
        max_attempts: int = 8,
        backoff_base: float = 0.05,
        backoff_cap: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.table = table
        self.client = client or _client()
        self._max_attempts = max_attempts
        self._backoff = (backoff_base, backoff_cap)
        self._sleep = sleep
        self._draw = draw

    # -- reading ---------------------------------------------------------------------------------------

    def read_snapshot(self, feed: str) -> tuple[LedgerSnapshot, Usage]:
        """Every record of ``feed``: 16 shard Queries paged 1 MB at a time, ``READERS`` at once in threads.

        The Queries are strongly consistent, like the head's read: a plan made right after the previous
        run's commit must see every record that commit wrote, or a record just exited would be planned as
        still open.  That costs one read unit per 4 KB instead of half of one (``Usage.estimated_units``).

        Pages, already compacted by the reader threads, flow through a bounded queue into one builder, so
        memory holds the snapshot plus a few pages in flight, never a shard's worth of raw items.
        """
        with collector_paused():
            return self._read_snapshot(feed)

    def _read_snapshot(self, feed: str) -> tuple[LedgerSnapshot, Usage]:
        usage = Usage()
        snapshot = LedgerSnapshot(head_run=self._head(feed, usage))
        pages: queue.Queue[_Page | BaseException | None] = queue.Queue(maxsize=READERS)
        stop = threading.Event()

        def offer(item: _Page | BaseException | None) -> bool:
            """Hand ``item`` to the consumer; False once the consumer has given up (never block forever)."""
            while not stop.is_set():
                try:
                    pages.put(item, timeout=0.5)
                    return True
                except queue.Full:
                    continue
            return False

        def reader(shard: int) -> None:
            try:
                for page in self._query_pages(records_pk(feed, shard)):
                    if not offer(page):
                        return
                offer(None)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                offer(exc)

        with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="ledger-read") as pool:
            for shard in range(SHARDS):
                pool.submit(reader, shard)
            try:
                finished = 0
                while finished < SHARDS:
                    page = pages.get()
                    if page is None:
                        finished += 1
                    elif isinstance(page, BaseException):
                        raise LedgerError("reading the ledger failed") from page
                    else:
                        usage.add(page.usage)
                        for record in page.records:
                            snapshot.add(*record)
            finally:
                stop.set()
        return snapshot, usage

    def _query_pages(self, pk: str) -> Iterator[_Page]:
        """A shard's record items, compacted page by page (``_Compact``)."""
        for page in self._query_items(pk):
            records = [
                (
                    item["sk"]["S"],
                    int(item["fields_hash"]["S"], 16),
                    item["state"]["S"] == "open",
                    item["first_run"]["S"],
                    item.get("last_run", {}).get("S", ""),
                    "missing_run" in item,
                )
                for item in page.items
            ]
            yield _Page(records, page.usage)

    def _query_items(self, pk: str) -> Iterator[_RawPage]:
        """Every item under ``pk``, a 1 MB page at a time, strongly consistent."""
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": {"S": pk}},
                "ConsistentRead": True,
                "ReturnConsumedCapacity": "TOTAL",
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            response = self.client.query(**kwargs)
            items: list[Item] = list(response.get("Items", []))
            page_bytes = page_size(items)
            # Strongly consistent: one unit per 4 KB of the page, rounded up per request.
            estimated = float(math.ceil(page_bytes / READ_UNIT_BYTES))
            yield _RawPage(items, Usage(1, len(items), _capacity(response), estimated))
            start = response.get("LastEvaluatedKey")
            if not start:
                return

    def head(self, feed: str) -> str | None:
        """The run that last committed to ``feed`` (strongly consistent), or None."""
        return self._head(feed, Usage())

    def _head(self, feed: str, usage: Usage) -> str | None:
        response = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"{feed}#feed"}, "sk": {"S": "head"}},
            ConsistentRead=True,
            ReturnConsumedCapacity="TOTAL",
        )
        usage.add(Usage(requests=1, consumed_units=_capacity(response), estimated_units=1.0))
        head = response.get("Item", {}).get("head_run")
        return head["S"] if head else None

    # -- writing ---------------------------------------------------------------------------------------

    def write_items(self, items: Iterable[Item], stop: Callable[[], bool] | None = None) -> tuple[Usage, bool]:
        """Put ``items`` with BatchWriteItem, 25 a request, ``WRITERS`` requests in flight, retrying
        unprocessed items with backoff.  Returns the usage and whether every item was written.

        A district's first night writes a million records: one request at a time that is 40,000 round trips
        in a row (minutes against DynamoDB, far longer on moto).  At most ``2 * WRITERS`` chunks are queued, so
        memory stays bounded however many items come.  ``stop`` is asked before each request is queued; once
        it says yes, the requests in flight finish and the rest is left for a later call (the caller's time
        is running out), so a commit always stops at a request boundary.
        """
        usages: list[Usage] = []
        pending: deque[Future[None]] = deque()
        complete = True
        with ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="ledger-write") as pool:
            for chunk in chunks(items):
                if stop is not None and stop():
                    complete = False
                    break
                usage = Usage()
                usages.append(usage)
                pending.append(pool.submit(self._write_chunk, chunk, usage))
                if len(pending) >= 2 * WRITERS:
                    pending.popleft().result()
            while pending:
                pending.popleft().result()
        total = Usage()
        for usage in usages:
            total.add(usage)
        return total, complete

    def _write_chunk(self, chunk: list[Item], usage: Usage) -> None:
        usage.items += len(chunk)
        usage.estimated_units += sum(math.ceil(item_size(item) / WRITE_UNIT_BYTES) for item in chunk)
        self._batch_write([{"PutRequest": {"Item": item}} for item in chunk], usage)

    def _batch_write(self, requests: list[Any], usage: Usage) -> None:
        """One BatchWriteItem of ``requests`` (puts or deletes), unprocessed ones retried with backoff."""

        def send(left: list[Any]) -> list[Any]:
            response = self.client.batch_write_item(RequestItems={self.table: left}, ReturnConsumedCapacity="TOTAL")
            usage.requests += 1
            usage.consumed_units += _capacity(response)
            return list(response.get("UnprocessedItems", {}).get(self.table, []))

        left = "ledger item(s) still unprocessed"
        self._until_processed(send, requests, usage, left, "; the commit can be retried safely")

    def _until_processed(
        self,
        send: Callable[[list[Any]], list[Any]],
        requests: list[Any],
        usage: Usage | None,
        left: str,
        then: str = "",
    ) -> None:
        """``send`` the requests, then what DynamoDB gives back unprocessed, with capped exponential backoff
        between attempts; LedgerError (``left``, ``then``) when some are still unprocessed after the last."""
        attempt = 0
        while requests := send(requests):
            attempt += 1
            if attempt >= self._max_attempts:
                raise LedgerError(f"{len(requests)} {left} after {attempt} attempts{then}")
            if usage is not None:
                usage.retries += 1
            self._sleep(backoff_delay(attempt, *self._backoff, self._draw))

    def delete_records(self, feed: str, key_texts: Iterable[str]) -> Usage:
        """Delete the named records of ``feed``, in ``chunks`` like a write (a record already gone is no error)."""
        usage = Usage()
        for chunk in chunks(_record_key(feed, key) for key in key_texts):
            usage.items += len(chunk)
            self._batch_write([{"DeleteRequest": {"Key": key}} for key in chunk], usage)
        return usage

    # -- held rows and their resolutions ---------------------------------------------------------------

    def put_held(self, feed: str, held: Iterable[Held]) -> None:
        """Remember the rows a plan holds as duplicate risks, so ``ledger resolve`` can name them by id.

        Idempotent: an id is its row's key, so the same row held again rewrites the same item (its latest
        run and line)."""
        items = (
            {
                "pk": {"S": f"{feed}#held"},
                "sk": {"S": h.id},
                "row_key": {"S": h.row_key},
                "matches": {"L": [{"S": m} for m in h.matches]},
                "line": {"N": str(h.line)},
                "run_id": {"S": h.run_id},
            }
            for h in held
        )
        self.write_items(items)

    def held(self, feed: str, resolution_id: str) -> Held | None:
        response = self.client.get_item(
            TableName=self.table, Key={"pk": {"S": f"{feed}#held"}, "sk": {"S": resolution_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        if item is None:
            return None
        matches = tuple(m["S"] for m in item["matches"]["L"])
        return Held(resolution_id, item["row_key"]["S"], matches, int(item["line"]["N"]), item["run_id"]["S"])

    def put_resolution(self, feed: str, resolution: Resolution) -> None:
        item = {"pk": {"S": f"{feed}#resolution"}, "sk": {"S": resolution.id}, "choice": {"S": resolution.choice.value}}
        item |= {name: {"S": getattr(resolution, name)} for name in _RESOLUTION_TEXTS}
        self.client.put_item(TableName=self.table, Item=item)

    def resolutions(self, feed: str, usage: Usage | None = None) -> list[Resolution]:
        """Every resolution of the feed (a clerk's decisions: a handful, read whole, strongly consistent)."""
        found: list[Resolution] = []
        for page in self._query_items(f"{feed}#resolution"):
            if usage is not None:
                usage.add(page.usage)
            for item in page.items:
                text = {name: item.get(name, {}).get("S", "") for name in _RESOLUTION_TEXTS}
                found.append(Resolution(item["sk"]["S"], Choice(item["choice"]["S"]), **text))
        return found

    # -- runs and the feed head ------------------------------------------------------------------------

    def run_status(self, feed: str, run_id: str) -> str | None:
        status = self._run_attribute(feed, run_id, "status", None)
        return status["S"] if status else None

    def run_statuses(self, feed: str) -> dict[str, str]:
        """Every run of ``feed`` the ledger holds, with its status (a run item a night: a few hundred a year)."""
        return {
            item["sk"]["S"]: item.get("status", {}).get("S", "")
            for page in self._query_items(f"{feed}#run")
            for item in page.items
        }

    def run_counts(self, feed: str, run_id: str, usage: Usage | None = None) -> dict[str, int]:
        """The counts a committed run recorded (its report's ``counts``), or {} for a run the ledger does not
        hold; strongly consistent, like every read a plan makes."""
        counts = (self._run_attribute(feed, run_id, "counts", usage) or {}).get("M", {})
        return {name: int(value["N"]) for name, value in counts.items() if "N" in value}

    def _run_attribute(self, feed: str, run_id: str, name: str, usage: Usage | None) -> dict[str, Any] | None:
        """One attribute of a run item (wire format), strongly consistent; None when the run or it is absent."""
        response = self.client.get_item(
            TableName=self.table,
            Key=_run_key(feed, run_id),
            ConsistentRead=True,
            ProjectionExpression="#a",
            ExpressionAttributeNames={"#a": name},
            ReturnConsumedCapacity="TOTAL",
        )
        if usage is not None:
            usage.add(Usage(requests=1, consumed_units=_capacity(response), estimated_units=1.0))
        attribute = response.get("Item", {}).get(name)
        return None if attribute is None else dict(attribute)

    def claim(self, feed: str, run: RunRecord, expected_head: str | None) -> None:
        """Make ``run`` the feed's head, then mark it ``committing``; two conditional writes, in that order.

        The head moves only from the run the plan saw (or from this run itself, on a retry); otherwise
        StaleLedgerError, and nothing is written.  A crash between the two writes is harmless: the retry
        passes the head condition as this run.  The run's plan-time facts are set only if absent, so a retry
        keeps the first attempt's figures.  (Not one TransactWriteItems: that costs double and moto deep-copies
        the whole table for each one.)
        """
        head_condition = "attribute_not_exists(head_run) OR head_run = :run"
        values: dict[str, Any] = {":run": {"S": run.run_id}}
        if expected_head is not None:
            head_condition += " OR head_run = :expected"
            values[":expected"] = {"S": expected_head}
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"{feed}#feed"}, "sk": {"S": "head"}},
                UpdateExpression="SET head_run = :run",
                ConditionExpression=head_condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            raise StaleLedgerError(
                f"feed {feed!r} was committed by another run after this plan read it; plan again"
            ) from exc
        facts = {
            "source_key": run.source_key,
            "source_version": run.source_version,
            "sha256": run.sha256,
            "report_location": run.report_location,
        }
        run_values: dict[str, Any] = {f":{name}": {"S": value} for name, value in facts.items()}
        counts = {name: {"N": str(value)} for name, value in run.counts.items()}
        run_values |= {":counts": {"M": counts}, ":committing": {"S": "committing"}}
        sets = ", ".join(f"{name} = if_not_exists({name}, :{name})" for name in [*facts, "counts"])
        self.client.update_item(
            TableName=self.table,
            Key=_run_key(feed, run.run_id),
            UpdateExpression=f"SET #s = :committing, {sets}",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=run_values,
        )

    def set_run_counts(self, feed: str, run_id: str, counts: Mapping[str, int]) -> None:
        """Replace a run's counts: a seed knows them only once its report has been walked."""
        self.client.update_item(
            TableName=self.table,
            Key=_run_key(feed, run_id),
            UpdateExpression="SET #c = :counts",
            ExpressionAttributeNames={"#c": "counts"},
            ExpressionAttributeValues={":counts": {"M": {name: {"N": str(n)} for name, n in counts.items()}}},
        )

    def mark_committed(self, feed: str, run_id: str) -> None:
        self.mark_run(feed, run_id, "committed")

    def mark_run(self, feed: str, run_id: str, status: str) -> None:
        """Set a run's status: ``committed``; for a seed taken back, ``undone``; for a seed that must be seeded
        again because the undo of another took out records it may also list, ``reseed`` (``ledger unseed``)."""
        self.client.update_item(
            TableName=self.table,
            Key=_run_key(feed, run_id),
            UpdateExpression="SET #s = :status",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":status": {"S": status}},
        )

    def release_head(self, feed: str, run_id: str) -> bool:
        """Remove the feed's head if ``run_id`` still holds it: the feed is as if nothing had ever been
        committed (its first night waits for a seed again).  False when another run has moved the head on."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"{feed}#feed"}, "sk": {"S": "head"}},
                UpdateExpression="REMOVE head_run",
                ConditionExpression="head_run = :run",
                ExpressionAttributeValues={":run": {"S": run_id}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True

    # -- single records ----------------------------------------------------------------------------------

    def open_records(self, feed: str, key_texts: Iterable[str]) -> set[str]:
        """The named records of ``feed`` the ledger holds open now (no end date): what a ``same`` may aim at."""
        return {key for key, end in self.record_end_dates(feed, key_texts).items() if not end}

    def record_end_dates(self, feed: str, key_texts: Iterable[str], usage: Usage | None = None) -> dict[str, str]:
        """``end_date`` of the named records of ``feed``, by key text (records the ledger lacks are left out).

        BatchGetItem, 100 keys a request, strongly consistent, unprocessed keys retried with the commit's
        backoff.  For the few records reconcile needs an end date of: the snapshot keeps none, since a
        million of them would cost memory every plan pays for.
        """
        wanted = list(dict.fromkeys(key_texts))
        found: dict[str, str] = {}

        def send(keys: list[Any]) -> list[Any]:
            response = self.client.batch_get_item(
                RequestItems={
                    self.table: {
                        "Keys": keys,
                        "ConsistentRead": True,
                        "ProjectionExpression": "sk, #e",
                        "ExpressionAttributeNames": {"#e": "end_date"},
                    }
                },
                ReturnConsumedCapacity="TOTAL",
            )
            items = response.get("Responses", {}).get(self.table, [])
            if usage is not None:
                read = sum(math.ceil(item_size(item) / READ_UNIT_BYTES) for item in items)
                usage.add(Usage(1, len(items), _capacity(response), float(read)))
            for item in items:
                found[item["sk"]["S"]] = item.get("end_date", {}).get("S", "")
            unprocessed: dict[str, Any] = dict(response.get("UnprocessedKeys", {}).get(self.table, {}))
            return list(unprocessed.get("Keys", []))

        for start in range(0, len(wanted), 100):
            keys = [_record_key(feed, key) for key in wanted[start : start + 100]]
            self._until_processed(send, keys, usage, "ledger record(s) still unread")
        return found


#: A resolution's text attributes, stored under these names.
_RESOLUTION_TEXTS = ("row_key", "target_key", "note", "by", "at")


def _record_key(feed: str, key_text: str) -> dict[str, Any]:
    return {"pk": {"S": records_pk(feed, shard_of(key_text))}, "sk": {"S": key_text}}


def _run_key(feed: str, run_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"{feed}#run"}, "sk": {"S": run_id}}
