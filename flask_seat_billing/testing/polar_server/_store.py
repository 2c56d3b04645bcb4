"""The stand-in's state: records, indexes, caches and event emission, behind one lock.

Every lookup used on a hot path is a dict access (id, external id, customer -> subscriptions), and
serialized products/customers are cached, so a benchmark with 10,000 subscriptions measures the
caller's code rather than the stand-in. ``version`` increases on every write; listings cache their
filtered, sorted id lists against it so paging through 10,000 rows sorts once, not per page.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from . import _errors as err
from ._models import (
    Checkout,
    Customer,
    CustomerSession,
    Product,
    SeatChange,
    SeatTier,
    Subscription,
    add_interval,
)
from ._serialize import customer_json, iso, product_json, subscription_json

__all__ = ["EventSink", "PolarStore", "utcnow"]

JSON = dict[str, Any]
EventSink = Callable[[str, str, JSON], None]
"""Receives (event id, event type, payload) for each webhook event the stand-in emits."""

API_VERSION = "2026-10"
ACTIVE_STATUSES = frozenset({"trialing", "active", "past_due"})
"""What Polar's ``active`` filter means (the customers endpoint documents the same set)."""


def utcnow() -> datetime:
    """The default clock: aware UTC, as Polar prints timestamps with an offset."""
    return datetime.now(timezone.utc)


def new_id() -> str:
    """Polar ids are UUIDs."""
    return str(uuid.uuid4())


