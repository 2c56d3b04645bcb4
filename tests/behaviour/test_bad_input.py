"""Hostile input to checkout, portal and the webhook route, on every provider: a clear 4xx,
nothing written, no provider call. Each case is counted per provider for docs/reliability.md
("Bad input"; tests/bad_input.py). Events whose odd content only one provider's format can carry
are in tests/providers/<name>/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests import web_helpers
from tests.bad_input import BROKEN_CHUNKS, DEEP_JSON, HUGE_STAMPS, Watch, raw_post, tally
from tests.behaviour.conftest import World
from tests.web_helpers import Served, serve

SUITES = ("stripe", "polar")


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    for suite in SUITES:
        tally(suite).write()


def _check(kind: str, web: Served, provider: World, watch: Watch, status: int, expected: int,
           *, ignore: tuple[str, ...] = ()) -> None:
    rows, calls = watch.rows_written(ignore=ignore), watch.provider_calls()
    tally(provider.name).record(kind, status, rows, calls)
    assert status == expected
    assert rows == 0
    assert calls == 0


# -- 1. unauthenticated requests that used to end in 500 ---------------------------------------

@pytest.mark.parametrize("stamp", HUGE_STAMPS)
def test_webhook_timestamp_that_is_not_a_plain_number_is_refused(
    web: Served, provider: World, stamp: str
) -> None:
    watch = Watch.start(web.t, provider.stand_in)
    answer = web.post(web.webhook_url, data=b'{"id": "evt_1", "type": "invoice.paid"}',
                      headers=provider.dialect.stamped_headers(stamp))
    _check("webhook timestamp", web, provider, watch, answer.status,
           provider.dialect.bad_signature)


# A signature that is not ASCII, with a fresh timestamp: Stripe's SDK's hmac.compare_digest raised
# TypeError on it (a 500 per request). As latin-1 text, the way a WSGI server hands it over.
NON_ASCII_SIGNATURES = ["\xe9" * 64, "\u00e9".encode().decode("latin-1") * 32, "0" * 63 + "\xff"]


@pytest.mark.parametrize("signature", NON_ASCII_SIGNATURES, ids=["latin-1", "utf-8", "last-byte"])
def test_webhook_signature_that_is_not_ascii_is_refused(
    web: Served, provider: World, signature: str
) -> None:
    watch = Watch.start(web.t, provider.stand_in)
    answer = web.post(web.webhook_url, data=b'{"id": "evt_1", "type": "invoice.paid"}',
                      headers=provider.dialect.signature_headers(signature, int(time.time())))
    _check("webhook signature not ASCII", web, provider, watch, answer.status,
           provider.dialect.bad_signature)
    assert answer.json["error"] == provider.dialect.malformed_signature_error


@pytest.mark.parametrize("shape", ["list", "object", 5, True, "p" * 5000])
def test_plan_of_the_wrong_type_is_400_before_authorization(
    web: Served, provider: World, shape: Any
) -> None:
    name = provider.plan.name
    plan = {"list": [name], "object": {"name": name}}.get(shape, shape)
    org = web.t.add_organization()
    watch = Watch.start(web.t, provider.stand_in)
    answer = web.post(f"{web.prefix}/checkout", json_body={"plan": plan, "organization_id": org.id})
    _check("plan of the wrong type", web, provider, watch, answer.status, 400)
    assert provider.plan.name not in answer.text


@pytest.mark.parametrize("route", ["checkout", "portal"])
def test_json_nested_fifty_thousand_deep_is_400(web: Served, provider: World, route: str) -> None:
    watch = Watch.start(web.t, provider.stand_in)
    answer = web.post(f"{web.prefix}/{route}", data=DEEP_JSON,
                      headers={"Content-Type": "application/json"})
    _check("JSON nested 50,000 deep", web, provider, watch, answer.status, 400)


@pytest.mark.parametrize("body", BROKEN_CHUNKS)
@pytest.mark.parametrize(
    ("route", "content_type"),
    [("checkout", "application/x-www-form-urlencoded"), ("checkout", "application/json"),
     ("portal", "application/x-www-form-urlencoded"), ("webhooks", "application/json")],
)
def test_malformed_chunked_body_is_400(
    web: Served, provider: World, route: str, content_type: str, body: bytes
) -> None:
    watch = Watch.start(web.t, provider.stand_in)
    path = f"{web.prefix}/{route}" + (f"/{provider.name}" if route == "webhooks" else "")
    status = raw_post(web.server.server_port, path,
                      {"Transfer-Encoding": "chunked", "Content-Type": content_type,
                       "Stripe-Signature": "t=1,v1=00"}, body)
    _check("malformed chunked body", web, provider, watch, status, 400)


# -- 3. redirects are checked against configured hosts, never the Host header -----------------

@pytest.mark.parametrize(
    ("route", "field"),
    [("checkout", "success_url"), ("checkout", "cancel_url"), ("portal", "return_url")],
)
@pytest.mark.parametrize("target", ["http://evil.example/phish", "/relative"])
def test_host_header_does_not_make_a_redirect_host_trusted(
    web: Served, provider: World, route: str, field: str, target: str
) -> None:
    org = web.t.add_organization()
    provider.subscribe(web.t, org.id, seats=1)
    watch = Watch.start(web.t, provider.stand_in)
    body = {"organization_id": org.id, field: target,
            **({"plan": provider.plan.name} if route == "checkout" else {})}
    answer = web.post(f"{web.prefix}/{route}", json_body=body,
                      headers={"Host": "evil.example", "X-User-Org": str(org.id)})
    _check("redirect off the allowed hosts", web, provider, watch, answer.status, 400)


@pytest.fixture
def no_hosts(provider: World) -> Iterator[Served]:
    yield from provider.serve({"SEAT_BILLING_ALLOWED_REDIRECT_HOSTS": None})


@pytest.mark.parametrize("target", ["/welcome", "http://127.0.0.1/welcome"])
def test_with_no_host_configured_redirects_are_refused_saying_what_to_set(
    no_hosts: Served, provider: World, target: str
) -> None:
    org = no_hosts.t.add_organization()
    watch = Watch.start(no_hosts.t, provider.stand_in)
    answer = provider.checkout(no_hosts, org.id, success_url=target)
    _check("redirect with no host configured", no_hosts, provider, watch, answer.status, 400)
    assert answer.json["code"] == "REDIRECT_HOSTS_NOT_CONFIGURED"
    assert "SEAT_BILLING_ALLOWED_REDIRECT_HOSTS" in answer.json["error"]


def test_server_name_makes_relative_redirects_absolute(provider: World) -> None:
    """On a request to a host not on the list, the base is SERVER_NAME with its scheme."""
    for served in provider.serve({"SEAT_BILLING_ALLOWED_REDIRECT_HOSTS": None,
                                  "SERVER_NAME": "billing.example",
                                  "PREFERRED_URL_SCHEME": "https"}):
        org = served.t.add_organization()
        answer = served.post(f"{served.prefix}/checkout", json_body={
            "plan": provider.plan.name, "organization_id": org.id, "success_url": "/welcome",
            "cancel_url": "https://billing.example/pricing"},
            headers={"Host": "127.0.0.1", "X-User-Org": str(org.id)})
        assert answer.status == 200, answer.text
        [post] = provider.checkout_posts()
        success = provider.dialect.success_url(post)
        assert success.startswith("https://billing.example/welcome")


# -- 6. email ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "email", [5, ["a@b.io"], {"a": "b"}, True, "x" * 300 + "@b.io", "not-an-address", "a@b",
              "a b@c.io", "a@b.io\r\nBcc: c@d.io"],
)
def test_email_that_is_not_an_address_is_400(web: Served, provider: World, email: Any) -> None:
    org = web.t.add_organization()
    watch = Watch.start(web.t, provider.stand_in)
    answer = provider.checkout(web, org.id, email=email)
    _check("email not an address", web, provider, watch, answer.status, 400)


def test_a_real_email_reaches_the_checkout(web: Served, provider: World) -> None:
    org = web.t.add_organization()
    assert provider.checkout(web, org.id, email="owner@acme.example").status == 200
    [post] = provider.checkout_posts()
    assert post.params["customer_email"] == "owner@acme.example"


# -- 7. error bodies ----------------------------------------------------------------------------

@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_errors_before_authorization_echo_nothing_and_are_not_sniffed(
    web: Served, provider: World, accept: str
) -> None:
    watch = Watch.start(web.t, provider.stand_in)
    answer = web.post(f"{web.prefix}/checkout", form={
        "plan": "gold", "organization_id": "<script>alert(1)</script>"},
        headers={"Accept": accept})
    _check("error body", web, provider, watch, answer.status, 400)
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in answer.text
    want_json = accept == "application/json"
    assert answer.headers["Content-Type"].startswith(
        "application/json" if want_json else "text/plain")


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_unknown_plan_is_not_echoed(web: Served, provider: World, accept: str) -> None:
    org = web.t.add_organization()
    watch = Watch.start(web.t, provider.stand_in)
    answer = web.post(f"{web.prefix}/checkout", form={
        "plan": "<script>alert(1)</script>", "organization_id": org.id},
        headers={"Accept": accept})
    _check("error body", web, provider, watch, answer.status, 400)
    assert "<script>" not in answer.text and "alert" not in answer.text
    assert "plan" in answer.text  # it still names the parameter at fault


def test_an_unexpected_error_is_a_500_not_labelled_a_bad_request(
    web: Served, provider: World
) -> None:
    """A bug or an outage inside a billing route is the server's fault, and says so."""
    def broken(request: Any, organization_id: Any, action: str) -> bool:
        raise RuntimeError("the app's own authorization failed")

    web.t.app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production (TESTING is off)
    web.t.billing.authorize(broken)
    org = web.t.add_organization()
    answer = web.post(f"{web.prefix}/checkout", json_body={
        "plan": provider.plan.name, "organization_id": org.id},
        headers={"Accept": "application/json"})
    assert answer.status == 500
    assert answer.json["code"] != "BAD_REQUEST"
    assert answer.json["code"] == "SERVER_ERROR"


