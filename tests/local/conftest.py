"""Fixtures for the local stack's tests: the demo runs its own moto server."""

from __future__ import annotations

import pytest

from programs_bridge.local.moto_server import MotoServer


@pytest.fixture
def clean_env(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo starts its own moto server and points AWS_* at it; no other test's settings may leak in."""
    names = ("AWS_ENDPOINT_URL", "LEDGER_TABLE", "IDEMPOTENCY_TABLE", "NOTIFY_TOPIC_ARN", "PROGRAMS_BRIDGE_WORKDIR")
    for name in names:
        monkeypatch.delenv(name, raising=False)
