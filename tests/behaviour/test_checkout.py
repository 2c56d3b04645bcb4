"""POST /billing/checkout over HTTP on every provider: who may, what the provider is asked for,
and how a paid checkout becomes the organization's subscription."""

from __future__ import annotations

import re
import socket
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from flask_seat_billing.policies import allow, deny
from tests import web_helpers
from tests.behaviour.conftest import World
from tests.web_helpers import Served, local_row, serve, table_rows

_signals = pytest.fixture(name="signals_seen")(web_helpers.signals_seen)


def test_checkout_to_webhook_to_local_row(
    web: Served, provider: World, signals_seen: dict[str, list[Any]]
) -> None:
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 3)

    answer = provider.checkout(web, org.id)

    assert answer.status == 200, answer.text
    [post] = provider.checkout_posts()
    dialect = provider.dialect
    assert dialect.checkout_lines(post, provider.plan) == dialect.expected_lines(provider.plan, 3)
    metadata = dialect.checkout_metadata(post)
    assert re.fullmatch(r"[0-9a-f]{32}", metadata.pop("seat_billing_owner"))  # ownership proof
    assert metadata == {"organization_id": str(org.id), "plan": provider.plan.name}
    # Stripe's client_reference_id names the organization; Polar's external_customer_id is never
    # sent: it would pick the customer of that id, never someone else's customer.
    assert dialect.checkout_reference(post) == (str(org.id) if dialect.names_organization else None)
    assert dialect.checkout_placeholder in dialect.success_url(post)
    assert table_rows(t, "subscriptions") == []

    provider.stand_in.complete_checkout(provider.checkout_id(answer))
    deliveries = provider.stand_in.deliver_pending(times=2, order="reversed")

    assert deliveries and {d.status_code for d in deliveries} == {dialect.webhook_ok}
    local = local_row(t, org.id)
    assert (local.status, local.seats, local.plan_name) == ("active", 3, provider.plan.name)
    assert provider.seats(local.provider_subscription_id) == 3
    assert len(table_rows(t, "subscriptions")) == 1
    [completed] = signals_seen["checkout_completed"]
    assert (completed["organization_id"], completed["plan"]) == (org.id, provider.plan.name)


def test_browser_form_gets_a_303_to_the_hosted_page(web: Served, provider: World) -> None:
    org = web.t.add_organization()
    answer = web.post(
        f"{web.prefix}/checkout", form={"plan": provider.plan.name, "organization_id": org.id},
        headers={"X-User-Org": str(org.id), "Accept": "text/html"},
    )
    assert answer.status == 303
    page = provider.stand_in.url + provider.dialect.checkout_page
    assert answer.headers["Location"].startswith(page)


def test_organization_without_members_is_asked_for_one_seat(
    web: Served, provider: World
) -> None:
    org = web.t.add_organization()
    plan = provider.plan_named("team-monthly")

    assert provider.checkout(web, org.id, plan=plan.name).status == 200

    [post] = provider.checkout_posts()
    dialect = provider.dialect
    assert dialect.checkout_lines(post, plan) == dialect.expected_lines(plan, 1)


def test_existing_customer_is_reused(web: Served, provider: World) -> None:
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 1)
    sub = provider.subscribe(t, org.id)
    customer = provider.stand_in.customer_of(sub)
    provider.stand_in.cancel_subscription(sub)
    provider.delivered()
    assert local_row(t, org.id).status == "canceled"

    assert provider.checkout(web, org.id).status == 200

    assert provider.dialect.checkout_customer(provider.checkout_posts()[0]) == customer


def test_success_page_records_before_the_webhook(
    web: Served, provider: World, signals_seen: dict[str, list[Any]]
) -> None:
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    checkout_id = provider.checkout_id(provider.checkout(web, org.id))
    provider.stand_in.complete_checkout(checkout_id)

    local = t.billing.complete_checkout(checkout_id)

    assert local is not None and (local.status, local.seats) == ("active", 2)
    assert len(signals_seen["checkout_completed"]) == 1
    writes_before = len(provider.stand_in.writes())
    provider.delivered()
    assert len(signals_seen["checkout_completed"]) == 1  # the webhook found it done
    assert len(provider.stand_in.writes()) == writes_before
    assert len(table_rows(t, "subscriptions")) == 1


def test_success_page_of_an_unpaid_checkout_records_nothing(
    web: Served, provider: World
) -> None:
    org = web.t.add_organization()
    checkout_id = provider.checkout_id(provider.checkout(web, org.id))

    assert web.t.billing.complete_checkout(checkout_id) is None
    assert table_rows(web.t, "subscriptions") == []


