"""Issue 12 on Stripe: the seat quantity stays right through the subscription lifecycle, and only
the app's own subscriptions are ever written. Over HTTP: the app is served, Stripe's webhooks are
delivered to it signed, and every write is read back from the stand-in's request log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flask_seat_billing.cli import seats
from tests import web_helpers
from tests.apps import BASE_PRICE, SEAT_ONLY_PRICE, SEAT_PRICE, YEARLY_SEAT
from tests.conftest import AppFactory, checkout_subscription, subscribe
from tests.helpers import outbox_rows, seat_writes
from tests.web_helpers import Served

CORRECT = {"SEAT_BILLING_EXTERNAL_CHANGE": "correct"}


@pytest.fixture
def web(make_app: AppFactory, stripe: Any) -> Iterator[Served]:
    yield from web_helpers.serve_app(make_app, stripe)


@pytest.fixture
def web_correct(make_app: AppFactory, stripe: Any) -> Iterator[Served]:
    yield from web_helpers.serve_app(make_app, stripe, **CORRECT)


def _writes_to(stripe: Any, sub: str) -> list[Any]:
    items = {i["id"] for i in stripe.subscription(sub)["items"]["data"]}
    return [w for w in seat_writes(stripe) if w.path.rsplit("/", 1)[-1] in items]


def _delivered(stripe: Any) -> None:
    assert all(d.ok for d in stripe.deliver_pending())


def _status_output(t: Any) -> str:
    t.app.cli.add_command(seats, "seats")
    result = t.app.test_cli_runner().invoke(args=["seats", "status"])
    assert result.exit_code == 0, result.output
    return str(result.output)


# -- 1. lifecycle -----------------------------------------------------------------------------

def test_change_while_past_due_is_sent_at_once(web: Served, stripe: Any) -> None:
    """Stripe accepts quantity updates in dunning: the retried invoice carries the new seat."""
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)
    stripe.set_subscription_status(sub, "past_due")
    _delivered(stripe)

    t.add_members(org.id, 1)

    assert stripe.item_quantity(sub, SEAT_PRICE) == 3
    assert outbox_rows(t) == []


@pytest.mark.parametrize("held", ["paused", "incomplete", "unpaid"])
@pytest.mark.parametrize("seen_by", ["webhook", "resync", "link"])
def test_change_while_not_billable_is_held_then_sent_with_one_write(
    web: Served, stripe: Any, held: str, seen_by: str
) -> None:
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)
    stripe.set_subscription_status(sub, held)
    _delivered(stripe)

    t.add_members(org.id, 2)

    assert stripe.item_quantity(sub, SEAT_PRICE) == 2  # nothing sent to a held subscription
    [row] = outbox_rows(t)
    assert row["status"] == "held" and held in row["last_error"]
    assert "held x0" in _status_output(t)
    writes_before = len(seat_writes(stripe))

    stripe.set_subscription_status(sub, "active")
    if seen_by == "webhook":
        _delivered(stripe)
    elif seen_by == "resync":
        result = t.app.test_cli_runner().invoke(args=["seats", "resync"])
        assert result.exit_code == 0, result.output
    else:
        t.billing.link_subscription(org.id, sub)

    assert stripe.item_quantity(sub, SEAT_PRICE) == 4
    assert len(seat_writes(stripe)) == writes_before + 1
    assert outbox_rows(t) == []


def test_permanent_refusal_while_past_due_is_sent_on_recovery(web: Served, stripe: Any) -> None:
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)
    stripe.set_subscription_status(sub, "past_due")
    _delivered(stripe)
    stripe.faults.fail_next(1, status=400, path_prefix="/v1/subscription_items/")

    t.add_members(org.id, 1)

    [row] = outbox_rows(t)
    assert row["status"] == "failed"
    assert t.billing.sync_pending() == []  # parked, as a permanent refusal is

    stripe.set_subscription_status(sub, "active")  # the retried invoice was paid
    _delivered(stripe)

    assert stripe.item_quantity(sub, SEAT_PRICE) == 3
    assert outbox_rows(t) == []


# -- 2. "correct" corrects the first observation too ------------------------------------------

def test_correct_fixes_a_drifted_quantity_on_the_first_webhook(
    web_correct: Served, stripe: Any
) -> None:
    t = web_correct.t
    org = t.add_organization()
    t.add_members(org.id, 3)
    sub = checkout_subscription(t, stripe, org.id)
    stripe.set_item_quantity(sub, SEAT_PRICE, 7)  # edited before the app saw anything
    [created] = stripe.events("customer.subscription.created")

    assert all(d.ok for d in stripe.deliver(created["id"]))

    assert stripe.item_quantity(sub, SEAT_PRICE) == 3


@pytest.mark.parametrize("mode, expected", [("correct", 3), ("accept", 7)])
def test_link_of_a_drifted_subscription(
    make_app: AppFactory, stripe: Any, mode: str, expected: int
) -> None:
    """Under "accept" the first observation keeps the quantity seen (resync corrects it)."""
    t = make_app({"SEAT_BILLING_EXTERNAL_CHANGE": mode})
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 3)
        sub = subscribe(t, stripe, org.id, seats=7)

        assert stripe.item_quantity(sub, SEAT_PRICE) == expected
        assert t.billing.subscription_for(org.id).seats == expected  # type: ignore[union-attr]


# -- 3. ownership: only what the app set server-side ------------------------------------------

def test_buyer_set_client_reference_id_does_not_take_over_an_organization(
    web: Served, stripe: Any
) -> None:
    t = web.t
    victim = t.add_organization()
    t.add_members(victim.id, 3)
    own = subscribe(t, stripe, victim.id)
    # A Payment Link with ?client_reference_id=<victim>: a cheap plan, no metadata of ours.
    session = stripe.client().v1.checkout.sessions.create(params={
        "mode": "subscription", "client_reference_id": str(victim.id),
        "line_items": [{"price": SEAT_ONLY_PRICE, "quantity": 1}],
        "success_url": f"{web.url}/?session_id={{CHECKOUT_SESSION_ID}}",
    })
    stranger = str(stripe.complete_checkout(session.id)["subscription"])
    _delivered(stripe)
    assert t.billing.complete_checkout(session.id) is not None  # recorded, unlinked

    chosen = t.billing.subscription_for(victim.id)
    assert chosen is not None and chosen.provider_subscription_id == own
    t.add_members(victim.id, 1)
    assert stripe.item_quantity(own, SEAT_PRICE) == 4
    assert _writes_to(stripe, stranger) == []
    portal = web.post(f"{web.prefix}/portal", json_body={"organization_id": victim.id},
                      headers={"X-User-Org": str(victim.id)})
    assert portal.status == 200, portal.text
    [post] = [r for r in stripe.requests if r.path == "/v1/billing_portal/sessions"]
    assert post.params["customer"] == stripe.subscription(own)["customer"]


# -- 4. subscriptions the app does not own are never written ----------------------------------

def test_subscription_naming_an_unknown_organization_is_never_written(
    web_correct: Served, stripe: Any
) -> None:
    sub = str(stripe.create_subscription(
        items=[{"price": BASE_PRICE, "quantity": 1}, {"price": SEAT_PRICE, "quantity": 9}],
        metadata={"organization_id": "999", "plan": "pro-monthly"},
    )["id"])
    _delivered(stripe)
    stripe.set_item_quantity(sub, SEAT_PRICE, 8)  # a dashboard edit: "correct" must not touch it
    _delivered(stripe)

    assert stripe.item_quantity(sub, SEAT_PRICE) == 8
    assert len(_writes_to(stripe, sub)) == 0
    assert outbox_rows(web_correct.t) == []


def test_namespaces_keep_two_apps_on_one_account_apart(
    make_app: AppFactory, stripe: Any
) -> None:
    """Staging and production on one Stripe account (here even on one database)."""
    staging = make_app({"SEAT_BILLING_NAMESPACE": "staging", **CORRECT})
    production = make_app({"SEAT_BILLING_NAMESPACE": "production", **CORRECT})
    production.app.cli.add_command(seats, "seats")
    with staging.app.app_context():
        org_id = staging.add_organization().id
        staging.add_members(org_id, 1)
        sub = checkout_subscription(staging, stripe, org_id)
        staging.add_members(org_id, 2)
    assert stripe.subscription(sub)["metadata"]["seat_billing_namespace"] == "staging"

    with production.app.app_context():
        result = production.app.test_cli_runner().invoke(args=["seats", "resync"])
        assert result.exit_code == 0, result.output
        assert production.billing.subscription_for(org_id) is None
    assert _writes_to(stripe, sub) == []


def test_setting_a_namespace_later_keeps_the_subscriptions_sold_before(
    make_app: AppFactory, stripe: Any
) -> None:
    """A deployment sells, then sets SEAT_BILLING_NAMESPACE: the subscriptions it sold before
    carry its owner tag but no namespace, and stay its own: the linked one keeps being synced,
    and one never seen locally is still linked by a resync."""
    before = make_app()
    with before.app.app_context():
        before.billing.authorize(lambda request, organization_id, action: True)
        linked_org = before.add_organization().id
        before.add_members(linked_org, 2)
        answer = before.app.test_client().post(
            "/billing/checkout", json={"organization_id": linked_org, "plan": "pro-monthly"})
        assert answer.status_code == 200, answer.text
        linked = str(stripe.complete_checkout(answer.json["id"])["subscription"])
        assert before.billing.complete_checkout(answer.json["id"]) is not None  # success page
        unseen_org = before.add_organization().id
        before.add_members(unseen_org, 1)
        unseen = checkout_subscription(before, stripe, unseen_org)  # its webhook was lost

    # The same deployment and database, redeployed with a namespace.
    after = make_app({"SEAT_BILLING_NAMESPACE": "production"}, create=False)
    after.app.cli.add_command(seats, "seats")
    with after.app.app_context():
        after.add_members(linked_org, 1)
        after.add_members(unseen_org, 1)
        result = after.app.test_cli_runner().invoke(args=["seats", "resync"])
        assert result.exit_code == 0, result.output

        assert stripe.item_quantity(linked, SEAT_PRICE) == 3
        assert stripe.item_quantity(unseen, SEAT_PRICE) == 2
        local = after.billing.subscription_for(unseen_org)
        assert local is not None and local.provider_subscription_id == unseen
        assert outbox_rows(after) == []


def test_two_deployments_without_configuration_do_not_own_each_others(
    make_app: AppFactory, stripe: Any, database_url: str, tmp_path: Any
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("needs a second database; the namespace test covers PostgreSQL")
    first = make_app(CORRECT)
    second = make_app(CORRECT, database_url=f"sqlite:///{tmp_path / 'second.db'}")
    second.app.cli.add_command(seats, "seats")
    with first.app.app_context():
        org_id = first.add_organization().id
        first.add_members(org_id, 1)
        sub = checkout_subscription(first, stripe, org_id)
    with second.app.app_context():
        other = second.add_organization()  # the same id, another company
        second.add_members(other.id, 4)
        result = second.app.test_cli_runner().invoke(args=["seats", "resync"])
        assert result.exit_code == 0, result.output
        assert second.billing.subscription_for(other.id) is None
    assert _writes_to(stripe, sub) == []


# -- 5. several subscriptions: one documented choice ------------------------------------------

def test_the_billable_subscription_of_a_configured_plan_is_the_organizations(
    web: Served, stripe: Any
) -> None:
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    old = subscribe(t, stripe, org.id)
    stripe.cancel_subscription(old)
    _delivered(stripe)
    current = subscribe(t, stripe, org.id, plan="pro-yearly")
    unrelated = str(stripe.create_subscription(
        items=[{"price": stripe.create_price(unit_amount=500)["id"], "quantity": 1}],
    )["id"])
    t.billing.link_subscription(org.id, unrelated)  # newest row, but no configured plan

    t.add_members(org.id, 1)

    chosen = t.billing.subscription_for(org.id)
    assert chosen is not None and chosen.provider_subscription_id == current
    assert stripe.item_quantity(current, YEARLY_SEAT) == 3
    assert _writes_to(stripe, unrelated) == [] and _writes_to(stripe, old) == []
    portal = web.post(f"{web.prefix}/portal", json_body={"organization_id": org.id},
                      headers={"X-User-Org": str(org.id)})
    assert portal.status == 200, portal.text
    [post] = [r for r in stripe.requests if r.path == "/v1/billing_portal/sessions"]
    assert post.params["customer"] == stripe.subscription(current)["customer"]
    t.add_members(org.id, 7)  # pro-yearly caps at 10 seats
    with pytest.raises(Exception, match="seats"):
        t.billing.check("before_invitation_create", organization_id=org.id)
