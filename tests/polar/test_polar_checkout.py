"""Checkout and the billing portal through the same routes as Stripe, answered by Polar."""

from __future__ import annotations

import re
from typing import Any

import pytest

from flask_seat_billing import Plan, Product, SeatBilling, signals
from flask_seat_billing.errors import ConfigurationError
from tests.apps import AppUnderTest
from tests.helpers import outbox_rows
from tests.polar.conftest import AppFactory, PolarWorld, subscribe
from tests.polar.test_polar_webhooks import subscription_rows


def _allow_all(t: AppUnderTest) -> None:
    t.billing.authorize(lambda request, organization_id, action: True)


def _checkouts(polar: PolarWorld) -> list[Any]:
    return [r for r in polar.api.requests if r.method == "POST" and r.path == "/v1/checkouts/"]


def test_checkout_to_webhook_to_local_row(
    t: AppUnderTest, polar: PolarWorld, served: str
) -> None:
    _allow_all(t)
    org = t.add_organization()
    t.add_members(org.id, 3)
    completed: list[dict[str, Any]] = []

    def seen(app: Any, **kw: Any) -> None:
        completed.append(kw)

    answer = t.app.test_client().post(
        "/billing/checkout", json={"organization_id": org.id, "plan": "team-monthly"}
    )

    assert answer.status_code == 200, answer.text
    [post] = _checkouts(polar)
    assert post.params["products"] == [polar.team]
    assert post.params["seats"] == 3
    assert "external_customer_id" not in post.params  # never someone else's customer
    metadata = dict(post.params["metadata"])
    assert re.fullmatch(r"[0-9a-f]{32}", metadata.pop("seat_billing_owner"))  # ownership proof
    assert metadata == {"organization_id": str(org.id), "plan": "team-monthly"}
    assert post.params["success_url"].endswith("checkout_id={CHECKOUT_ID}")
    checkout_id = (answer.json or {})["id"]
    assert subscription_rows(t) == []

    signals.checkout_completed.connect(seen)
    try:
        polar.api.complete_checkout(checkout_id)
        deliveries = polar.api.deliver_pending(times=2, order="reversed")
    finally:
        signals.checkout_completed.disconnect(seen)

    assert {d.status_code for d in deliveries} == {202}
    local = t.billing.subscription_for(org.id)
    assert local is not None
    assert (local.status, local.seats, local.plan_name) == ("active", 3, "team-monthly")
    assert len(subscription_rows(t)) == 1
    assert [c["plan"] for c in completed] == ["team-monthly"]


def test_success_page_records_the_checkout_before_the_webhook(
    t: AppUnderTest, polar: PolarWorld
) -> None:
    _allow_all(t)
    org = t.add_organization()
    t.add_members(org.id, 2)
    answer = t.app.test_client().post(
        "/billing/checkout", json={"organization_id": org.id, "plan": "team-monthly"}
    )
    checkout_id = (answer.json or {})["id"]
    polar.api.complete_checkout(checkout_id)

    local = t.billing.complete_checkout(checkout_id)

    assert local is not None and (local.seats, local.status) == (2, "active")


def _trim_webhook_events(t: AppUnderTest) -> None:
    """What an app may run to keep the events table small: delete every recorded event."""
    with t.db.engine.begin() as conn:
        conn.execute(t.db.metadata.tables["seat_billing_webhook_events"].delete())


def test_trimming_webhook_events_keeps_an_open_checkout_the_apps(
    t: AppUnderTest, polar: PolarWorld, served: str
) -> None:
    """The owner tag is not a webhook event: deleting events while the customer pays (a nightly
    cleanup, say) leaves the new subscription linked, and its seats follow the members."""
    _allow_all(t)
    org = t.add_organization()
    t.add_members(org.id, 2)
    answer = t.app.test_client().post(
        "/billing/checkout", json={"organization_id": org.id, "plan": "team-monthly"}
    )
    _trim_webhook_events(t)
    polar.api.complete_checkout((answer.json or {})["id"])
    assert {d.status_code for d in polar.api.deliver_pending()} == {202}
    _trim_webhook_events(t)

    t.add_members(org.id, 1)
    assert {d.status_code for d in polar.api.deliver_pending()} <= {202}

    local = t.billing.subscription_for(org.id)
    assert local is not None
    assert polar.api.seats(local.provider_subscription_id) == 3
    assert local.seats == 3