def test_members_joining_during_checkout_are_synced_on_completion(
    web: Served, provider: World
) -> None:
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    checkout_id = provider.checkout_id(provider.checkout(web, org.id))
    t.add_members(org.id, 3)  # no subscription yet: nothing to sync
    provider.stand_in.complete_checkout(checkout_id)

    provider.stand_in.deliver_pending()

    local = local_row(t, org.id)
    assert provider.seats(local.provider_subscription_id) == 5
    assert local.seats == 5


def _trim_webhook_events(t: Any) -> None:
    """What an app may run to keep the events table small: delete every recorded event."""
    with t.db.engine.begin() as conn:
        conn.execute(t.db.metadata.tables["seat_billing_webhook_events"].delete())


def test_trimming_webhook_events_keeps_an_open_checkout_the_apps(
    web: Served, provider: World
) -> None:
    """The owner tag is not a webhook event: deleting events while the customer pays (a nightly
    cleanup, say) leaves the new subscription linked, and its seats follow the members."""
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    answer = provider.checkout(web, org.id)
    assert answer.status == 200, answer.text
    _trim_webhook_events(t)
    provider.stand_in.complete_checkout(provider.checkout_id(answer))
    ok = provider.dialect.webhook_ok
    assert {d.status_code for d in provider.stand_in.deliver_pending()} == {ok}
    _trim_webhook_events(t)

    t.add_members(org.id, 1)
    assert {d.status_code for d in provider.stand_in.deliver_pending()} <= {ok}

    local = local_row(t, org.id)
    assert provider.seats(local.provider_subscription_id) == 3
    assert local.seats == 3


def test_members_leaving_during_checkout_are_synced_by_the_success_page(
    web: Served, provider: World
) -> None:
    t = web.t
    org = t.add_organization()
    members = t.add_members(org.id, 4)
    checkout_id = provider.checkout_id(provider.checkout(web, org.id))
    t.db.session.delete(members[0])
    t.db.session.commit()
    provider.stand_in.complete_checkout(checkout_id)

    local = t.billing.complete_checkout(checkout_id)

    assert local is not None
    assert provider.seats(local.provider_subscription_id) == 3
    assert local_row(t, org.id).seats == 3


def test_second_checkout_for_a_subscribed_organization_is_409(
    web: Served, provider: World
) -> None:
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 1)
    provider.subscribe(t, org.id)

    answer = provider.checkout(web, org.id)

    assert answer.status == 409
    assert answer.json["code"] == "ALREADY_SUBSCRIBED"
    assert answer.json["portal"] == f"{web.prefix}/portal"
    assert provider.checkout_posts() == []


@pytest.mark.parametrize("status", ["trialing", "past_due"])
def test_trialing_or_past_due_also_blocks_a_second_checkout(
    web: Served, provider: World, status: str
) -> None:
    org = web.t.add_organization()
    provider.subscribe(web.t, org.id, seats=1, status=status)

    assert provider.checkout(web, org.id).status == 409


def test_unknown_plan_is_400_naming_the_parameter(web: Served, provider: World) -> None:
    org = web.t.add_organization()

    answer = provider.checkout(web, org.id, plan="gold")

    assert answer.status == 400
    assert answer.json["code"] == "UNKNOWN_PLAN"
    assert "plan parameter" in answer.json["error"]
    assert "gold" not in answer.json["error"]  # errors never echo the request's values
    assert provider.checkout_posts() == []


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
def test_open_redirects_are_refused(
    web: Served, provider: World, name: str, target: str
) -> None:
    org = web.t.add_organization()

    answer = provider.checkout(web, org.id, **{name: target})

    assert answer.status == 400, answer.text
    assert provider.checkout_posts() == []


def test_relative_and_same_host_redirects_are_accepted(web: Served, provider: World) -> None:
    org = web.t.add_organization()

    answer = provider.checkout(
        web, org.id, success_url="/welcome", cancel_url=f"{web.url}/pricing?x=1"
    )

    assert answer.status == 200, answer.text
    [post] = provider.checkout_posts()
    success_url = provider.dialect.success_url(post)
    success = urllib.parse.urlsplit(success_url)
    assert (success.netloc, success.path) == (f"127.0.0.1:{web.server.server_port}", "/welcome")
    assert provider.dialect.checkout_placeholder in success_url
    assert provider.dialect.cancel_url(post) == f"{web.url}/pricing?x=1"


