"""Fixtures for the commands that read and write a ledger: an empty table on the moto server."""

from __future__ import annotations

import pytest

from programs_bridge.ledger.store import create_table
from programs_bridge.local.moto_server import MotoServer


@pytest.fixture
def empty_table(aws: MotoServer) -> str:
    """An empty ledger table, as `ledger seed` meets it on a district's first day."""
    create_table("programs-ledger")
    return "programs-ledger"