def test_second_subscription_is_refused(t: AppUnderTest, polar: PolarWorld) -> None:
    _allow_all(t)
    org = t.add_organization()
    t.add_members(org.id, 1)
    subscribe(t, polar, org.id)

    answer = t.app.test_client().post(
        "/billing/checkout", json={"organization_id": org.id, "plan": "team-monthly"}
    )

    assert answer.status_code == 409
    assert (answer.json or {})["code"] == "ALREADY_SUBSCRIBED"
    assert _checkouts(polar) == []


def test_checkout_needs_authorization(t: AppUnderTest, polar: PolarWorld) -> None:
    org = t.add_organization()
    answer = t.app.test_client().post(
        "/billing/checkout", json={"organization_id": org.id, "plan": "team-monthly"}
    )
    assert answer.status_code == 403
    assert _checkouts(polar) == []


def test_checkout_refuses_foreign_redirects(t: AppUnderTest, polar: PolarWorld) -> None:
    _allow_all(t)
    org = t.add_organization()
    answer = t.app.test_client().post("/billing/checkout", json={
        "organization_id": org.id, "plan": "team-monthly",
        "success_url": "https://evil.example/steal",
    })
    assert answer.status_code == 400
    assert _checkouts(polar) == []


def test_portal_answers_with_polars_customer_portal(t: AppUnderTest, polar: PolarWorld) -> None:
    _allow_all(t)
    org = t.add_organization()
    t.add_members(org.id, 1)
    subscribe(t, polar, org.id)

    answer = t.app.test_client().post(
        "/billing/portal", json={"organization_id": org.id, "return_url": "/settings"}
    )

    assert answer.status_code == 200, answer.text
    assert (answer.json or {})["url"].startswith(f"{polar.api.url}/portal?")


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


def test_members_joining_while_the_subscription_is_incomplete_are_billed_once_it_is_active(
    t: AppUnderTest, polar: PolarWorld, served: str
) -> None:
    """As on Stripe: a checkout completed while its subscription is ``incomplete`` keeps the
    member who joined meanwhile held, and activation bills them with one write."""
    _allow_all(t)
    org = t.add_organization()
    t.add_members(org.id, 2)
    answer = t.app.test_client().post(
        "/billing/checkout", json={"organization_id": org.id, "plan": "team-monthly"}
    )
    checkout_id = (answer.json or {})["id"]
    t.add_members(org.id, 1)  # joins while the customer pays
    sub = str(polar.api.complete_checkout(checkout_id)["id"])
    polar.api.set_status(sub, "incomplete")
    assert all(d.status_code == 202 for d in polar.api.deliver_pending())
    assert t.billing.complete_checkout(checkout_id) is not None

    assert polar.api.seats(sub) == 2
    assert [r["status"] for r in outbox_rows(t)] == ["held"]

    polar.api.set_status(sub, "active")
    assert all(d.status_code == 202 for d in polar.api.deliver_pending())

    assert polar.api.seats(sub) == 3
    assert outbox_rows(t) == []


def test_two_apps_with_the_same_organization_id_never_share_a_polar_customer(
    make_app: AppFactory, polar: PolarWorld, tmp_path: Any
) -> None:
    """Production and staging on one Polar account, each with its own database and namespace:
    both have an organization 1, which are two companies. Staging's portal opens staging's
    customer, never the one production's organization 1 pays with."""
    production = make_app({"SEAT_BILLING_NAMESPACE": "production"})
    staging = make_app({"SEAT_BILLING_NAMESPACE": "staging"},
                       database_url=f"sqlite:///{tmp_path / 'staging.db'}")
    paid: dict[str, str | None] = {}
    organizations: list[str] = []
    for name, app, members in (("production", production, 5), ("staging", staging, 1)):
        with app.app.app_context():
            _allow_all(app)
            org = app.add_organization()
            organizations.append(str(org.id))
            app.add_members(org.id, members)
            answer = app.app.test_client().post(
                "/billing/checkout", json={"organization_id": org.id, "plan": "team-monthly"})
            assert answer.status_code == 200, answer.text
            checkout_id = (answer.json or {})["id"]
            polar.api.complete_checkout(checkout_id)
            local = app.billing.complete_checkout(checkout_id)
            assert local is not None
            paid[name] = local.provider_customer_id
            portal = app.app.test_client().post(
                "/billing/portal", json={"organization_id": org.id})
            assert portal.status_code == 200, portal.text
    sessions = [r.params["customer_id"] for r in polar.api.requests
                if r.path.startswith("/v1/customer-sessions")]
    assert organizations[0] == organizations[1]  # the same id in both databases
    assert paid["staging"] != paid["production"]
    assert sessions == [paid["production"], paid["staging"]]
