"""A stateful stand-in of the Polar API, served over real HTTP for the real ``polar`` SDK.

Why a stand-in: per-seat billing code must be tested against what Polar actually does, i.e. typed
refusals (403 on canceled or canceling subscriptions, 422 below/above the product's seat limits,
402 when the prorated charge fails), rate limits with ``Retry-After``, webhooks that arrive twice,
out of order or badly signed. Mocks of the SDK cannot show any of that; this serves Polar's HTTP API
on ``127.0.0.1`` so the SDK builds, sends and parses every request itself::

    from polar.v2026_10 import Polar
    from flask_seat_billing.testing.polar_server import PolarStandIn

    with PolarStandIn() as polar_api:
        product = polar_api.create_product("Team", price_per_seat=1000, maximum_seats=50)
        sub = polar_api.create_subscription(product["id"], seats=3, external_customer_id="org_1")
        client = Polar("any-token", base_url=polar_api.url)
        client.subscriptions.update(sub["id"], seats=5, proration_behavior="invoice")
        assert polar_api.seats(sub["id"]) == 5

Python-side helpers return JSON dicts shaped exactly like Polar's API answers (copies: mutating
them changes nothing). All helpers are thread-safe; the server is multi-threaded.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .._standin.webhooks import WebhookEndpoint
from . import _lifecycle as life
from ._errors import PolarAPIError, fault_response
from ._http import IntegerRetryAfter, PolarApp
from ._models import SeatChange, SeatTier
from ._pages import ROUTES as PAGE_ROUTES
from ._routes_objects import ROUTES as OBJECT_ROUTES
from ._routes_subscriptions import ROUTES as SUBSCRIPTION_ROUTES
from ._serialize import checkout_json
from ._shared import PolarSharedInterface
from ._store import PolarStore, utcnow
from ._webhooks import generate_secret, signature_headers

if TYPE_CHECKING:
    from polar.v2026_10 import Polar

__all__ = [
    "PolarAPIError",
    "PolarStandIn",
    "SeatChange",
    "SeatTier",
    "generate_webhook_secret",
    "sign_webhook",
]

generate_webhook_secret = generate_secret
"""A webhook secret shaped like Polar's (``polar_whs_...``); pass it to ``validate_event`` as is."""

sign_webhook = signature_headers
"""``sign_webhook(body, secret, timestamp, event_id=...)`` -> the ``webhook-*`` headers Polar
sends, for hand-made payloads in receiver unit tests."""

JSON = dict[str, Any]


