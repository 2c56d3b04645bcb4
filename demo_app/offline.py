"""Offline mode: the project's Stripe stand-in, in-process, in place of Stripe.

With no ``SEAT_BILLING_STRIPE_SECRET_KEY`` the demo reserves a local address for the stand-in at
app creation (the extension reads ``SEAT_BILLING_STRIPE_API_BASE`` once, in ``init_app``), and
starts it on the first request, when the demo's own URL is known for the webhook endpoint (the
address the server listens on, or ``DEMO_PUBLIC_URL``; never the request's ``Host`` header).
``flask db ...`` and ``flask seed-demo`` never start it. The stand-in keeps its state in memory:
a restarted demo starts with an empty Stripe account (``seed-demo`` forgets the old
subscriptions accordingly).
"""

from __future__ import annotations

import secrets
import socket
import threading
from typing import Any

from flask import Flask, current_app, request

from .billing import (
    BASE_AMOUNT,
    EDITOR_AMOUNT,
    OFFLINE_BASE_PRICE,
    OFFLINE_EDITOR_PRICE,
    OFFLINE_SEAT_PRICE,
    OFFLINE_STUDIO_PRICE,
    OFFLINE_VIEWER_PRICE,
    SEAT_AMOUNT,
    STUDIO_AMOUNT,
    VIEWER_AMOUNT,
)

EXTENSION_KEY = "demo_offline_stripe"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class OfflineStripe:
    """The stand-in of one app: its address is fixed now, the server starts on first use."""

    def __init__(self, webhook_secret: str, webhook_path: str, deliver_webhooks: bool) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.webhook_secret = webhook_secret
        self.webhook_path = webhook_path
        self.deliver_webhooks = deliver_webhooks
        self.stand_in: Any = None
        self._lock = threading.Lock()

    def ensure_started(self, app_url: str) -> Any:
        """Start the stand-in with the demo's prices and a webhook endpoint at ``app_url``."""
        with self._lock:
            if self.stand_in is not None:
                return self.stand_in
            from flask_seat_billing.testing import StripeStandIn

            stand_in = StripeStandIn(port=self.port).start()
            base = stand_in.create_product(name="Team", id="prod_demo_team")["id"]
            seat = stand_in.create_product(name="Team seat", id="prod_demo_seat")["id"]
            stand_in.create_price(id=OFFLINE_BASE_PRICE, product=base, unit_amount=BASE_AMOUNT)
            stand_in.create_price(id=OFFLINE_SEAT_PRICE, product=seat, unit_amount=SEAT_AMOUNT)
            studio = stand_in.create_product(name="Studio", id="prod_demo_studio")["id"]
            for price, amount in ((OFFLINE_STUDIO_PRICE, STUDIO_AMOUNT),
                                  (OFFLINE_EDITOR_PRICE, EDITOR_AMOUNT),
                                  (OFFLINE_VIEWER_PRICE, VIEWER_AMOUNT)):
                stand_in.create_price(id=price, product=studio, unit_amount=amount)
            if self.deliver_webhooks:
                stand_in.add_webhook_endpoint(
                    app_url.rstrip("/") + self.webhook_path, self.webhook_secret
                )
                stand_in.auto_deliver = True
            self.stand_in = stand_in
            return stand_in

    def stop(self) -> None:
        with self._lock:
            if self.stand_in is not None:
                self.stand_in.stop()
                self.stand_in = None


def configure(app: Flask) -> OfflineStripe | None:
    """Point the Stripe provider at a local stand-in unless the app is configured for Stripe.

    Call before ``seat_billing.init_app``. Returns None in Stripe test (or live) mode.
    """
    config = app.config
    if config.get("SEAT_BILLING_STRIPE_SECRET_KEY") or config.get("SEAT_BILLING_STRIPE_API_BASE"):
        return None
    secret = config.get("SEAT_BILLING_STRIPE_WEBHOOK_SECRET") or (
        "whsec_" + secrets.token_hex(24)
    )
    prefix = config.get("SEAT_BILLING_URL_PREFIX", "/billing") or ""
    offline = OfflineStripe(secret, prefix + "/webhooks/stripe", config["DEMO_STAND_IN_WEBHOOKS"])
    config["SEAT_BILLING_STRIPE_API_BASE"] = offline.url
    config["SEAT_BILLING_STRIPE_WEBHOOK_SECRET"] = secret
    config["DEMO_PRICE_ID"] = OFFLINE_BASE_PRICE  # the prices the stand-in is given
    config["DEMO_SEAT_PRICE_ID"] = OFFLINE_SEAT_PRICE
    config["DEMO_STUDIO_PRICE_ID"] = OFFLINE_STUDIO_PRICE
    config["DEMO_EDITOR_PRICE_ID"] = OFFLINE_EDITOR_PRICE
    config["DEMO_VIEWER_PRICE_ID"] = OFFLINE_VIEWER_PRICE
    app.extensions[EXTENSION_KEY] = offline
    app.before_request(_start_stand_in)
    return offline


def offline_stripe(app: Flask | None = None) -> OfflineStripe | None:
    """The app's offline stand-in holder, or None when the demo talks to Stripe."""
    target = app or current_app
    found: OfflineStripe | None = target.extensions.get(EXTENSION_KEY)
    return found


def own_address() -> str:
    """The demo's URL for webhooks: ``DEMO_PUBLIC_URL``, else the address the server listens on.

    Not the ``Host`` header: whoever sends the first request would choose where the signed
    webhooks go. ``SERVER_NAME`` and ``SERVER_PORT`` in the WSGI environment are the server's
    own socket address (a wildcard bind is reached on loopback).
    """
    public = current_app.config.get("DEMO_PUBLIC_URL")
    if public:
        return str(public)
    host = str(request.environ.get("SERVER_NAME") or "127.0.0.1")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    scheme = request.environ.get("wsgi.url_scheme", "http")
    return f"{scheme}://{host}:{request.environ.get('SERVER_PORT', '80')}"


def _start_stand_in() -> None:
    offline = offline_stripe()
    if offline is not None and offline.stand_in is None:
        offline.ensure_started(own_address())
