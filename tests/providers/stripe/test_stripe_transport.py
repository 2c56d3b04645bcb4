"""How the extension reaches Stripe: a proxy named by the environment when the app starts is
used (read once, not on every request), and an unreachable API is reported, not hung on."""

from __future__ import annotations

from typing import Any

import pytest

from flask_seat_billing.errors import ProviderUnavailable
from tests.apps import PRO_MONTHLY
from tests.conftest import AppFactory, subscribe

UNRESOLVABLE = "http://api.stripe.invalid"  # .invalid never resolves (RFC 2606)
CONFIG = {"SEAT_BILLING_STRIPE_API_BASE": UNRESOLVABLE,
          "SEAT_BILLING_STRIPE_SECRET_KEY": "sk_test_through_a_proxy"}


def _without_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_a_proxy_in_the_environment_carries_every_request(
    make_app: AppFactory, stripe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API's own address cannot be resolved: only the proxy (the stand-in) can answer.
    _without_proxies(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", stripe.url)
    t = make_app(CONFIG)
    monkeypatch.delenv("HTTP_PROXY")  # read when the app was built, not per request
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 2)
        sub = subscribe(t, stripe, org.id)
        t.add_members(org.id, 1)  # inline sync: one write through the proxy

        assert stripe.seats(sub, PRO_MONTHLY) == 3


def test_without_a_proxy_an_unreachable_api_is_reported_as_unavailable(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_proxies(monkeypatch)
    t = make_app({**CONFIG, "SEAT_BILLING_STRIPE_MAX_NETWORK_RETRIES": 0})
    with t.app.app_context():
        with pytest.raises(ProviderUnavailable, match="Stripe unreachable"):
            t.billing.link_subscription(t.add_organization().id, "sub_123")


@pytest.mark.parametrize("form", ["with_credentials", "without_scheme"])
def test_proxy_values_requests_accepted_still_work(
    make_app: AppFactory, stripe: Any, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """``user:password@`` in the proxy's address is sent as ``Proxy-Authorization`` (never
    in a log), and an address without a scheme is taken as ``http://``, as ``requests`` did."""
    _without_proxies(monkeypatch)
    host = stripe.url.split("://", 1)[1]
    proxy = f"http://fsb%40user:s3cret@{host}" if form == "with_credentials" else host
    monkeypatch.setenv("HTTP_PROXY", proxy)
    t = make_app(CONFIG)
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 2)
        sub = subscribe(t, stripe, org.id)
        stripe.requests.clear()
        t.add_members(org.id, 1)

        assert stripe.seats(sub, PRO_MONTHLY) == 3
    [write] = [r for r in stripe.requests.all() if r.method == "POST"]
    headers = {k.lower(): v for k, v in write.headers.items()}
    if form == "with_credentials":
        assert headers["proxy-authorization"] == "Basic ZnNiQHVzZXI6czNjcmV0"  # fsb@user:s3cret
    else:
        assert "proxy-authorization" not in headers


def test_a_socks_proxy_is_left_to_the_sdks_own_client(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stripe as stripe_sdk

    from flask_seat_billing.providers.stripe.transport import http_client

    _without_proxies(monkeypatch)
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:9")
    assert isinstance(http_client(UNRESOLVABLE, 5.0), stripe_sdk.RequestsClient)
    make_app(CONFIG)  # the app still starts
