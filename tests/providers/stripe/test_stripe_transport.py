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
