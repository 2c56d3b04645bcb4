"""What only Polar's checkout needs: no seat price, and no code change to use it. The checkout and
portal routes themselves are in tests/behaviour/test_checkout.py and test_portal.py."""

from __future__ import annotations

import pytest

from flask_seat_billing import Plan, Product, SeatBilling
from flask_seat_billing.errors import ConfigurationError
from tests.providers.polar.conftest import AppFactory, PolarWorld


def test_seat_price_id_is_a_configuration_error(make_app: AppFactory, polar: PolarWorld) -> None:
    products = [Product(id="team", name="Team", plans=[
        Plan(name="team-monthly", plan_id=polar.team, seat_price_id="price_seat"),
    ])]
    with pytest.raises(ConfigurationError, match="seat_price_id.*Stripe-only"):
        make_app(products=products)


def test_polar_needs_no_other_code_change(make_app: AppFactory) -> None:
    t = make_app()
    assert isinstance(t.billing, SeatBilling)
    assert t.app.extensions["seat_billing"].provider.name == "polar"
