"""Shared fixtures: a real moto server over HTTP, and an environment that points boto3 at it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from programs_bridge.convert.dates import DateParser
from programs_bridge.convert.profiles import closest_profile
from programs_bridge.convert.reader import ExportReader
from programs_bridge.local.dynalite_server import DynaliteServer, dynalite_command, dynalite_server
from programs_bridge.local.moto_server import MotoServer, moto_server
from programs_bridge.local.synthetic import FIRST_NAMES, LAST_NAMES
from programs_bridge.programs_txt.layout import Field
from support.log_leaks import LeakWatch, leaked

#: ``tcp_proxy``: a switchable TCP proxy in front of a test server (tests/support/proxy.py).
pytest_plugins = ["support.proxy"]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """One moto server (server mode, child process) for the whole session."""
    with moto_server() as server:
        yield server


@pytest.fixture(scope="session")
def dynalite() -> Iterator[DynaliteServer | None]:
    """``PB_TEST_DYNAMODB=dynalite`` (with ``make dynalite`` done) serves DynamoDB from dynalite instead of
    moto, to check the suite on both; the default, and what ``make test`` runs, is moto alone (README)."""
    if os.environ.get("PB_TEST_DYNAMODB") != "dynalite":
        yield None
        return
    command = dynalite_command(ROOT / "bench" / "dynalite")
    if command is None:
        pytest.exit("PB_TEST_DYNAMODB=dynalite needs node and 'make dynalite'", returncode=64)
    with dynalite_server(command) as server:
        yield server


@pytest.fixture
def aws(moto: MotoServer, dynalite: DynaliteServer | None, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """An empty AWS account behind ``AWS_ENDPOINT_URL`` for one test."""
    moto.reset()
    for name, value in moto.environ.items():
        monkeypatch.setenv(name, value)
    if dynalite is not None:
        for name, value in dynalite.environ.items():
            monkeypatch.setenv(name, value)
        client = boto3.client("dynamodb")
        for table in client.list_tables()["TableNames"]:
            client.delete_table(TableName=table)
    yield moto


# --- no student data in any log line, across the whole suite ------------------------------------------

SAMPLES = ROOT / "samples"
#: Personal values a test module puts in front of the code (beyond the synthetic pools and the samples);
#: test modules add theirs, and the suite-wide check below looks for all of them.
PERSONAL_VALUES: set[str] = set()


#: The fields that identify a student: the values the suite-wide check looks for.
IDENTITY = (
    Field.IMPORT_STUDENT_ID, Field.STATE_STUDENT_ID, Field.LAST_NAME, Field.FIRST_NAME, Field.MIDDLE_NAME,
    Field.BIRTH_DATE,
)  # fmt: skip


def _sample_personal_values() -> set[str]:
    """Student IDs, names and birth dates (as written, and as MM/DD/YYYY) of the bundled program exports,
    found by the exports' own headers, and every name of the synthetic pools; values under three characters
    are too ambiguous to search for."""
    values: set[str] = {*LAST_NAMES, *FIRST_NAMES}
    parse = DateParser().parse
    for sample in sorted(SAMPLES.iterdir()):
        if sample.suffix not in (".csv", ".tsv", ".txt") or "roster" in sample.name:
            continue
        with ExportReader(sample) as reader:
            _, match = closest_profile(reader.header)
            columns = [match.positions[f] for f in IDENTITY if f in match.positions]
            birth = match.positions.get(Field.BIRTH_DATE)
            for _, fields in reader.rows():
                values.update(fields[i].strip() for i in columns if i < len(fields))
                if birth is not None and birth < len(fields):
                    values.add(parse(fields[birth].strip()).text)
    return {value for value in values if len(value) >= 3}


@pytest.fixture(scope="session", autouse=True)
def no_student_data_in_logs() -> Iterator[None]:
    """Every record any logger emits during the suite, checked at the end for student IDs, names and birth
    dates from the samples, the synthetic name pools and the tests' own data (``PERSONAL_VALUES``)."""
    handler = LeakWatch()
    watched = [logging.getLogger(), logging.getLogger("programs-bridge")]
    for logger in watched:
        logger.addHandler(handler)
    yield
    for logger in watched:
        logger.removeHandler(handler)
    found = leaked(handler.texts, _sample_personal_values() | PERSONAL_VALUES)
    assert not found, f"student data reached the logs: {found[:10]}"
