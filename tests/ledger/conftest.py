"""Fixtures for the ledger: a real table on the moto server, and a harness that plays nightly runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from programs_bridge.ledger.store import LedgerStore, create_table
from programs_bridge.local.moto_server import MotoServer

from .harness import Ledger


@pytest.fixture
def ledger(aws: MotoServer) -> Iterator[Ledger]:
    """A fresh ledger table on the moto server (over HTTP), and the harness around it."""
    create_table("programs-ledger")
    yield Ledger(LedgerStore("programs-ledger"))
