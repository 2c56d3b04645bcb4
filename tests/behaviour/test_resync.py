"""``flask seats resync`` compares and pushes the subscription the engine bills, on every provider.

An organization may hold two live subscriptions of a configured plan (a double-submitted
checkout); the engine bills the newest (``subscriptions.billing_subscription``), so resync must
look at that one too, and rows a resync pull records first must keep the provider's order.
"""

from __future__ import annotations

from typing import Any

from click.testing import Result

from flask_seat_billing.cli import seats
from tests.apps import AppUnderTest
from tests.behaviour.conftest import World


def _resync(t: AppUnderTest, *args: str) -> Result:
    t.app.cli.add_command(seats, "seats")
    return t.app.test_cli_runner().invoke(args=["seats", "resync", *args])


def _checkout(t: AppUnderTest, provider: World, org_id: Any) -> str:
    """Buy through the app's own checkout and pay; no webhook reaches the app."""
    t.billing.authorize(lambda request, organization_id, action: True)
    answer = t.app.test_client().post(
        "/billing/checkout", json={"organization_id": org_id, "plan": provider.plan.name},
        headers={"Accept": "application/json"})
    assert answer.status_code == 200, answer.text
    checkout_id = str((answer.json or {})["id"])
    provider.stand_in.complete_checkout(checkout_id)
    subscription_id = provider.stand_in.checkout_subscription_id(checkout_id)
    assert subscription_id is not None
    # Forget that the checkout was open, as an app whose open-checkout record was lost would:
    # otherwise the next checkout request records this one and answers 409, which is right,
    # but these tests need a second subscription that only a later pull finds.
    owner_tags = t.db.metadata.tables["seat_billing_owner_tags"]
    with t.db.engine.begin() as conn:
        conn.execute(owner_tags.update().values(checkout_status=None))
    return subscription_id


def test_resync_finds_drift_on_the_subscription_that_is_billed(
    t: AppUnderTest, provider: World
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    older = provider.subscribe(t, org.id)
    newer = provider.subscribe(t, org.id)
    chosen = t.billing.subscription_for(org.id)
    assert chosen is not None and chosen.provider_subscription_id == newer
    provider.stand_in.set_seats(newer, 7)  # a dashboard edit; no webhook reaches the app

    check = _resync(t, "--check")
    assert check.exit_code == 1, check.output
    assert provider.seats(newer) == 7  # --check writes nothing

    result = _resync(t)

    assert result.exit_code == 0, result.output
    assert (provider.seats(older), provider.seats(newer)) == (2, 2)
    assert "1 updated" in result.output


def test_subscriptions_first_recorded_by_a_pull_keep_the_providers_order(
    t: AppUnderTest, provider: World
) -> None:
    """Two checkouts whose webhooks were lost: the pull records both, and the newer one is the
    organization's subscription, as it would have been had the webhooks arrived."""
    org = t.add_organization()
    t.add_members(org.id, 2)
    older = _checkout(t, provider, org.id)
    newer = _checkout(t, provider, org.id)

    result = _resync(t)
    assert result.exit_code == 0, result.output
    t.add_members(org.id, 1)

    chosen = t.billing.subscription_for(org.id)
    assert chosen is not None and chosen.provider_subscription_id == newer
    seats = [provider.stand_in.seats(sub, provider.plan) for sub in (older, newer)]
    assert seats == [2, 3]
