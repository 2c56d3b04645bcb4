"""POST /billing/checkout over HTTP: who may, what Stripe is asked for, and how it completes."""

from __future__ import annotations

import re
import socket
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from flask_seat_billing.policies import allow, deny
from tests import web_helpers
from tests.apps import BASE_PRICE, SEAT_ONLY_PRICE, SEAT_PRICE
from tests.conftest import subscribe
from tests.web_helpers import (
    WEBHOOK_SECRET,
    Served,
    local_row,
    serve,
    serve_app,
    table_rows,
)

_web = pytest.fixture(name="web")(web_helpers.web)
_signals = pytest.fixture(name="signals_seen")(web_helpers.signals_seen)


def _session_posts(stripe: Any) -> list[Any]:
    return [r for r in stripe.requests if r.method == "POST" and r.path == "/v1/checkout/sessions"]


def _session_of(stripe: Any, answer: Any) -> dict[str, Any]:
    session_id = answer.json["url"].rsplit("/", 1)[-1]
    return dict(stripe.checkout_session(session_id))


def test_checkout_to_webhook_to_local_row(
    web: Served, stripe: Any, signals_seen: dict[str, list[Any]]
) -> None:
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 3)

    answer = web.checkout(org.id)

    assert answer.status == 200, answer.text
    session = _session_of(stripe, answer)
    [post] = _session_posts(stripe)
    assert post.params["line_items"] == [
        {"price": BASE_PRICE, "quantity": "1"}, {"price": SEAT_PRICE, "quantity": "3"}
    ]
    metadata = dict(post.params["subscription_data"]["metadata"])
    assert re.fullmatch(r"[0-9a-f]{32}", metadata.pop("seat_billing_owner"))  # ownership proof
    assert metadata == {"organization_id": str(org.id), "plan": "pro-monthly"}
    assert session["client_reference_id"] == str(org.id)
    assert table_rows(t, "subscriptions") == []

    stripe.complete_checkout(session["id"])
    deliveries = stripe.deliver_pending()

    assert deliveries and all(d.ok for d in deliveries)
    local = t.billing.subscription_for(org.id)
    assert local is not None
    assert (local.status, local.seats, local.plan_name) == ("active", 3, "pro-monthly")
    assert stripe.item_quantity(local.provider_subscription_id, SEAT_PRICE) == 3
    assert len(signals_seen["checkout_completed"]) == 1
    assert signals_seen["checkout_completed"][0]["organization_id"] == org.id


def test_browser_form_gets_a_303_to_the_hosted_page(web: Served, stripe: Any) -> None:
    org = web.t.add_organization()
    answer = web.post(
        f"{web.prefix}/checkout", form={"plan": "pro-monthly", "organization_id": org.id},
        headers={"X-User-Org": str(org.id), "Accept": "text/html"},
    )
    assert answer.status == 303
    assert answer.headers["Location"].startswith(f"{stripe.url}/checkout/cs_")


def test_seat_only_plan_sends_one_line_item_of_at_least_one_seat(
    web: Served, stripe: Any
) -> None:
    org = web.t.add_organization()

    assert web.checkout(org.id, plan="team-monthly").status == 200

    [post] = _session_posts(stripe)
    assert post.params["line_items"] == [{"price": SEAT_ONLY_PRICE, "quantity": "1"}]


def test_existing_customer_is_reused(web: Served, stripe: Any) -> None:
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 1)
    sub = subscribe(t, stripe, org.id)
    customer = stripe.subscription(sub)["customer"]
    stripe.cancel_subscription(sub)
    stripe.deliver_pending()
    assert local_row(t, org.id).status == "canceled"

    assert web.checkout(org.id).status == 200

    assert _session_posts(stripe)[0].params["customer"] == customer


def test_success_page_records_before_the_webhook(
    web: Served, stripe: Any, signals_seen: dict[str, list[Any]]
) -> None:
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    session = _session_of(stripe, web.checkout(org.id))
    stripe.complete_checkout(session["id"])

    local = t.billing.complete_checkout(session["id"])

    assert local is not None and (local.status, local.seats) == ("active", 2)
    assert len(signals_seen["checkout_completed"]) == 1
    writes_before = len(stripe.writes())
    deliveries = stripe.deliver_pending()
    assert all(d.ok for d in deliveries)
    assert len(signals_seen["checkout_completed"]) == 1  # the webhook found it done
    assert len(stripe.writes()) == writes_before
    assert len(table_rows(t, "subscriptions")) == 1


