"""``StripeStandIn``: a stateful fake Stripe API over real HTTP, plus a Python API for tests.

The HTTP side is what the code under test talks to through the real ``stripe`` SDK; the Python
side (no HTTP, thread-safe) is for arranging state, simulating what happens on Stripe's side
(dashboard edits, completed checkouts, failing cards, time passing) and asserting on results.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import stripe

from .catalog import create_customer, create_price, create_product
from .checkout import complete_session, expire_session
from .errors import fault_response
from .items import apply_changes
from .lifecycle import cancel, create_subscription, renew_due
from .routes import StripeApp, parse_params
from .shared import StripeSharedInterface
from .state import StripeState
from .sub_common import current_period

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["StripeStandIn", "sign_payload"]

Obj = dict[str, Any]


def sign_payload(body: bytes, secret: str, timestamp: int, *, event_id: str = "") -> dict[str, str]:
    """``Stripe-Signature: t=<ts>,v1=<hex HMAC-SHA256 of "{t}.{body}">``, keyed by the whsec
    string itself (not its decoded bytes), exactly as ``stripe.Webhook.construct_event`` checks."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return {"Stripe-Signature": f"t={timestamp},v1={mac.hexdigest()}"}


class StripeStandIn(StripeSharedInterface):
    """A fake Stripe account served on ``http://127.0.0.1:<ephemeral port>``.

    Use as a context manager (or ``start()``/``stop()``) and point the SDK at ``url``, most
    simply with :meth:`client`. Inherited: ``requests`` (every request as ``RecordedRequest``),
    ``writes()``, ``faults`` (``fail_next``, ``rate_limit_next``, ``stall_next``, ``drop_next``,
    ``clear``), ``webhooks``, ``add_webhook_endpoint(url, secret)``, ``deliver_pending(...)``,
    ``deliver(event_id, signature=..., timestamp_offset=...)``, ``auto_deliver``.
    Every method returns deep copies, safe to keep and compare.

    The provider-neutral helpers (``subscribe``, ``seats``, ``set_seats``, ``set_status``,
    ``pause_subscription`` ...) are those of
    :class:`~flask_seat_billing.testing.ProviderStandIn`; the ones below that name prices and
    items are Stripe's own.
    """

    api_key = "sk_test_standin"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(
            self._wsgi,
            signer=sign_payload,
            parse_params=parse_params,
            fault_response=fault_response,
            fault_answered=self._fault_answered,
            host=host,
            port=port,
        )
        self.state = StripeState(self.webhooks)
        self._seat_prices = {}
        self._app = StripeApp(self.state)

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self._app(environ, start_response)

    def _fault_answered(
        self, method: str, path: str, params: dict[str, Any], key: str, status: int, body: bytes
    ) -> None:
        self._app.store_answer(method, path, params, key, status, body)

    def client(
        self,
        max_network_retries: int = 0,
        timeout: float | None = None,
        api_key: str | None = None,
    ) -> stripe.StripeClient:
        """A ``stripe.StripeClient`` whose every base address points at this stand-in."""
        http_client = None if timeout is None else stripe.new_default_http_client(timeout=timeout)
        url = self.url
        return stripe.StripeClient(
            api_key or self.api_key,
            base_addresses={"api": url, "connect": url, "files": url, "meter_events": url},
            max_network_retries=max_network_retries,
            http_client=http_client,
        )

    @staticmethod
    def signature_header(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
        """A valid ``Stripe-Signature`` value, for posting hand-made events to a receiver."""
        body = payload.encode() if isinstance(payload, str) else payload
        ts = int(time.time()) if timestamp is None else timestamp
        return sign_payload(body, secret, ts)["Stripe-Signature"]

    def webhook_headers(
        self, payload: bytes, secret: str, *, event_id: str, timestamp: int | None = None
    ) -> dict[str, str]:
        """``Stripe-Signature`` and the JSON content type (the event id travels in the body)."""
        ts = int(time.time()) if timestamp is None else timestamp
        return {**sign_payload(payload, secret, ts), "Content-Type": "application/json"}

    # -- catalog -------------------------------------------------------------------------------
    def create_customer(
        self,
        email: str | None = None,
        name: str | None = None,
        metadata: dict[str, str] | None = None,
        id: str | None = None,
    ) -> Obj:
        """Create a customer (emits ``customer.created``)."""
        params = {"email": email, "name": name, "metadata": metadata, "id": id}
        with self.state.lock:
            return copy.deepcopy(create_customer(self.state, params))

    def create_product(
        self, name: str = "Seat", id: str | None = None, metadata: dict[str, str] | None = None
    ) -> Obj:
        """Create a product (its name shows in invoice lines and hosted pages)."""
        with self.state.lock:
            params = {"name": name, "id": id, "metadata": metadata}
            return copy.deepcopy(create_product(self.state, params))

    def create_price(
        self,
        id: str | None = None,
        product: str | None = None,
        unit_amount: int = 1000,
        currency: str = "usd",
        interval: str | None = "month",
        active: bool = True,
        interval_count: int = 1,
        nickname: str | None = None,
        lookup_key: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Obj:
        """Create a per-unit price (recurring unless ``interval=None``); ``product`` defaults to a
        new product named after ``nickname`` or ``"Seat"``. Pass ``id`` for readable tests."""
        with self.state.lock:
            if product is None:
                product = create_product(self.state, {"name": nickname or "Seat"})["id"]
            params: Obj = {
                "id": id,
                "product": product,
                "unit_amount": unit_amount,
                "currency": currency,
                "active": active,
                "nickname": nickname,
                "lookup_key": lookup_key,
                "metadata": metadata,
            }
            if interval:
                params["recurring"] = {"interval": interval, "interval_count": interval_count}
            return copy.deepcopy(create_price(self.state, params))

    # -- subscriptions -------------------------------------------------------------------------
    def create_subscription(
        self,
        customer: str | None = None,
        items: list[dict[str, Any]] | None = None,
        metadata: dict[str, str] | None = None,
        status: str | None = None,
        trial_days: int | None = None,
    ) -> Obj:
        """Create a subscription as if made in the dashboard, with its first (paid) invoice.

        ``items``: ``[{"price": id, "quantity": n, "metadata": {...}}]`` (required).
        ``customer`` defaults to a new customer. ``status`` (default ``active``, or
        ``trialing`` with ``trial_days``) forces another status afterwards.
        """
        with self.state.lock:
            if customer is None:
                customer = create_customer(self.state, {})["id"]
            parsed = [
                (str(i["price"]), int(i.get("quantity", 1)), dict(i.get("metadata") or {}))
                for i in items or []
            ]
            sub = create_subscription(
                self.state,
                customer,
                parsed,
                metadata=metadata,
                trial_days=trial_days,
                status=status,
            )
            return copy.deepcopy(sub)

    def subscription(self, id: str) -> Obj:
        """The subscription as ``GET /v1/subscriptions/{id}`` returns it (KeyError if absent)."""
        return self._get("subscriptions", id)

    def subscriptions(self, customer: str | None = None) -> list[Obj]:
        """All subscriptions (of one customer), oldest first, canceled ones included."""
        with self.state.lock:
            ids = (
                self.state.subs_by_customer.get(customer, [])
                if customer
                else self.state.subscriptions.order
            )
            return [copy.deepcopy(self.state.subscriptions.objects[i]) for i in ids]

    def cancel_subscription(self, id: str, at_period_end: bool = False) -> Obj:
        """Cancel now (``customer.subscription.deleted``) or at period end (``...updated``)."""
        with self.state.lock:
            sub = self._require("subscriptions", id)
            if at_period_end:
                end = current_period(sub)[1]
                updates = {"cancel_at_period_end": True, "cancel_at": end}
                apply_changes(self.state, sub, [], updates=updates)
            else:
                cancel(self.state, sub)
            return copy.deepcopy(sub)

    # -- checkout, payments ----------------------------------------------------------------------
    def complete_checkout(self, session_id: str) -> Obj:
        """Pay a Checkout Session as the customer would (same as the hosted Pay button).

        Creates the customer if needed and the subscription from the line items with
        ``subscription_data.metadata``; emits ``customer.subscription.created``,
        ``invoice.paid`` and ``checkout.session.completed``. Returns the session.
        """
        with self.state.lock:
            return copy.deepcopy(complete_session(self.state, session_id))

    def expire_checkout(self, session_id: str) -> Obj:
        """Expire an open session (emits ``checkout.session.expired``)."""
        with self.state.lock:
            return copy.deepcopy(expire_session(self.state, session_id))

    def checkout_session(self, id: str) -> Obj:
        """A Checkout Session by id."""
        return self._get("checkout_sessions", id)

    def fail_payments(self, customer_id: str, failing: bool = True) -> None:
        """Make (or stop making) this customer's payments fail: invoices stay ``open`` with
        ``invoice.payment_failed``, and ``payment_behavior=error_if_incomplete`` gets a 402."""
        with self.state.lock:
            if failing:
                self.state.failing_customers.add(customer_id)
            else:
                self.state.failing_customers.discard(customer_id)

    # -- reading -------------------------------------------------------------------------------
    def customer(self, id: str) -> Obj:
        """A customer by id."""
        return self._get("customers", id)

    def price(self, id: str) -> Obj:
        """A price by id."""
        return self._get("prices", id)

    def invoice(self, id: str) -> Obj:
        """An invoice by id."""
        return self._get("invoices", id)

    def invoices(self, subscription: str | None = None) -> list[Obj]:
        """Invoices (of one subscription), oldest first."""
        with self.state.lock:
            return [
                copy.deepcopy(i)
                for i in self.state.invoices.objects.values()
                if subscription in (None, i["parent"]["subscription_details"]["subscription"])
            ]

    def invoice_items(
        self, subscription: str | None = None, pending: bool | None = None
    ) -> list[Obj]:
        """Invoice items (prorations), oldest first; ``pending=True``: not yet invoiced."""
        with self.state.lock:
            return [
                copy.deepcopy(i)
                for i in self.state.invoice_items.objects.values()
                if subscription in (None, i["parent"]["subscription_details"]["subscription"])
                and (pending is None or (i["invoice"] is None) == pending)
            ]

    def events(self, type: str | None = None) -> list[Obj]:
        """Events (of one type), oldest first."""
        with self.state.lock:
            return [
                copy.deepcopy(e)
                for e in self.state.events.objects.values()
                if type is None or e["type"] == type
            ]

    # -- clock and reset -----------------------------------------------------------------------
    def now(self) -> int:
        """The stand-in's clock (unix seconds)."""
        with self.state.lock:
            return self.state.now()

    def freeze_time(self, at: float | None) -> None:
        """Freeze the clock at ``at`` (deterministic proration amounts); ``None`` unfreezes."""
        with self.state.lock:
            self.state.freeze_time(at)

    def advance_time(self, seconds: float) -> list[str]:
        """Move the clock forward and renew (or end) subscriptions whose period is over.

        Returns the ids of renewed subscriptions; renewals invoice pending prorations.
        """
        with self.state.lock:
            self.state.advance_time(seconds)
            return renew_due(self.state)

    def reset(self) -> None:
        """Empty the account, the request log, queued faults and stored events.

        Webhook endpoints and the API key stay, so a fixture can reset between tests.
        """
        with self.state.lock:
            self.state.reset()
            self._seat_prices.clear()
        self.requests.clear()
        self.faults.clear()
        self.faults.set_latency(0)
        self.webhooks.reset()

    # -- helpers -------------------------------------------------------------------------------
    def _require(self, collection: str, id: str) -> Obj:
        obj = getattr(self.state, collection).get(id)
        if obj is None:
            raise KeyError(id)
        result: Obj = obj
        return result

    def _get(self, collection: str, id: str) -> Obj:
        with self.state.lock:
            return copy.deepcopy(self._require(collection, id))
