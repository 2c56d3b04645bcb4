"""Small readers of what the stand-in and the tables hold, shared by the tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from tests.apps import AppUnderTest


def seat_writes(stripe: Any) -> list[Any]:
    """Quantity writes the provider applied (not replays, not faulted requests)."""
    return [r for r in stripe.writes() if r.path.startswith("/v1/subscription_items/")]


def outbox_rows(t: AppUnderTest) -> list[dict[str, Any]]:
    table = t.db.metadata.tables["seat_billing_outbox"]
    with t.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table))]


def ledger_rows(t: AppUnderTest) -> list[dict[str, Any]]:
    table = t.db.metadata.tables["seat_billing_seat_changes"]
    with t.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(table.c.id))]


def wait_for(check: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``check`` until it holds (for background work); False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()
