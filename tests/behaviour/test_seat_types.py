"""Seat types (``Plan.seat_prices``) on every provider: billed where the provider has separate
seat prices, refused at ``init_app`` (naming the plan) where it does not. The billing itself is
in tests/providers/stripe/test_stripe_seat_types.py, Stripe being the provider that has them."""

from __future__ import annotations

import pytest

from flask_seat_billing import Plan, Product
from flask_seat_billing.errors import ConfigurationError
from tests.behaviour.conftest import World


def _studio(provider: World) -> list[Product]:
    base = provider.plan.plan_id
    plan = Plan(name="studio-monthly", plan_id=base, interval="month", cost=49,
                seat_prices={"editor": "price_editor_m", "viewer": "price_viewer_m"})
    return [*provider.products, Product(id="studio", name="Studio", plans=[plan])]


def test_seat_prices_follow_the_seat_types_capability(provider: World) -> None:
    if provider.capabilities.has("seat_types"):
        t = provider.make_app(products=_studio(provider), seat_type=lambda M: M.role)
        with t.app.app_context():
            org = t.add_organization()
            t.add_members(org.id, 2)
            assert t.billing.billable_seats_by_type(org.id) == {"member": 2}
        return
    with pytest.raises(ConfigurationError, match="'studio-monthly' sets seat_prices"):
        provider.make_app(products=_studio(provider), seat_type=lambda M: M.role)
