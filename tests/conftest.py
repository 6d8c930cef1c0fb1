"""Shared fixtures: a real moto server over HTTP, and an environment that points boto3 at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from programs_bridge.local.moto_server import MotoServer, moto_server


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
