"""The app under test served over real HTTP on 127.0.0.1, so the stand-in can POST webhooks to it.

Tests of the routes go through a socket rather than Flask's test client because webhooks are
delivered by the Stripe stand-in, a separate HTTP client, exactly as Stripe would deliver them.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from werkzeug.serving import BaseWSGIServer, make_server

from flask_seat_billing.subscriptions import LocalSubscription
from tests.apps import AppUnderTest

WEBHOOK_SECRET = "whsec_test_web_secret"


@dataclass
class Answer:
    """An HTTP answer: status, headers and body (``json`` parsed when it is JSON)."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass
class Served:
    """``t`` served by werkzeug's threaded server; ``url`` is its base URL."""

    t: AppUnderTest
    server: BaseWSGIServer
    thread: threading.Thread
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    provider: str = "stripe"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    @property
    def prefix(self) -> str:
        return str(self.t.app.config["SEAT_BILLING_URL_PREFIX"])

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{self.prefix}/webhooks/{self.provider}"

    def post(
        self,
        path: str,
        *,
        form: dict[str, Any] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """POST to the app; redirects are returned, not followed."""
        all_headers = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        url = path if path.startswith("http") else self.url + path
        request = urllib.request.Request(url, data=data or b"", headers=all_headers, method="POST")
        try:
            with _OPENER.open(request, timeout=10) as response:
                return Answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, dict(error.headers), error.read())

    def checkout(self, org_id: Any, plan: str = "pro-monthly", **extra: Any) -> Answer:
        headers = {"X-User-Org": str(org_id), "Accept": "application/json"}
        return self.post(
            f"{self.prefix}/checkout",
            json_body={"plan": plan, "organization_id": org_id, **extra},
            headers=headers,
        )


def serve(t: AppUnderTest, provider: str = "stripe") -> Iterator[Served]:
    """Serve ``t.app`` on an ephemeral loopback port until the generator is closed."""
    server = make_server("127.0.0.1", 0, t.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="app-under-test", daemon=True)
    thread.start()
    try:
        yield Served(t, server, thread, provider=provider)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def allow_own_organization(t: AppUnderTest) -> None:
    """An authorization like an app's: the caller may bill the organization it belongs to."""

    @t.billing.authorize
    def can_bill(request: Any, organization_id: Any, action: str) -> bool:
        return bool(request.headers.get("X-User-Org") == str(organization_id))


def table_rows(t: AppUnderTest, name: str) -> list[dict[str, Any]]:
    table = t.db.metadata.tables[f"seat_billing_{name}"]
    with t.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(table.c[0]))]


def local_state(t: AppUnderTest) -> list[tuple[Any, ...]]:
    """What a user sees of the local subscriptions, comparable across runs."""
    return sorted(
        (r["provider_subscription_id"], r["organization_key"], r["status"], r["seats"],
         r["plan_name"], r["cancel_at_period_end"])
        for r in table_rows(t, "subscriptions")
    )


def record_signals(*names: str) -> tuple[dict[str, list[dict[str, Any]]], list[Any]]:
    """Connect receivers to our signals; returns (received kwargs by name, receivers to keep)."""
    from flask_seat_billing import signals

    received: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    keep: list[Any] = []
    for name in names:
        def receiver(sender: Any, _name: str = name, **extra: Any) -> None:
            received[_name].append(extra)

        getattr(signals, name).connect(receiver)
        keep.append((getattr(signals, name), receiver))
    return received, keep


def signals_seen() -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Fixture body (``pytest.fixture(name="signals_seen")(signals_seen)`` in a module)."""
    received, keep = record_signals(
        "subscription_updated", "checkout_completed", "seats_changed_externally"
    )
    yield received
    for signal, receiver in keep:
        signal.disconnect(receiver)


def web(make_app: Any, stripe: Any) -> Iterator[Served]:
    """Fixture body: an app with authorization and a webhook secret, served, registered with
    the stand-in (``pytest.fixture(name="web")(web)`` in a test module)."""
    yield from serve_app(make_app, stripe)


def serve_app(make_app: Any, stripe: Any, **config: Any) -> Iterator[Served]:
    t = make_app({"SEAT_BILLING_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, **config})
    allow_own_organization(t)
    for served in serve(t):
        stripe.add_webhook_endpoint(served.webhook_url, WEBHOOK_SECRET)
        with t.app.app_context():
            yield served


def local_row(t: AppUnderTest, org_id: Any) -> LocalSubscription:
    """The organization's local subscription row, which the test expects to exist."""
    row = t.billing.subscription_for(org_id)
    assert row is not None, f"organization {org_id} has no local subscription"
    return row