class PolarStore:
    """All records of one stand-in. Callers hold ``lock`` around multi-step operations."""

    def __init__(self, emit: EventSink, clock: Callable[[], datetime] = utcnow) -> None:
        self.lock = threading.RLock()
        self.emit_sink = emit
        self.clock = clock
        self.default_proration_behavior = "prorate"
        self.base_url = ""
        self._init_state()

    def _init_state(self) -> None:
        self.products: dict[str, Product] = {}
        self.customers: dict[str, Customer] = {}
        self.customers_by_external: dict[str, str] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.subs_by_customer: dict[str, list[str]] = {}
        self.checkouts: dict[str, Checkout] = {}
        self.sessions: dict[str, CustomerSession] = {}
        self.sessions_by_token: dict[str, str] = {}
        self.seat_changes: list[SeatChange] = []
        self.failing_payments: set[str] = set()
        self.version = 0
        self.list_cache: dict[tuple[Any, ...], list[str]] = {}
        self._json_cache: dict[str, JSON] = {}
        self._seq = itertools.count(1)

    def reset(self) -> None:
        """Forget every record (configuration such as the clock is kept)."""
        with self.lock:
            self._init_state()

    def touch(self) -> None:
        """Record that state changed: invalidates listing caches."""
        self.version += 1
        if self.list_cache:
            self.list_cache.clear()

    # -- lookups ---------------------------------------------------------------------------
    def product(self, product_id: str) -> Product:
        """The product, or a 404 in Polar's shape."""
        found = self.products.get(product_id)
        if found is None:
            raise err.not_found("Product")
        return found

    def customer(self, customer_id: str) -> Customer:
        """The customer, or a 404 in Polar's shape."""
        found = self.customers.get(customer_id)
        if found is None:
            raise err.not_found("Customer")
        return found

    def customer_by_external(self, external_id: str) -> Customer:
        """The customer with this external id, or a 404."""
        customer_id = self.customers_by_external.get(external_id)
        if customer_id is None:
            raise err.not_found("Customer")
        return self.customers[customer_id]

    def subscription(self, subscription_id: str) -> Subscription:
        """The subscription, or a 404 in Polar's shape."""
        found = self.subscriptions.get(subscription_id)
        if found is None:
            raise err.not_found("Subscription")
        return found

    def checkout(self, checkout_id: str) -> Checkout:
        """The checkout session, or a 404."""
        found = self.checkouts.get(checkout_id)
        if found is None:
            raise err.not_found("Checkout")
        return found

    def payments_fail(self, customer: Customer) -> bool:
        """Whether charges to this customer are set to fail (by id or external id)."""
        return customer.id in self.failing_payments or (
            customer.external_id is not None and customer.external_id in self.failing_payments
        )

    # -- JSON ------------------------------------------------------------------------------
    def product_json(self, product: Product) -> JSON:
        """Cached ``outputs.Product`` JSON (do not mutate the result)."""
        key = "p:" + product.id
        cached = self._json_cache.get(key)
        if cached is None:
            cached = self._json_cache[key] = product_json(product)
        return cached

    def customer_json(self, customer: Customer) -> JSON:
        """Cached customer JSON (do not mutate the result)."""
        key = "c:" + customer.id
        cached = self._json_cache.get(key)
        if cached is None:
            cached = self._json_cache[key] = customer_json(customer)
        return cached

    def forget_json(self, object_id: str) -> None:
        """Drop cached JSON after a product or customer changed."""
        self._json_cache.pop("p:" + object_id, None)
        self._json_cache.pop("c:" + object_id, None)

    def subscription_json(self, sub: Subscription) -> JSON:
        """``outputs.Subscription`` JSON for the subscription as it is now."""
        product = self.products[sub.product_id]
        return subscription_json(
            sub,
            self.product_json(product),
            self.customer_json(self.customers[sub.customer_id]),
            product.amount(sub.seats),
        )

    # -- events ----------------------------------------------------------------------------
    def emit(self, event_type: str, sub: Subscription) -> None:
        """Emit a ``subscription.*`` webhook with a snapshot of ``sub`` taken now.

        Called with the lock held, so events are stored in the order the changes happened.
        """
        payload = {
            "type": event_type,
            "timestamp": iso(self.clock()),
            "api_version": API_VERSION,
            "data": self.subscription_json(sub),
        }
        self.emit_sink(new_id(), event_type, payload)

    # -- creation --------------------------------------------------------------------------
    def add_product(
        self,
        name: str,
        seat_tiers: tuple[SeatTier, ...],
        *,
        seat_tier_type: str = "volume",
        fixed_price: int | None = None,
        currency: str = "usd",
        recurring_interval: str = "month",
        recurring_interval_count: int = 1,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        trial_days: int | None = None,
        id: str | None = None,
    ) -> Product:
        """Store a product; tiers must be contiguous from ``min_seats`` as Polar requires."""
        for before, after in itertools.pairwise(seat_tiers):
            if before.max_seats is None or after.min_seats != before.max_seats + 1:
                raise ValueError("seat tiers must be contiguous and only the last unbounded")
        with self.lock:
            product = Product(
                id=id or new_id(),
                name=name,
                created_at=self.clock(),
                seat_tiers=seat_tiers,
                seat_tier_type=seat_tier_type,
                fixed_price=fixed_price,
                currency=currency,
                recurring_interval=recurring_interval,
                recurring_interval_count=recurring_interval_count,
                description=description,
                metadata=dict(metadata or {}),
                seat_price_id=new_id(),
                fixed_price_id=new_id(),
                trial_days=trial_days,
            )
            self.products[product.id] = product
            self.touch()
            return product

    def add_customer(
        self,
        *,
        external_id: str | None = None,
        email: str | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Customer:
        """Store a customer; a duplicate external id or email is a 422 as on Polar."""
        with self.lock:
            if external_id is not None and external_id in self.customers_by_external:
                raise err.validation_error(
                    ["body", "external_id"],
                    "A customer with this external ID already exists.",
                    input=external_id,
                )
            customer_id = new_id()
            customer = Customer(
                id=customer_id,
                email=email or f"{external_id or customer_id}@customers.standin.invalid",
                created_at=self.clock(),
                external_id=external_id,
                name=name,
                metadata=dict(metadata or {}),
            )
            self.customers[customer.id] = customer
            if external_id is not None:
                self.customers_by_external[external_id] = customer.id
            self.subs_by_customer[customer.id] = []
            self.touch()
            return customer

    def add_subscription(
        self,
        product: Product,
        customer: Customer,
        seats: int | None,
        *,
        status: str = "active",
        metadata: dict[str, Any] | None = None,
        checkout_id: str | None = None,
        emit: bool = True,
        trial: tuple[str, int] | None = None,
    ) -> Subscription:
        """Store a subscription starting now; emits ``subscription.created`` (+ ``active``).

        ``emit=False`` is for bulk seeding, where thousands of events would only be noise.
        """
        with self.lock:
            now = self.clock()
            trialing = status == "trialing"
            interval, count = trial or ("day", product.trial_days or 14)
            period_end = (
                add_interval(now, interval, count)
                if trialing
                else add_interval(now, product.recurring_interval, product.recurring_interval_count)
            )
            sub = Subscription(
                id=new_id(),
                seq=next(self._seq),
                customer_id=customer.id,
                product_id=product.id,
                status=status,
                seats=seats if product.is_seat_based else None,
                created_at=now,
                current_period_start=now,
                current_period_end=period_end,
                started_at=now,
                metadata=dict(metadata or {}),
                checkout_id=checkout_id,
                trial_start=now if trialing else None,
                trial_end=period_end if trialing else None,
                past_due_at=now if status == "past_due" else None,
            )
            if status in ("canceled", "unpaid", "incomplete_expired"):
                sub.ended_at = sub.ends_at = sub.canceled_at = now
            self.subscriptions[sub.id] = sub
            self.subs_by_customer.setdefault(customer.id, []).append(sub.id)
            self.touch()
            if emit:
                self.emit("subscription.created", sub)
                if status == "active":
                    self.emit("subscription.active", sub)
            return sub

    def add_checkout(self, checkout: Checkout) -> Checkout:
        """Store a checkout session built by the API layer."""
        with self.lock:
            self.checkouts[checkout.id] = checkout
            self.touch()
            return checkout

    def add_session(self, customer: Customer, return_url: str | None) -> CustomerSession:
        """Create a customer portal session (valid one hour, like Polar's)."""
        with self.lock:
            now = self.clock()
            session = CustomerSession(
                id=new_id(),
                token="polar_cst_" + secrets.token_urlsafe(24),
                customer_id=customer.id,
                created_at=now,
                expires_at=now + timedelta(hours=1),
                return_url=return_url,
            )
            self.sessions[session.id] = session
            self.sessions_by_token[session.token] = session.id
            return session

    def session_for_token(self, token: str) -> CustomerSession | None:
        """The unexpired session with this token, if any."""
        with self.lock:
            session_id = self.sessions_by_token.get(token)
            session = self.sessions.get(session_id) if session_id else None
            if session is None or session.expires_at <= self.clock():
                return None
            return session
