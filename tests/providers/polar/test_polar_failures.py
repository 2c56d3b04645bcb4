"""Polar's own refusals (seat limits of a product, assigned seats, a failed payment) are recorded
once, with its words. Outages, rate limits and lost answers on every provider are in
tests/behaviour/test_faults.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flask_seat_billing import signals
from tests.apps import AppUnderTest
from tests.helpers import outbox_rows
from tests.providers.polar.conftest import PolarWorld, subscribe

Setup = Callable[[AppUnderTest, PolarWorld, Any, str, list[Any]], None]


def _above_maximum(t: AppUnderTest, polar: PolarWorld, org: Any, sub: str, m: list[Any]) -> None:
    t.add_members(org.id, 4)  # 2 -> 6, the product allows 5


def _below_minimum(t: AppUnderTest, polar: PolarWorld, org: Any, sub: str, m: list[Any]) -> None:
    t.db.session.delete(m[0])  # 2 -> 1, the product needs 2
    t.db.session.commit()


def _below_assigned(t: AppUnderTest, polar: PolarWorld, org: Any, sub: str, m: list[Any]) -> None:
    t.add_members(org.id, 1)  # 2 -> 3: above the minimum of 2, so only the assignments refuse
    polar.api.assign_seats(sub, 3)
    t.db.session.delete(m[0])
    t.db.session.commit()


def _payment_failed(t: AppUnderTest, polar: PolarWorld, org: Any, sub: str, m: list[Any]) -> None:
    polar.api.fail_payments(str(org.id))
    t.add_members(org.id, 1)


@pytest.mark.parametrize(
    ("setup", "status", "words"),
    [
        (_above_maximum, 422, "Maximum seats is 5"),
        (_below_minimum, 422, "Minimum seats is 2"),
        (_below_assigned, 400, "3 seats are assigned"),
        (_payment_failed, 402, "PaymentFailed"),
    ],
    ids=["above-maximum", "below-minimum", "below-assigned", "payment-failed"],
)
def test_polar_refusal_is_recorded_as_permanent(
    t: AppUnderTest, polar: PolarWorld, setup: Setup, status: int, words: str
) -> None:
    org = t.add_organization()
    members = t.add_members(org.id, 2)
    sub = subscribe(t, polar, org.id, plan="capped")
    t.billing.stop_worker()
    failures: list[dict[str, Any]] = []

    def failed(app: Any, **kw: Any) -> None:
        failures.append(kw)

    signals.seat_sync_failed.connect(failed)
    try:
        setup(t, polar, org, sub, members)
        seats_before = polar.api.seats(sub)
    finally:
        signals.seat_sync_failed.disconnect(failed)

    [row] = outbox_rows(t)
    assert row["status"] == "failed"
    assert row["last_error"].startswith("Polar refused: ")
    assert words in row["last_error"]
    [failure] = failures
    assert failure["permanent"] is True and failure["attempts"] == 1
    assert failure["error"] == row["last_error"]
    assert polar.api.seats(sub) == seats_before
    assert t.billing.sync_pending() == []  # parked until membership changes again
    patches = [r for r in polar.api.requests if r.method == "PATCH"]
    assert [r.status for r in patches][-1] == status
