"""Hostile input to checkout, portal and the Stripe webhook: a clear 4xx, nothing written, no
provider call. Each case is counted for docs/reliability.md ("Bad input"); see tests/bad_input.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests import web_helpers
from tests.apps import SEAT_PRICE, products
from tests.bad_input import (
    BROKEN_CHUNKS,
    DEEP_JSON,
    HUGE_STAMPS,
    Tally,
    Watch,
    raw_post,
)
from tests.conftest import subscribe
from tests.web_helpers import WEBHOOK_SECRET, Served, serve, serve_app

_web = pytest.fixture(name="web")(web_helpers.web)
TALLY = Tally("stripe")


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    TALLY.write()


def _check(kind: str, web: Served, stripe: Any, watch: Watch, status: int, expected: int,
           *, ignore: tuple[str, ...] = ()) -> None:
    rows, calls = watch.rows_written(ignore=ignore), watch.provider_calls()
    TALLY.record(kind, status, rows, calls)
    assert status == expected
    assert rows == 0
    assert calls == 0


# -- 1. unauthenticated requests that used to end in 500 ---------------------------------------

@pytest.mark.parametrize("stamp", HUGE_STAMPS)
def test_webhook_timestamp_that_is_not_a_plain_number_is_400(
    web: Served, stripe: Any, stamp: str
) -> None:
    watch = Watch.start(web.t, stripe)
    answer = web.post(web.webhook_url, data=b'{"id": "evt_1", "type": "invoice.paid"}',
                      headers={"Stripe-Signature": f"t={stamp},v1=00",
                               "Content-Type": "application/json"})
    _check("webhook timestamp", web, stripe, watch, answer.status, 400)


# A signature that is not ASCII, with a fresh timestamp: the SDK's hmac.compare_digest raised
# TypeError on it (a 500 per request). As latin-1 text, the way a WSGI server hands it over.
NON_ASCII_SIGNATURES = ["\xe9" * 64, "\u00e9".encode().decode("latin-1") * 32, "0" * 63 + "\xff"]


@pytest.mark.parametrize("signature", NON_ASCII_SIGNATURES, ids=["latin-1", "utf-8", "last-byte"])
def test_webhook_signature_that_is_not_ascii_is_400(
    web: Served, stripe: Any, signature: str
) -> None:
    watch = Watch.start(web.t, stripe)
    answer = web.post(web.webhook_url, data=b'{"id": "evt_1", "type": "invoice.paid"}',
                      headers={"Stripe-Signature": f"t={int(time.time())},v1={signature}",
                               "Content-Type": "application/json"})
    _check("webhook signature not ASCII", web, stripe, watch, answer.status, 400)
    assert answer.json["error"] == "Malformed Stripe-Signature header."


@pytest.mark.parametrize("plan", [["pro-monthly"], {"name": "pro-monthly"}, 5, True, "p" * 5000])
def test_plan_of_the_wrong_type_is_400_before_authorization(
    web: Served, stripe: Any, plan: Any
) -> None:
    org = web.t.add_organization()
    watch = Watch.start(web.t, stripe)
    answer = web.post(f"{web.prefix}/checkout", json_body={"plan": plan, "organization_id": org.id})
    _check("plan of the wrong type", web, stripe, watch, answer.status, 400)
    assert "pro-monthly" not in answer.text


@pytest.mark.parametrize("route", ["checkout", "portal"])
def test_json_nested_fifty_thousand_deep_is_400(web: Served, stripe: Any, route: str) -> None:
    watch = Watch.start(web.t, stripe)
    answer = web.post(f"{web.prefix}/{route}", data=DEEP_JSON,
                      headers={"Content-Type": "application/json"})
    _check("JSON nested 50,000 deep", web, stripe, watch, answer.status, 400)


@pytest.mark.parametrize("body", BROKEN_CHUNKS)
@pytest.mark.parametrize(
    ("route", "content_type"),
    [("checkout", "application/x-www-form-urlencoded"), ("checkout", "application/json"),
     ("portal", "application/x-www-form-urlencoded"), ("webhooks/stripe", "application/json")],
)
def test_malformed_chunked_body_is_400(
    web: Served, stripe: Any, route: str, content_type: str, body: bytes
) -> None:
    watch = Watch.start(web.t, stripe)
    status = raw_post(web.server.server_port, f"{web.prefix}/{route}",
                      {"Transfer-Encoding": "chunked", "Content-Type": content_type,
                       "Stripe-Signature": "t=1,v1=00"}, body)
    _check("malformed chunked body", web, stripe, watch, status, 400)


# -- 2. validly signed, oddly shaped events: acknowledged, never a retry loop -------------------

def _signed(web: Served, stripe: Any, event: dict[str, Any]) -> Any:
    payload = json.dumps(event).encode()
    header = stripe.signature_header(payload, WEBHOOK_SECRET, int(time.time()))
    return web.post(web.webhook_url, data=payload,
                    headers={"Stripe-Signature": header, "Content-Type": "application/json"})


ODD_EVENTS: list[tuple[str, Any]] = [
    ("customer.subscription.updated", {"object": ["sub_1"]}),
    ("customer.subscription.updated", {"object": "sub_1"}),
    ("customer.subscription.updated", {"object": {"id": 123}}),
    ("customer.subscription.updated", {"object": {}}),
    ("customer.subscription.updated", {"object": {"id": "../customers/cus_1"}}),
    ("customer.subscription.updated", ["not", "an", "object"]),
    ("customer.subscription.deleted", None),
    ("invoice.paid", {"object": {"parent": ["x"]}}),
    ("invoice.paid", {"object": {"subscription": 42}}),
    ("invoice.payment_failed", {"object": {"subscription": {"id": ["sub_1"]}}}),
    ("checkout.session.completed", {"object": {"id": 5, "mode": "subscription"}}),
    ("checkout.session.completed", {"object": {"mode": ["subscription"]}}),
    # Ids of the wrong kind: no retry of the same payload can ever make them right.
    ("customer.subscription.updated", {"object": {"id": "cus_123"}}),
    ("invoice.paid", {"object": {"subscription": "in_123"}}),
    ("checkout.session.completed", {"object": {"id": "sub_123", "mode": "subscription"}}),
]


@pytest.mark.parametrize(("event_type", "data"), ODD_EVENTS)
def test_signed_event_with_odd_content_is_acknowledged_once(
    web: Served, stripe: Any, event_type: str, data: Any
) -> None:
    watch = Watch.start(web.t, stripe)
    event = {"id": "evt_odd", "type": event_type, "data": data}

    first, again = _signed(web, stripe, event), _signed(web, stripe, event)

    # "processed" where the handler itself records an event with nothing to apply.
    assert first.json["outcome"] in ("ignored", "processed")
    assert again.json["outcome"] == "duplicate"
    assert again.status == 200
    _check("signed event, odd content", web, stripe, watch, first.status, 200,
           ignore=("webhook_events",))


@pytest.mark.parametrize("event_id", [123, "", "e" * 300, ["evt_1"]])
def test_signed_event_without_a_usable_id_is_400(web: Served, stripe: Any, event_id: Any) -> None:
    watch = Watch.start(web.t, stripe)
    answer = _signed(web, stripe, {"id": event_id, "type": "invoice.paid", "data": {}})
    _check("signed event, unusable id or type", web, stripe, watch, answer.status, 400)


# -- 3. redirects are checked against configured hosts, never the Host header -----------------

@pytest.mark.parametrize(
    ("route", "field"),
    [("checkout", "success_url"), ("checkout", "cancel_url"), ("portal", "return_url")],
)
@pytest.mark.parametrize("target", ["http://evil.example/phish", "/relative"])
def test_host_header_does_not_make_a_redirect_host_trusted(
    web: Served, stripe: Any, route: str, field: str, target: str
) -> None:
    org = web.t.add_organization()
    subscribe(web.t, stripe, org.id, seats=1)
    watch = Watch.start(web.t, stripe)
    body = {"organization_id": org.id, field: target,
            **({"plan": "pro-monthly"} if route == "checkout" else {})}
    answer = web.post(f"{web.prefix}/{route}", json_body=body,
                      headers={"Host": "evil.example", "X-User-Org": str(org.id)})
    _check("redirect off the allowed hosts", web, stripe, watch, answer.status, 400)


@pytest.fixture
def no_hosts(make_app: Any, stripe: Any) -> Iterator[Served]:
    yield from serve_app(make_app, stripe, SEAT_BILLING_ALLOWED_REDIRECT_HOSTS=None)


@pytest.mark.parametrize("target", ["/welcome", "http://127.0.0.1/welcome"])
def test_with_no_host_configured_redirects_are_refused_saying_what_to_set(
    no_hosts: Served, stripe: Any, target: str
) -> None:
    org = no_hosts.t.add_organization()
    watch = Watch.start(no_hosts.t, stripe)
    answer = no_hosts.checkout(org.id, success_url=target)
    _check("redirect with no host configured", no_hosts, stripe, watch, answer.status, 400)
    assert answer.json["code"] == "REDIRECT_HOSTS_NOT_CONFIGURED"
    assert "SEAT_BILLING_ALLOWED_REDIRECT_HOSTS" in answer.json["error"]


def test_server_name_makes_relative_redirects_absolute(make_app: Any, stripe: Any) -> None:
    """On a request to a host not on the list, the base is SERVER_NAME with its scheme."""
    for served in serve_app(make_app, stripe, SEAT_BILLING_ALLOWED_REDIRECT_HOSTS=None,
                            SERVER_NAME="billing.example", PREFERRED_URL_SCHEME="https"):
        org = served.t.add_organization()
        answer = served.post(f"{served.prefix}/checkout", json_body={
            "plan": "pro-monthly", "organization_id": org.id, "success_url": "/welcome",
            "cancel_url": "https://billing.example/pricing"},
            headers={"Host": "127.0.0.1", "X-User-Org": str(org.id)})
        assert answer.status == 200, answer.text
        [session] = [r for r in stripe.requests.all() if r.path == "/v1/checkout/sessions"]
        assert str(session.params["success_url"]).startswith("https://billing.example/welcome")


# -- 6. email ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "email", [5, ["a@b.io"], {"a": "b"}, True, "x" * 300 + "@b.io", "not-an-address", "a@b",
              "a b@c.io", "a@b.io\r\nBcc: c@d.io"],
)
def test_email_that_is_not_an_address_is_400(web: Served, stripe: Any, email: Any) -> None:
    org = web.t.add_organization()
    watch = Watch.start(web.t, stripe)
    answer = web.checkout(org.id, email=email)
    _check("email not an address", web, stripe, watch, answer.status, 400)


def test_a_real_email_reaches_the_checkout(web: Served, stripe: Any) -> None:
    org = web.t.add_organization()
    assert web.checkout(org.id, email="owner@acme.example").status == 200
    [session] = [r for r in stripe.requests.all() if r.path == "/v1/checkout/sessions"]
    assert session.params["customer_email"] == "owner@acme.example"


# -- 7. error bodies ----------------------------------------------------------------------------

@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_errors_before_authorization_echo_nothing_and_are_not_sniffed(
    web: Served, stripe: Any, accept: str
) -> None:
    watch = Watch.start(web.t, stripe)
    answer = web.post(f"{web.prefix}/checkout", form={
        "plan": "gold", "organization_id": "<script>alert(1)</script>"},
        headers={"Accept": accept})
    _check("error body", web, stripe, watch, answer.status, 400)
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in answer.text
    want_json = accept == "application/json"
    assert answer.headers["Content-Type"].startswith(
        "application/json" if want_json else "text/plain")


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_unknown_plan_is_not_echoed(web: Served, stripe: Any, accept: str) -> None:
    org = web.t.add_organization()
    watch = Watch.start(web.t, stripe)
    answer = web.post(f"{web.prefix}/checkout", form={
        "plan": "<script>alert(1)</script>", "organization_id": org.id},
        headers={"Accept": accept})
    _check("error body", web, stripe, watch, answer.status, 400)
    assert "<script>" not in answer.text and "alert" not in answer.text
    assert "plan" in answer.text  # it still names the parameter at fault


def test_an_unexpected_error_is_a_500_not_labelled_a_bad_request(
    web: Served, stripe: Any
) -> None:
    """A bug or an outage inside a billing route is the server's fault, and says so."""
    def broken(request: Any, organization_id: Any, action: str) -> bool:
        raise RuntimeError("the app's own authorization failed")

    web.t.app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production (TESTING is off)
    web.t.billing.authorize(broken)
    org = web.t.add_organization()
    answer = web.post(f"{web.prefix}/checkout", json_body={
        "plan": "pro-monthly", "organization_id": org.id}, headers={"Accept": "application/json"})
    assert answer.status == 500
    assert answer.json["code"] != "BAD_REQUEST"
    assert answer.json["code"] == "SERVER_ERROR"