def test_success_page_of_an_unpaid_session_records_nothing(web: Served, stripe: Any) -> None:
    org = web.t.add_organization()
    session = _session_of(stripe, web.checkout(org.id))

    assert web.t.billing.complete_checkout(session["id"]) is None
    assert table_rows(web.t, "subscriptions") == []


def test_members_joining_during_checkout_are_synced_on_completion(
    web: Served, stripe: Any
) -> None:
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    session = _session_of(stripe, web.checkout(org.id))
    t.add_members(org.id, 3)  # no subscription yet: nothing to sync
    stripe.complete_checkout(session["id"])

    stripe.deliver_pending()

    local = local_row(t, org.id)
    assert stripe.item_quantity(local.provider_subscription_id, SEAT_PRICE) == 5
    assert local.seats == 5


def _trim_webhook_events(t: Any) -> None:
    """What an app may run to keep the events table small: delete every recorded event."""
    with t.db.engine.begin() as conn:
        conn.execute(t.db.metadata.tables["seat_billing_webhook_events"].delete())


def test_trimming_webhook_events_keeps_an_open_checkout_the_apps(web: Served, stripe: Any) -> None:
    """The owner tag is not a webhook event: deleting events while the customer pays (a nightly
    cleanup, say) leaves the new subscription linked, and its seats follow the members."""
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    session = _session_of(stripe, web.checkout(org.id))
    _trim_webhook_events(t)
    stripe.complete_checkout(session["id"])
    assert all(d.ok for d in stripe.deliver_pending())
    _trim_webhook_events(t)

    t.add_members(org.id, 1)
    assert all(d.ok for d in stripe.deliver_pending())

    local = local_row(t, org.id)
    assert stripe.item_quantity(local.provider_subscription_id, SEAT_PRICE) == 3
    assert local.seats == 3


def test_members_leaving_during_checkout_are_synced_by_the_success_page(
    web: Served, stripe: Any
) -> None:
    t = web.t
    org = t.add_organization()
    members = t.add_members(org.id, 4)
    session = _session_of(stripe, web.checkout(org.id))
    t.db.session.delete(members[0])
    t.db.session.commit()
    stripe.complete_checkout(session["id"])

    local = t.billing.complete_checkout(session["id"])

    assert local is not None
    assert stripe.item_quantity(local.provider_subscription_id, SEAT_PRICE) == 3
    assert local_row(t, org.id).seats == 3


def test_second_checkout_for_a_subscribed_organization_is_409(web: Served, stripe: Any) -> None:
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 1)
    subscribe(t, stripe, org.id)

    answer = web.checkout(org.id)

    assert answer.status == 409
    assert answer.json["code"] == "ALREADY_SUBSCRIBED"
    assert answer.json["portal"] == f"{web.prefix}/portal"
    assert _session_posts(stripe) == []


@pytest.mark.parametrize("status", ["trialing", "past_due"])
def test_trialing_or_past_due_also_blocks_a_second_checkout(
    web: Served, stripe: Any, status: str
) -> None:
    org = web.t.add_organization()
    subscribe(web.t, stripe, org.id, status=status)

    assert web.checkout(org.id).status == 409


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/phish",
        "//evil.example/phish",
        "/\\evil.example",
        "javascript:alert(1)",
        "http://127.0.0.1@evil.example/",
        "https:evil.example",
        "/ok\r\nLocation: https://evil.example",
    ],
)
@pytest.mark.parametrize("name", ["success_url", "cancel_url"])
def test_open_redirects_are_refused(web: Served, stripe: Any, name: str, target: str) -> None:
    org = web.t.add_organization()

    answer = web.checkout(org.id, **{name: target})

    assert answer.status == 400, answer.text
    assert _session_posts(stripe) == []


def test_relative_and_same_host_redirects_are_accepted(web: Served, stripe: Any) -> None:
    org = web.t.add_organization()

    answer = web.checkout(
        org.id, success_url="/welcome", cancel_url=f"{web.url}/pricing?x=1"
    )

    assert answer.status == 200, answer.text
    session = _session_of(stripe, answer)
    success = urllib.parse.urlsplit(session["success_url"])
    assert (success.netloc, success.path) == (f"127.0.0.1:{web.server.server_port}", "/welcome")
    assert "session_id={CHECKOUT_SESSION_ID}" in session["success_url"]
    assert session["cancel_url"] == f"{web.url}/pricing?x=1"


def test_caller_not_allowed_gets_403_and_nothing_is_created(web: Served, stripe: Any) -> None:
    org = web.t.add_organization()

    answer = web.post(
        f"{web.prefix}/checkout", json_body={"plan": "pro-monthly", "organization_id": org.id},
        headers={"X-User-Org": "someone-else"},
    )

    assert answer.status == 403
    assert _session_posts(stripe) == []


