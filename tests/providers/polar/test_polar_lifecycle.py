"""What only Polar's lifecycle shows: a pending cancellation holds a seat change until it is
undone. The lifecycle on every provider is in tests/behaviour/test_lifecycle.py; which of
several subscriptions is the organization's, in tests/behaviour/test_ownership.py."""

from __future__ import annotations

from typing import Any

from tests.apps import AppUnderTest
from tests.helpers import outbox_rows
from tests.providers.polar.conftest import PolarWorld, seat_writes, subscribe


def _writes_to(polar: PolarWorld, sub: str) -> list[Any]:
    return [w for w in seat_writes(polar) if w.path.endswith(sub)]


def test_change_while_canceling_is_held_then_sent_with_one_write(
    t: AppUnderTest, polar: PolarWorld, served: str
) -> None:
    """Polar refuses seat updates while a cancellation is pending (403): the change waits
    until it is undone. (Held statuses on every provider: tests/behaviour/test_lifecycle.py.)"""
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, polar, org.id)
    polar.api.cancel_subscription(sub, at_period_end=True)
    polar.api.deliver_pending()

    t.add_members(org.id, 1)

    assert polar.api.seats(sub) == 2
    [row] = outbox_rows(t)
    assert row["status"] == "held"
    assert _writes_to(polar, sub) == []

    polar.api.uncancel_subscription(sub)
    assert all(d.status_code == 202 for d in polar.api.deliver_pending())

    assert polar.api.seats(sub) == 3
    assert len(_writes_to(polar, sub)) == 1
    assert outbox_rows(t) == []