def test_unknown_plan_does_not_list_the_plans(web: Served, provider: World) -> None:
    org = web.t.add_organization()
    watch = Watch.start(web.t, provider.stand_in)
    answer = web.post(f"{web.prefix}/checkout", json_body={"plan": "gold",
                                                           "organization_id": org.id})
    _check("error body", web, provider, watch, answer.status, 400)
    assert answer.json["code"] == "UNKNOWN_PLAN"
    assert provider.plan.name not in answer.text
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


# -- 8. CSRF with Flask-WTF ----------------------------------------------------------------------

def _csrf_app(provider: World, *, exempt_after: bool) -> Any:
    from flask_wtf.csrf import CSRFProtect

    t = provider.make_app(init=False)
    csrf = CSRFProtect()
    if not exempt_after:
        csrf.init_app(t.app)  # before the extension: it exempts its webhooks itself
    t.billing.init_app(t.app, db=t.db, member_model=t.Membership,
                       organization_key="organization_id", products=provider.products,
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
    provider: World, exempt_after: bool
) -> None:
    t = _csrf_app(provider, exempt_after=exempt_after)
    for served in serve(t, provider=provider.name):
        provider.stand_in.add_webhook_endpoint(served.webhook_url, provider.webhook_secret)
        with t.app.app_context():
            org = t.add_organization()
            t.add_members(org.id, 1)
            sub = provider.subscribe(t, org.id, seats=1)
            watch = Watch.start(t, provider.stand_in)
            for route, fields in (("checkout", {"plan": provider.plan.name}), ("portal", {})):
                answer = served.post(f"{served.prefix}/{route}",
                                     form={"organization_id": str(org.id), **fields},
                                     headers={"X-User-Org": str(org.id)})
                _check("form post without CSRF token", served, provider, watch, answer.status, 400)
            provider.stand_in.set_seats(sub, 3)
            provider.delivered()
            assert t.billing.subscription_for(org.id).seats == 3  # type: ignore[union-attr]