def test_caller_not_allowed_gets_403_and_nothing_is_created(
    web: Served, provider: World
) -> None:
    org = web.t.add_organization()

    answer = web.post(
        f"{web.prefix}/checkout",
        json_body={"plan": provider.plan.name, "organization_id": org.id},
        headers={"X-User-Org": "someone-else"},
    )

    assert answer.status == 403
    assert provider.checkout_posts() == []


@pytest.fixture
def unconfigured(provider: World) -> Iterator[Served]:
    t = provider.make_app()
    for served in serve(t, provider=provider.name):
        with t.app.app_context():
            yield served


@pytest.mark.parametrize("route", ["checkout", "portal"])
def test_without_authorization_configured_routes_are_403_saying_how(
    unconfigured: Served, provider: World, route: str
) -> None:
    org = unconfigured.t.add_organization()

    answer = unconfigured.post(
        f"{unconfigured.prefix}/{route}",
        json_body={"plan": provider.plan.name, "organization_id": org.id},
    )

    assert answer.status == 403
    assert answer.json["code"] == "BILLING_AUTHORIZATION_NOT_CONFIGURED"
    assert "@seat_billing.authorize" in answer.json["error"]
    assert "before_checkout" in answer.json["error"]
    assert provider.stand_in.writes() == []


def test_before_checkout_policy_alone_can_allow_or_deny(
    unconfigured: Served, provider: World
) -> None:
    t = unconfigured.t
    org_ok, org_no = t.add_organization("ok"), t.add_organization("no")

    @t.billing.policy("before_checkout")
    def only_ok(ctx: Any) -> Any:
        if ctx.organization_id == org_ok.id and ctx.request.headers.get("X-User") == "alice":
            return allow()
        return deny("NOT_BILLING_ADMIN", "Only billing admins may subscribe.")

    ok, no = (
        unconfigured.post(
            f"{unconfigured.prefix}/checkout", headers={"X-User": "alice"},
            json_body={"plan": provider.plan.name, "organization_id": org},
        )
        for org in (org_ok.id, org_no.id)
    )

    assert ok.status == 200
    assert (no.status, no.json["code"]) == (403, "NOT_BILLING_ADMIN")
    assert len(provider.checkout_posts()) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_provider_unreachable_is_502_and_nothing_written(provider: World) -> None:
    [url_key] = [k for k, v in provider.stand_in.app_config().items()
                 if v == provider.stand_in.url]
    for served in provider.serve({url_key: f"http://127.0.0.1:{_closed_port()}"}):
        org = served.t.add_organization()
        served.t.add_members(org.id, 2)

        answer = provider.checkout(served, org.id)

        assert answer.status == 502
        assert "could not start a checkout" in answer.json["error"]
        for table in ("subscriptions", "outbox", "seat_changes", "webhook_events", "owner_tags"):
            assert table_rows(served.t, table) == []


def test_provider_error_is_502(web: Served, provider: World) -> None:
    org = web.t.add_organization()
    provider.stand_in.faults.fail_next(1, status=500, path_prefix=provider.dialect.checkout_path)

    answer = provider.checkout(web, org.id)

    assert answer.status == 502
    assert table_rows(web.t, "subscriptions") == []


def test_members_joining_during_a_delayed_payment_checkout_are_billed_once_it_is_paid(
    web: Served, provider: World
) -> None:
    """A delayed payment method (ACH, SEPA) completes the checkout while the subscription is
    ``incomplete``: the member who joined meanwhile is held, then billed on activation with one
    write."""
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    answer = provider.checkout(web, org.id)
    assert answer.status == 200, answer.text
    checkout_id = provider.checkout_id(answer)
    t.add_members(org.id, 1)  # joins while the customer is on the checkout page
    provider.stand_in.complete_checkout(checkout_id)
    sub = provider.stand_in.checkout_subscription_id(checkout_id)
    assert sub is not None
    provider.stand_in.set_status(sub, "incomplete")  # the payment is still processing
    provider.delivered()
    assert t.billing.complete_checkout(checkout_id) is not None  # the success page

    assert provider.seats(sub) == 2
    [held] = table_rows(t, "outbox")
    assert (held["status"], held["target_seats"]) == ("held", 3)

    writes = len(provider.writes_to(sub))
    provider.stand_in.set_status(sub, "active")  # the payment settles days later
    provider.delivered()

    assert provider.seats(sub) == 3
    assert len(provider.writes_to(sub)) == writes + 1
    assert local_row(t, org.id).seats == 3
    assert table_rows(t, "outbox") == []