class PolarStandIn(PolarSharedInterface):
    """Polar API stand-in. Use as a context manager, or ``start()`` / ``stop()``.

    Construction: ``access_token`` (only that bearer token is accepted; default: any non-empty
    token), ``clock`` (a callable returning an aware ``datetime``; drives periods and proration),
    ``default_proration_behavior`` (used when an update omits it, Polar's organization setting),
    ``host``/``port``.

    Shared machinery (see ``flask_seat_billing.testing._standin``): ``requests`` (every request,
    faulted ones included), ``writes()``, ``faults`` (``fail_next``, ``rate_limit_next``,
    ``stall_next``, ``drop_next``, ``clear``), ``webhooks`` and its shortcuts
    ``add_webhook_endpoint``, ``deliver_pending``, ``deliver``, ``auto_deliver``.

    The provider-neutral helpers (``subscribe``, ``seats``, ``set_seats``, ``set_status``,
    ``pause_subscription`` ...) are those of
    :class:`~flask_seat_billing.testing.ProviderStandIn`; the ones below that name products
    and external customer ids are Polar's own.
    """

    def __init__(
        self,
        *,
        access_token: str | None = None,
        clock: Callable[[], datetime] | None = None,
        default_proration_behavior: str = "prorate",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.access_token = access_token
        self._store = PolarStore(self._emit, clock or utcnow)
        self._store.default_proration_behavior = default_proration_behavior
        app = PolarApp(
            self._store,
            [*SUBSCRIPTION_ROUTES, *OBJECT_ROUTES, *PAGE_ROUTES],
            self._token_ok,
        )
        super().__init__(
            app,
            signer=signature_headers,
            fault_response=fault_response,
            idempotency_header=None,
            endpoint_prefix="wh_",
            host=host,
            port=port,
        )
        # BaseStandIn takes no faults/wrapper hook: wrap the served app (before start()) so an
        # injected fractional Retry-After reaches the SDK as whole seconds, as Polar sends it.
        self.server.app = IntegerRetryAfter(self.server.app)

    def _token_ok(self, token: str) -> bool:
        return self.access_token is None or token == self.access_token

    def _emit(self, event_id: str, event_type: str, payload: JSON) -> None:
        self.webhooks.add_event(event_id, event_type, payload)

    def client(self, access_token: str | None = None, **kwargs: Any) -> Polar:
        """A ``polar.v2026_10.Polar`` pointed at this stand-in (started on demand); ``kwargs``
        go to ``Polar`` (``timeout=`` ...)."""
        from polar.v2026_10 import Polar

        self.start()
        token = access_token or self.access_token or "polar_oat_standin"
        return Polar(token, base_url=self.url, **kwargs)

    # -- catalog and customers --------------------------------------------------------------
    def create_product(
        self,
        name: str = "Team",
        *,
        price_per_seat: int | None = 1000,
        fixed_price: int | None = None,
        minimum_seats: int = 1,
        maximum_seats: int | None = None,
        seat_tiers: list[SeatTier] | None = None,
        seat_tier_type: str = "volume",
        currency: str = "usd",
        recurring_interval: str = "month",
        trial_days: int | None = None,
        metadata: dict[str, Any] | None = None,
        id: str | None = None,
    ) -> JSON:
        """A recurring product with a seat-based price (cents per seat per period).

        ``seat_tiers`` overrides the single tier built from ``price_per_seat``/``minimum_seats``/
        ``maximum_seats``; ``price_per_seat=None`` without tiers makes a product without seats
        (only ``fixed_price``). ``trial_days`` makes checkouts start ``trialing``.
        """
        if seat_tiers is not None:
            tiers = tuple(seat_tiers)
        elif price_per_seat is not None:
            tiers = (SeatTier(minimum_seats, maximum_seats, price_per_seat),)
        else:
            tiers = ()
        product = self._store.add_product(
            name,
            tiers,
            seat_tier_type=seat_tier_type,
            fixed_price=fixed_price,
            currency=currency,
            recurring_interval=recurring_interval,
            metadata=metadata,
            trial_days=trial_days,
            id=id,
        )
        with self._store.lock:
            return copy.deepcopy(self._store.product_json(product))

    def create_customer(
        self,
        external_id: str | None = None,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> JSON:
        """A customer; ``external_id`` is your id for it (e.g. the organization id)."""
        customer = self._store.add_customer(
            external_id=external_id, email=email, name=name, metadata=metadata
        )
        with self._store.lock:
            return copy.deepcopy(self._store.customer_json(customer))

    def customer(self, id_or_external_id: str) -> JSON:
        """A customer by Polar id or external id (``PolarAPIError`` 404 if neither matches)."""
        store = self._store
        with store.lock:
            found = store.customers.get(id_or_external_id)
            if found is None:
                found = store.customer_by_external(id_or_external_id)
            return copy.deepcopy(store.customer_json(found))

    # -- subscriptions ----------------------------------------------------------------------
    def create_subscription(
        self,
        product_id: str,
        seats: int | None = None,
        external_customer_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        status: str = "active",
        *,
        customer_id: str | None = None,
    ) -> JSON:
        """A subscription as if checkout had completed; emits ``subscription.created`` (and
        ``subscription.active`` when active). The customer is found or created by
        ``external_customer_id``; ``seats`` defaults to the product's minimum."""
        store = self._store
        with store.lock:
            product = store.product(product_id)
            if customer_id is not None:
                customer = store.customer(customer_id)
            elif external_customer_id is not None and (
                external_customer_id in store.customers_by_external
            ):
                customer = store.customer_by_external(external_customer_id)
            else:
                customer = store.add_customer(external_id=external_customer_id)
            sub = store.add_subscription(
                product,
                customer,
                product.minimum_seats if seats is None else seats,
                status=status,
                metadata=metadata,
            )
            return copy.deepcopy(store.subscription_json(sub))

    def subscription(self, subscription_id: str) -> JSON:
        """The subscription as ``GET /v1/subscriptions/{id}`` returns it."""
        with self._store.lock:
            sub = self._store.subscription(subscription_id)
            return copy.deepcopy(self._store.subscription_json(sub))

    def subscription_ids(self, external_customer_id: str | None = None) -> list[str]:
        """Ids of all subscriptions (of one external customer), oldest first."""
        store = self._store
        with store.lock:
            if external_customer_id is None:
                return list(store.subscriptions)
            customer_id = store.customers_by_external.get(external_customer_id)
            return list(store.subs_by_customer.get(customer_id or "", []))

    def update_seats(
        self, subscription_id: str, seats: int, proration_behavior: str | None = None
    ) -> JSON:
        """The same seats update as the API, refusals included (raises ``PolarAPIError``)."""
        return self._apply(subscription_id, life.change_seats, seats, proration_behavior)

    def cancel_subscription(self, subscription_id: str, at_period_end: bool = False) -> JSON:
        """Cancel now (revoke: ``canceled`` + ``revoked`` events) or at period end
        (``cancel_at_period_end``; ``canceled`` event)."""
        action = life.cancel if at_period_end else life.revoke
        return self._apply(subscription_id, action)

    def uncancel_subscription(self, subscription_id: str) -> JSON:
        """Undo a cancellation at period end (``subscription.uncanceled``)."""
        return self._apply(subscription_id, life.uncancel)

    def revoke_subscription(self, subscription_id: str) -> JSON:
        """End the subscription immediately (``subscription.revoked``)."""
        return self._apply(subscription_id, life.revoke)

    def renew_subscription(self, subscription_id: str) -> JSON:
        """Roll to the next period: applies ``next_period`` seat changes, ends canceling
        subscriptions, converts trials (``subscription.cycled`` + ``updated``)."""
        return self._apply(subscription_id, life.cycle)

    def assign_seats(self, subscription_id: str, count: int) -> None:
        """Pretend ``count`` seats are assigned to members: Polar refuses (400) to go below."""
        with self._store.lock:
            self._store.subscription(subscription_id).assigned_seats = count

    def set_metadata(self, subscription_id: str, metadata: dict[str, Any]) -> JSON:
        """Replace the subscription's metadata (``subscription.updated``)."""
        store = self._store
        with store.lock:
            sub = store.subscription(subscription_id)
            sub.metadata = dict(metadata)
            sub.modified_at = store.clock()
            store.touch()
            store.emit("subscription.updated", sub)
            return copy.deepcopy(store.subscription_json(sub))

    # -- payments ---------------------------------------------------------------------------
    def fail_payments(self, customer_id: str, failing: bool = True) -> None:
        """Make charges to a customer (Polar id or external id) fail: seat increases with
        ``invoice``/``prorate`` and checkouts answer 402 and change nothing."""
        with self._store.lock:
            if failing:
                self._store.failing_payments.add(customer_id)
            else:
                self._store.failing_payments.discard(customer_id)

    def seat_changes(self, subscription_id: str | None = None) -> list[SeatChange]:
        """Recorded seat changes with their prorated ``amount`` (cents; negative = credit)."""
        with self._store.lock:
            return [
                c
                for c in self._store.seat_changes
                if subscription_id is None or c.subscription_id == subscription_id
            ]

    # -- checkout ---------------------------------------------------------------------------
    def checkout(self, checkout_id: str) -> JSON:
        """The checkout as ``GET /v1/checkouts/{id}`` returns it (``status``, ``seats``,
        ``subscription_id`` ...; ``url`` is relative while the server is stopped)."""
        store = self._store
        base_url = self.url if self.server.running else ""
        with store.lock:
            found = store.checkout(checkout_id)
            products = [store.products[p] for p in found.product_ids]
            return checkout_json(found, products, base_url)

    def complete_checkout(self, checkout_id: str) -> JSON:
        """Pay a checkout as the customer would: creates the customer (by external id) and the
        subscription with the checkout's seats and metadata, emits its events, and returns the
        subscription. Raises ``PolarAPIError`` (402) when the customer's payments fail."""
        store = self._store
        with store.lock:
            sub = life.complete_checkout(store, store.checkout(checkout_id))
            return copy.deepcopy(store.subscription_json(sub))

    # -- webhooks ---------------------------------------------------------------------------
    def add_webhook_endpoint(
        self,
        url: str,
        secret: str | None = None,
        events: list[str] | tuple[str, ...] | None = None,
    ) -> WebhookEndpoint:
        """Register a receiver; its ``secret`` (generated if omitted) is what the receiver
        passes to ``polar.v2026_10.webhooks.validate_event`` as is."""
        return self.webhooks.add_webhook_endpoint(url, secret or generate_secret(), events)

    def events(self, type: str | None = None) -> list[JSON]:
        """Payloads of the emitted events (optionally of one type), oldest first, each with the
        ``webhook-id`` it is delivered under as ``"id"``."""
        return [copy.deepcopy({"id": e.id, **e.payload}) for e in self.webhooks.events(type)]

    # -- lifecycle --------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all state, recorded requests, queued faults and events (endpoints stay)."""
        self._store.reset()
        self.requests.clear()
        self.faults.clear()
        self.faults.set_latency(0)
        self.webhooks.reset()
