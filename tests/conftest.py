"""Shared fixtures: a real moto server over HTTP, and an environment that points boto3 at it."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from programs_bridge.dates import DateParser
from programs_bridge.local.moto_server import MotoServer, moto_server
from programs_bridge.reader import ExportReader
from programs_bridge.synthetic import FIRST_NAMES, LAST_NAMES


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """One moto server (server mode, child process) for the whole session."""
    with moto_server() as server:
        yield server


@pytest.fixture
def aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """An empty AWS account behind ``AWS_ENDPOINT_URL`` for one test."""
    moto.reset()
    for name, value in moto.environ.items():
        monkeypatch.setenv(name, value)
    yield moto


# --- no student data in any log line, across the whole suite ------------------------------------------

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
#: Personal values a test module puts in front of the code (beyond the synthetic pools and the samples);
#: test modules add theirs, and the suite-wide check below looks for all of them.
PERSONAL_VALUES: set[str] = set()


class _EveryLogRecord(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = {k: v for k, v in record.__dict__.items() if k not in ("args", "exc_info", "msg")}
        self.texts.append(f"{record.getMessage()} {json.dumps(fields, default=str)}")


def _sample_personal_values() -> set[str]:
    """Student IDs, names and birth dates (as written, and as MM/DD/YYYY) of the bundled program exports,
    and every name of the synthetic pools; values under three characters are too ambiguous to search for."""
    values: set[str] = {*LAST_NAMES, *FIRST_NAMES}
    parse = DateParser().parse
    for sample in sorted(SAMPLES.iterdir()):
        if sample.suffix not in (".csv", ".tsv", ".txt") or "roster" in sample.name:
            continue
        with ExportReader(sample) as reader:
            for _, fields in reader.rows():
                identity = [value.strip() for value in fields[:6]]
                values.update(identity)
                values.add(parse(identity[-1]).text)
    return {value for value in values if len(value) >= 3}


@pytest.fixture(scope="session", autouse=True)
def no_student_data_in_logs() -> Iterator[None]:
    """Every record any logger emits during the suite, checked at the end for student IDs, names and birth
    dates from the samples, the synthetic name pools and the tests' own data (``PERSONAL_VALUES``)."""
    handler = _EveryLogRecord()
    watched = [logging.getLogger(), logging.getLogger("programs-bridge")]
    for logger in watched:
        logger.addHandler(handler)
    yield
    for logger in watched:
        logger.removeHandler(handler)
    text = "\n".join(handler.texts)
    leaked = sorted(
        value
        for value in _sample_personal_values() | PERSONAL_VALUES
        if re.search(rf"(?<![\w/-]){re.escape(value)}(?![\w/-])", text)
    )
    assert not leaked, f"student data reached the logs: {leaked[:10]}"