@pytest.fixture
def unconfigured(make_app: Any, stripe: Any) -> Iterator[Served]:
    t = make_app({"SEAT_BILLING_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET})
    for served in serve(t):
        with t.app.app_context():
            yield served


@pytest.mark.parametrize("route", ["checkout", "portal"])
def test_without_authorization_configured_routes_are_403_saying_how(
    unconfigured: Served, stripe: Any, route: str
) -> None:
    org = unconfigured.t.add_organization()

    answer = unconfigured.post(
        f"{unconfigured.prefix}/{route}",
        json_body={"plan": "pro-monthly", "organization_id": org.id},
    )

    assert answer.status == 403
    assert answer.json["code"] == "BILLING_AUTHORIZATION_NOT_CONFIGURED"
    assert "@seat_billing.authorize" in answer.json["error"]
    assert "before_checkout" in answer.json["error"]
    assert stripe.writes() == []


def test_before_checkout_policy_alone_can_allow_or_deny(
    unconfigured: Served, stripe: Any
) -> None:
    t = unconfigured.t
    org_ok, org_no = t.add_organization("ok"), t.add_organization("no")

    @t.billing.policy("before_checkout")
    def only_ok(ctx: Any) -> Any:
        if ctx.organization_id == org_ok.id and ctx.request.headers.get("X-User") == "alice":
            return allow()
        return deny("NOT_BILLING_ADMIN", "Only billing admins may subscribe.")

    ok = unconfigured.post(
        f"{unconfigured.prefix}/checkout", headers={"X-User": "alice"},
        json_body={"plan": "pro-monthly", "organization_id": org_ok.id},
    )
    no = unconfigured.post(
        f"{unconfigured.prefix}/checkout", headers={"X-User": "alice"},
        json_body={"plan": "pro-monthly", "organization_id": org_no.id},
    )

    assert ok.status == 200
    assert (no.status, no.json["code"]) == (403, "NOT_BILLING_ADMIN")
    assert len(_session_posts(stripe)) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_provider_unreachable_is_502_and_nothing_written(make_app: Any, stripe: Any) -> None:
    config = {"SEAT_BILLING_STRIPE_API_BASE": f"http://127.0.0.1:{_closed_port()}"}
    for served in serve_app(make_app, stripe, **config):
        org = served.t.add_organization()
        served.t.add_members(org.id, 2)

        answer = served.checkout(org.id)

        assert answer.status == 502
        assert "could not start a checkout" in answer.json["error"]
        for table in ("subscriptions", "outbox", "seat_changes", "webhook_events", "owner_tags"):
            assert table_rows(served.t, table) == []


def test_provider_error_is_502(web: Served, stripe: Any) -> None:
    org = web.t.add_organization()
    stripe.faults.fail_next(1, status=500, path_prefix="/v1/checkout/sessions")

    answer = web.checkout(org.id)

    assert answer.status == 502
    assert table_rows(web.t, "subscriptions") == []


def test_members_joining_during_a_delayed_payment_checkout_are_billed_once_it_is_paid(
    web: Served, stripe: Any
) -> None:
    """A delayed payment method (ACH, SEPA) completes the checkout while the subscription is
    ``incomplete``: the member who joined meanwhile is held, then billed on activation."""
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    session = _session_of(stripe, web.checkout(org.id))
    t.add_members(org.id, 1)  # joins while the customer is on the checkout page
    sub = str(stripe.complete_checkout(session["id"])["subscription"])
    stripe.set_status(sub, "incomplete")  # the payment is still processing
    assert all(d.ok for d in stripe.deliver_pending())
    assert t.billing.complete_checkout(session["id"]) is not None  # the success page

    assert stripe.item_quantity(sub, SEAT_PRICE) == 2
    [held] = table_rows(t, "outbox")
    assert (held["status"], held["target_seats"]) == ("held", 3)

    stripe.set_status(sub, "active")  # the payment settles days later
    assert all(d.ok for d in stripe.deliver_pending())

    assert stripe.item_quantity(sub, SEAT_PRICE) == 3
    assert local_row(t, org.id).seats == 3
    assert table_rows(t, "outbox") == []


def test_unknown_plan_is_400_naming_the_parameter(web: Served, stripe: Any) -> None:
    org = web.t.add_organization()

    answer = web.checkout(org.id, plan="gold")

    assert answer.status == 400
    assert answer.json["code"] == "UNKNOWN_PLAN"
    assert "plan parameter" in answer.json["error"]
    assert "gold" not in answer.json["error"]  # errors never echo the request's values
    assert _session_posts(stripe) == []
