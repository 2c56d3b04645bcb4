"""Which of two equal subscriptions is "the newest" is the provider's creation time, not when
the app happened to record them: a pull records them together, a webhook may arrive late.
(Stripe's clock counts whole seconds; what happens on a tie is in
tests/providers/stripe/test_stripe_newest_subscription.py.)"""

from __future__ import annotations

from typing import Any

from flask_seat_billing.cli import seats
from tests.apps import AppUnderTest
from tests.behaviour.conftest import World


def _untracked_checkout(t: AppUnderTest, provider: World, org_id: Any) -> str:
    """A paid checkout the app has not recorded yet (no webhook delivered, no success page),
    and whose open checkout it no longer tracks, so that a second one can be opened."""
    sub = provider.checkout_subscription(t, org_id)
    state = t.app.extensions["seat_billing"]
    with state.sql_engine().begin() as conn:
        conn.execute(state.tables.owner_tags.update().values(checkout_status=None))
    return sub


def test_after_a_pull_the_member_write_goes_to_the_newest(
    t: AppUnderTest, provider: World
) -> None:
    t.app.cli.add_command(seats, "seats")
    org = t.add_organization()
    t.add_members(org.id, 2)
    older = _untracked_checkout(t, provider, org.id)
    provider.later()
    newer = _untracked_checkout(t, provider, org.id)

    result = t.app.test_cli_runner().invoke(args=["seats", "resync"])

    assert result.exit_code == 0, result.output
    assert t.billing.subscription_for(org.id).provider_subscription_id == newer
    t.add_members(org.id, 1)
    assert provider.seats(newer) == 3
    assert provider.seats(older) == 2


def test_an_older_subscription_recorded_last_is_not_the_newest(
    t: AppUnderTest, provider: World
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    s = provider.stand_in
    older = s.subscribe(org.id, provider.plan, 2, metadata={})
    provider.later()
    newer = s.subscribe(org.id, provider.plan, 2, metadata={})

    t.billing.link_subscription(org.id, newer)
    t.billing.link_subscription(org.id, older)  # recorded here last, created there first

    assert t.billing.subscription_for(org.id).provider_subscription_id == newer
    t.add_members(org.id, 1)
    assert provider.seats(newer) == 3
    assert provider.seats(older) == 2
