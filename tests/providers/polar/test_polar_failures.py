"""Polar outages and rate limits are retried; Polar's refusals are recorded once, with its words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flask_seat_billing import signals
from tests.apps import AppUnderTest
from tests.helpers import outbox_rows, wait_for
from tests.providers.polar.conftest import PolarWorld, seat_writes, subscribe


def test_provider_500s_then_recovery(t: AppUnderTest, polar: PolarWorld) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, polar, org.id)
    failures: list[dict[str, Any]] = []

    def failed(app: Any, **kw: Any) -> None:
        failures.append(kw)

    signals.seat_sync_failed.connect(failed)
    polar.api.faults.fail_next(3, status=500, path_prefix="/v1/subscriptions/")
    try:
        t.add_members(org.id, 1)  # the membership change itself succeeds

        assert t.Membership.query.filter_by(organization_id=org.id).count() == 3
        assert failures and failures[0]["permanent"] is False
        assert wait_for(lambda: polar.api.seats(sub) == 3, timeout=15)
        assert wait_for(lambda: outbox_rows(t) == [])
        assert len(seat_writes(polar)) == 1
    finally:
        signals.seat_sync_failed.disconnect(failed)


def test_network_error_is_retried(t: AppUnderTest, polar: PolarWorld) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, polar, org.id)
    polar.api.faults.drop_next(1)

    t.add_members(org.id, 1)

    assert wait_for(lambda: polar.api.seats(sub) == 3, timeout=15)
    assert wait_for(lambda: outbox_rows(t) == [])


def test_rate_limit_honours_retry_after(t: AppUnderTest, polar: PolarWorld) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, polar, org.id)
    polar.api.faults.rate_limit_next(1, retry_after=2, path_prefix="/v1/subscriptions/")

    t.add_members(org.id, 1)

    [row] = outbox_rows(t)
    assert (row["next_attempt_at"] - row["updated_at"]).total_seconds() >= 1.9
    assert "rate limit" in row["last_error"].lower()
    assert polar.api.seats(sub) == 2
    assert wait_for(lambda: polar.api.seats(sub) == 3, timeout=15)


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
