"""Which of two equal subscriptions is "the newest" is the provider's creation time, not when
the app happened to record them: a pull records them together, a webhook may arrive late."""

from __future__ import annotations

from typing import Any

from flask_seat_billing.cli import seats
from tests.apps import BASE_PRICE, PRO_MONTHLY, SEAT_PRICE, AppUnderTest
from tests.conftest import checkout_subscription


def _untracked_checkout(t: AppUnderTest, stripe: Any, org_id: Any) -> str:
    """A paid checkout the app has not recorded yet (no webhook delivered, no success page),
    and whose open session it no longer tracks, so that a second one can be opened."""
    sub = checkout_subscription(t, stripe, org_id)
    state = t.app.extensions["seat_billing"]
    with state.sql_engine().begin() as conn:
        conn.execute(state.tables.owner_tags.update().values(checkout_status=None))
    return sub


def test_after_a_pull_the_member_write_goes_to_the_newest(t: AppUnderTest, stripe: Any) -> None:
    t.app.cli.add_command(seats, "seats")
    org = t.add_organization()
    t.add_members(org.id, 2)
    older = _untracked_checkout(t, stripe, org.id)
    stripe.advance_time(60)
    newer = _untracked_checkout(t, stripe, org.id)

    result = t.app.test_cli_runner().invoke(args=["seats", "resync"])

    assert result.exit_code == 0, result.output
    assert t.billing.subscription_for(org.id).provider_subscription_id == newer
    t.add_members(org.id, 1)
    assert stripe.seats(newer, PRO_MONTHLY) == 3
    assert stripe.seats(older, PRO_MONTHLY) == 2


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


def test_an_older_subscription_recorded_last_is_not_the_newest(
    t: AppUnderTest, stripe: Any
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    items = [{"price": BASE_PRICE, "quantity": 1}, {"price": SEAT_PRICE, "quantity": 2}]
    older = stripe.create_subscription(items=items)["id"]
    stripe.advance_time(60)
    newer = stripe.create_subscription(items=items)["id"]

    t.billing.link_subscription(org.id, newer)
    t.billing.link_subscription(org.id, older)  # recorded here last, created there first

    assert t.billing.subscription_for(org.id).provider_subscription_id == newer
    t.add_members(org.id, 1)
    assert stripe.seats(newer, PRO_MONTHLY) == 3
    assert stripe.seats(older, PRO_MONTHLY) == 2
