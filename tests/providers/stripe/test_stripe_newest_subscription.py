"""Stripe's clock counts whole seconds, so two subscriptions can be created in the same second:
the listing's order (newest first) breaks the tie. (The newest by the provider's clock on every
provider: tests/behaviour/test_newest_subscription.py.)"""

from __future__ import annotations

from typing import Any

from flask_seat_billing.cli import seats
from tests.apps import PRO_MONTHLY, AppUnderTest
from tests.conftest import checkout_subscription


def _untracked_checkout(t: AppUnderTest, stripe: Any, org_id: Any) -> str:
    """A paid checkout the app has not recorded yet (no webhook delivered, no success page),
    and whose open session it no longer tracks, so that a second one can be opened."""
    sub = checkout_subscription(t, stripe, org_id)
    state = t.app.extensions["seat_billing"]
    with state.sql_engine().begin() as conn:
        conn.execute(state.tables.owner_tags.update().values(checkout_status=None))
    return sub


def test_same_second_pull_still_picks_the_newest(t: AppUnderTest, stripe: Any) -> None:
    """Stripe's clock counts seconds; the listing's order (newest first) breaks the tie."""
    t.app.cli.add_command(seats, "seats")
    stripe.freeze_time(1_800_000_000)
    org = t.add_organization()
    t.add_members(org.id, 2)
    older = _untracked_checkout(t, stripe, org.id)
    newer = _untracked_checkout(t, stripe, org.id)

    assert t.app.test_cli_runner().invoke(args=["seats", "resync"]).exit_code == 0

    assert t.billing.subscription_for(org.id).provider_subscription_id == newer
    t.add_members(org.id, 1)
    assert stripe.seats(newer, PRO_MONTHLY) == 3
    assert stripe.seats(older, PRO_MONTHLY) == 2
