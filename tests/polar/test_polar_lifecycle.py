"""Issue 12 on Polar: seat changes survive dunning and cancellation, "correct" corrects the first
observation, and only subscriptions the app made or linked are written."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from werkzeug.serving import make_server

from flask_seat_billing.cli import seats
from tests.apps import AppUnderTest
from tests.helpers import outbox_rows
from tests.polar.conftest import AppFactory, PolarWorld, seat_writes, subscribe


def _writes_to(polar: PolarWorld, sub: str) -> list[Any]:
    return [w for w in seat_writes(polar) if w.path.endswith(sub)]


@pytest.mark.parametrize("held, back", [
    (lambda api, sub: api.set_status(sub, "past_due"), lambda api, sub: api.set_status(
        sub, "active")),
    (lambda api, sub: api.cancel_subscription(sub, at_period_end=True),
     lambda api, sub: api.uncancel_subscription(sub)),
], ids=["past_due", "canceling"])
def test_change_while_not_billable_is_held_then_sent_with_one_write(
    t: AppUnderTest, polar: PolarWorld, served: str, held: Any, back: Any
) -> None:
    """Polar refuses seat updates while past due or canceling (403): the change waits."""
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, polar, org.id)
    held(polar.api, sub)
    polar.api.deliver_pending()

    t.add_members(org.id, 1)

    assert polar.api.seats(sub) == 2
    [row] = outbox_rows(t)
    assert row["status"] == "held"
    assert _writes_to(polar, sub) == []

    back(polar.api, sub)
    assert all(d.status_code == 202 for d in polar.api.deliver_pending())

    assert polar.api.seats(sub) == 3
    assert len(_writes_to(polar, sub)) == 1
    assert outbox_rows(t) == []


def test_correct_fixes_a_drifted_quantity_when_linked(
    make_app: AppFactory, polar: PolarWorld
) -> None:
    t = make_app({"SEAT_BILLING_EXTERNAL_CHANGE": "correct"})
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 3)
        sub = subscribe(t, polar, org.id, seats=6)

        assert polar.api.seats(sub) == 3


def test_external_customer_id_and_metadata_do_not_make_a_subscription_ours(
    make_app: AppFactory, polar: PolarWorld
) -> None:
    t = make_app({"SEAT_BILLING_EXTERNAL_CHANGE": "correct"})
    server = make_server("127.0.0.1", 0, t.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    polar.api.add_webhook_endpoint(
        f"http://127.0.0.1:{server.server_port}/billing/webhooks/polar", secret=polar.secret)
    try:
        with t.app.app_context():
            org = t.add_organization()
            t.add_members(org.id, 2)
            sub = polar.api.create_subscription(
                polar.team, seats=5, external_customer_id=str(org.id),
                metadata={"organization_id": str(org.id), "plan": "team-monthly"},
            )["id"]
            unknown = polar.api.create_subscription(
                polar.team, seats=5, metadata={"organization_id": "999"})["id"]
            assert all(d.status_code == 202 for d in polar.api.deliver_pending())
            polar.api.set_seats(unknown, 7)  # a dashboard edit; "correct" must not touch it
            assert all(d.status_code == 202 for d in polar.api.deliver_pending())

            t.add_members(org.id, 1)

            assert t.billing.subscription_for(org.id) is None
            assert (polar.api.seats(sub), polar.api.seats(unknown)) == (5, 7)
            assert seat_writes(polar) == []
    finally:
        server.shutdown()
        thread.join(5)


def test_the_billable_subscription_of_a_configured_plan_is_the_organizations(
    t: AppUnderTest, polar: PolarWorld
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    old = subscribe(t, polar, org.id)
    polar.api.revoke_subscription(old)
    t.billing.link_subscription(org.id, old)
    current = subscribe(t, polar, org.id, plan="capped")
    other = polar.api.create_product("Other", price_per_seat=500, maximum_seats=50)["id"]
    unrelated = polar.api.create_subscription(other, seats=1)["id"]
    t.billing.link_subscription(org.id, unrelated)  # newest row, but no configured plan

    t.add_members(org.id, 1)

    chosen = t.billing.subscription_for(org.id)
    assert chosen is not None and chosen.provider_subscription_id == current
    assert polar.api.seats(current) == 3
    assert _writes_to(polar, unrelated) == [] and _writes_to(polar, old) == []


def test_setting_a_namespace_later_keeps_the_subscriptions_sold_before(
    make_app: AppFactory, polar: PolarWorld
) -> None:
    """As on Stripe: subscriptions sold before SEAT_BILLING_NAMESPACE was set carry the app's
    owner tag and no namespace; the linked one keeps being synced, an unseen one is linked."""
    before = make_app()
    sold: dict[str, tuple[Any, str]] = {}
    with before.app.app_context():
        before.billing.authorize(lambda request, organization_id, action: True)
        for name in ("linked", "unseen"):
            org_id = before.add_organization().id
            before.add_members(org_id, 2)
            answer = before.app.test_client().post(
                "/billing/checkout", json={"organization_id": org_id, "plan": "team-monthly"})
            assert answer.status_code == 200, answer.text
            sub = polar.api.complete_checkout((answer.json or {})["id"])
            sold[name] = (org_id, str(sub["id"]))
            if name == "linked":
                assert before.billing.complete_checkout((answer.json or {})["id"]) is not None

    # The same deployment and database, redeployed with a namespace.
    after = make_app({"SEAT_BILLING_NAMESPACE": "production"}, create=False)
    after.app.cli.add_command(seats, "seats")
    with after.app.app_context():
        for org_id, _ in sold.values():
            after.add_members(org_id, 1)
        result = after.app.test_cli_runner().invoke(args=["seats", "resync"])
        assert result.exit_code == 0, result.output

        assert [polar.api.seats(sub) for _, sub in sold.values()] == [3, 3]
        assert outbox_rows(after) == []
