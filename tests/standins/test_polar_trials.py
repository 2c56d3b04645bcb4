"""Checkout trials on the Polar stand-in, through the real SDK: ``trial_interval`` and
``trial_interval_count`` are validated as Polar validates them and start a ``trialing``
subscription whose trial ends that many units later."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from polar.v2026_10 import Polar
from polar.v2026_10.errors import HTTPValidationError

from flask_seat_billing.testing.polar_server import PolarStandIn

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def standin() -> Iterator[PolarStandIn]:
    with PolarStandIn(access_token="polar_oat_test", clock=lambda: START) as server:
        yield server


@pytest.fixture
def polar(standin: PolarStandIn) -> Iterator[Polar]:
    with Polar("polar_oat_test", base_url=standin.url) as client:
        yield client


@pytest.fixture
def product(standin: PolarStandIn) -> str:
    return str(standin.create_product("Team", price_per_seat=1000, maximum_seats=20)["id"])


@pytest.mark.parametrize(
    ("interval", "count", "trial_end"),
    [("day", 14, "2026-01-15"), ("week", 2, "2026-01-15"), ("month", 1, "2026-02-01")],
)
def test_checkout_trial_starts_a_trialing_subscription(
    standin: PolarStandIn, polar: Polar, product: str, interval: Any, count: int, trial_end: str
) -> None:
    checkout = polar.checkouts.create(
        products=[product], seats=3, trial_interval=interval, trial_interval_count=count
    )
    assert (checkout.trial_interval, checkout.trial_interval_count) == (interval, count)
    assert (checkout.active_trial_interval, checkout.active_trial_interval_count) == (
        interval,
        count,
    )

    standin.complete_checkout(checkout.id)
    sub = polar.subscriptions.get(str(polar.checkouts.get(checkout.id).subscription_id))

    assert sub.status == "trialing" and sub.seats == 3
    assert sub.trial_start is not None and sub.trial_start.startswith("2026-01-01")
    assert sub.trial_end is not None and sub.trial_end.startswith(trial_end)
    assert sub.current_period_end == sub.trial_end


def test_checkout_without_trial_fields_is_active(
    standin: PolarStandIn, polar: Polar, product: str
) -> None:
    checkout = polar.checkouts.create(products=[product], seats=1)
    assert checkout.trial_interval is None and checkout.active_trial_interval is None
    standin.complete_checkout(checkout.id)
    sub = polar.subscriptions.get(str(polar.checkouts.get(checkout.id).subscription_id))
    assert sub.status == "active" and sub.trial_end is None


@pytest.mark.parametrize(
    "fields",
    [
        {"trial_interval": "fortnight", "trial_interval_count": 1},
        {"trial_interval": "day", "trial_interval_count": 0},
        {"trial_interval": "day", "trial_interval_count": 1001},
        {"trial_interval": "day", "trial_interval_count": "7"},
        {"trial_interval": "day"},
        {"trial_interval_count": 7},
    ],
)
def test_bad_trial_fields_are_refused_and_create_nothing(
    standin: PolarStandIn, polar: Polar, product: str, fields: dict[str, Any]
) -> None:
    with pytest.raises(HTTPValidationError) as caught:
        polar.checkouts.create(products=[product], seats=1, **fields)
    assert caught.value.status_code == 422
    assert polar.checkouts.list().pagination.total_count == 0