def test_unknown_plan_does_not_list_the_plans(web: Served, stripe: Any) -> None:
    org = web.t.add_organization()
    watch = Watch.start(web.t, stripe)
    answer = web.post(f"{web.prefix}/checkout", json_body={"plan": "gold",
                                                           "organization_id": org.id})
    _check("error body", web, stripe, watch, answer.status, 400)
    assert answer.json["code"] == "UNKNOWN_PLAN"
    assert "pro-monthly" not in answer.text
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


# -- 8. CSRF with Flask-WTF ----------------------------------------------------------------------

def _csrf_app(make_app: Any, *, exempt_after: bool) -> Any:
    from flask_wtf.csrf import CSRFProtect

    t = make_app({"SEAT_BILLING_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}, init=False)
    csrf = CSRFProtect()
    if not exempt_after:
        csrf.init_app(t.app)  # before the extension: it exempts its webhooks itself
    t.billing.init_app(t.app, db=t.db, member_model=t.Membership,
                       organization_key="organization_id", products=products(),
                       billable_filter=lambda M: M.deleted_at.is_(None))
    if exempt_after:  # the README's line for apps that set up CSRF afterwards
        csrf.init_app(t.app)
        csrf.exempt(t.app.blueprints["seat_billing_webhooks"])
    with t.app.app_context():
        t.db.create_all()
    web_helpers.allow_own_organization(t)
    return t


@pytest.mark.parametrize("exempt_after", [False, True])
def test_csrf_protects_checkout_and_portal_but_not_webhooks(
    make_app: Any, stripe: Any, exempt_after: bool
) -> None:
    t = _csrf_app(make_app, exempt_after=exempt_after)
    for served in serve(t):
        stripe.add_webhook_endpoint(served.webhook_url, WEBHOOK_SECRET)
        with t.app.app_context():
            org = t.add_organization()
            t.add_members(org.id, 1)
            sub = subscribe(t, stripe, org.id, seats=1)
            watch = Watch.start(t, stripe)
            for route, fields in (("checkout", {"plan": "pro-monthly"}), ("portal", {})):
                answer = served.post(f"{served.prefix}/{route}",
                                     form={"organization_id": str(org.id), **fields},
                                     headers={"X-User-Org": str(org.id)})
                _check("form post without CSRF token", served, stripe, watch, answer.status, 400)
            stripe.set_item_quantity(sub, SEAT_PRICE, 3)
            assert all(d.ok for d in stripe.deliver_pending())
            assert t.billing.subscription_for(org.id).seats == 3  # type: ignore[union-attr]
