"""Stripe, through ``stripe.StripeClient`` and its ``client.v1`` services.

Seats are the quantity of the plan's seat item (the item whose price is ``seat_price_id``);
writes address that item directly, as newer API versions require, with a caller-supplied
idempotency key so a retried write after a crash can never apply twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import stripe

from ...plans import PlanCatalog
from ..base import (
    ORGANIZATION_KEY,
    BillingProvider,
    CheckoutRequest,
    CheckoutSession,
    RemotePrice,
    RemoteSubscription,
    SeatPreview,
    SeatUpdate,
    SubscriptionPage,
)
from . import checkout, preview
from .capabilities import CAPABILITIES
from .data import plain, timestamp
from .errors import call
from .ids import stripe_id
from .transport import http_client


def prorated_amount(item: dict[str, Any], delta: int, now: float | None = None) -> int | None:
    """Stripe's proration arithmetic for a quantity change on ``item``, in minor units."""
    price = item.get("price") or {}
    unit = price.get("unit_amount")
    start, end = item.get("current_period_start"), item.get("current_period_end")
    if unit is None or not start or not end or end <= start:
        return None
    now = time.time() if now is None else now
    fraction = min(1.0, max(0.0, (end - now) / (end - start)))
    return int(round(delta * int(unit) * fraction))


class StripeProvider(BillingProvider):
    """The Stripe provider; see :mod:`flask_seat_billing.providers.base` for the contract."""

    name = "stripe"
    capabilities = CAPABILITIES

    def __init__(
        self,
        catalog: PlanCatalog,
        *,
        api_key: str,
        api_base: str | None,
        max_network_retries: int,
        timeout: float,
    ) -> None:
        super().__init__(catalog)
        base = None
        root = api_base.rstrip("/") if api_base else None
        if root:
            base = {"api": root, "connect": root, "files": root, "meter_events": root}
        self.client = stripe.StripeClient(
            api_key,
            base_addresses=base,  # type: ignore[arg-type]
            max_network_retries=max_network_retries,
            http_client=http_client(root, timeout),  # one pooled session for every thread
        )

    # -- reading -----------------------------------------------------------------------------

    def to_remote(self, obj: Any) -> RemoteSubscription:
        """Reduce a Stripe subscription object to a :class:`RemoteSubscription`."""
        data = plain(obj)
        items = [plain(i) for i in (data.get("items") or {}).get("data", [])]
        price_ids = frozenset(str((i.get("price") or {}).get("id")) for i in items)
        plan = self.catalog.match_prices(set(price_ids))
        seat_item = None
        if plan is not None and plan.seat_price_id:
            seat_item = next(
                (i for i in items if (i.get("price") or {}).get("id") == plan.seat_price_id), None
            )
        by_type: dict[str, int] | None = None
        item_of_type: dict[str, str] | None = None
        if plan is not None and plan.seat_prices:
            by_price = {str((i.get("price") or {}).get("id")): i for i in items}
            by_type, item_of_type = {}, {}
            for kind, price in plan.seat_prices.items():
                found = by_price.get(price)
                by_type[kind] = int(found["quantity"]) if found else 0
                if found:
                    item_of_type[kind] = str(found["id"])
        period_item = seat_item or (items[0] if items else {})
        metadata = {str(k): str(v) for k, v in (data.get("metadata") or {}).items()}
        customer = data.get("customer")
        if isinstance(customer, dict):
            customer = customer.get("id")
        return RemoteSubscription(
            id=str(data["id"]),
            customer_id=customer,
            status=str(data.get("status")),
            metadata=metadata,
            price_ids=price_ids,
            plan_name=plan.name if plan else None,  # unknown prices: never billed by us
            seat_item_id=seat_item.get("id") if seat_item else None,
            seats=(sum(by_type.values()) if by_type is not None
                   else int(seat_item["quantity"]) if seat_item else None),
            currency=data.get("currency"),
            current_period_start=timestamp(period_item.get("current_period_start")),
            current_period_end=timestamp(period_item.get("current_period_end")),
            trial_start=timestamp(data.get("trial_start")),
            trial_end=timestamp(data.get("trial_end")),
            cancel_at_period_end=bool(data.get("cancel_at_period_end")),
            cancel_at=timestamp(data.get("cancel_at")),
            canceled_at=timestamp(data.get("canceled_at")),
            ended_at=timestamp(data.get("ended_at")),
            organization_hint=metadata.get(ORGANIZATION_KEY),
            created_at=timestamp(data.get("created")),
            raw=data,
            seats_by_type=by_type,
            seat_items_by_type=item_of_type,
        )

    def retrieve_subscription(self, subscription_id: str) -> RemoteSubscription:
        sub_id = stripe_id(subscription_id, "subscription")
        # A raw request: the plain JSON is all ``to_remote`` needs, and building the SDK's
        # StripeObjects for a whole subscription costs more than the loopback request itself.
        response = call(lambda: self.client.raw_request("get", f"/v1/subscriptions/{sub_id}"))
        return self.to_remote(response.data)

    def list_subscriptions(self, *, page_size: int = 100) -> Iterator[RemoteSubscription]:
        params: dict[str, Any] = {"status": "all", "limit": page_size}
        while True:
            page = call(lambda: self.client.v1.subscriptions.list(params=params))  # type: ignore[arg-type]  # noqa: B023
            for obj in page.data:
                yield self.to_remote(obj)
            if not page.has_more or not page.data:
                return
            params = {**params, "starting_after": page.data[-1].id}

    # -- writing -----------------------------------------------------------------------------

    def _seat_item(self, subscription: RemoteSubscription) -> dict[str, Any]:
        for item in (subscription.raw.get("items") or {}).get("data", []):
            if item.get("id") == subscription.seat_item_id:
                return dict(item)
        return {}

    def update_seats(
        self,
        subscription: RemoteSubscription,
        quantity: int,
        *,
        proration_behavior: str,
        idempotency_key: str,
    ) -> SeatUpdate:
        if subscription.seat_item_id is None:
            raise ValueError(f"Subscription {subscription.id} has no seat item to update.")
        stripe_id(subscription.id, "subscription")  # a stored id not of Stripe's shape: refused
        item_id = stripe_id(subscription.seat_item_id, "subscription item")
        # A raw request, like the read: the plain JSON and the headers are all that is needed,
        # and the SDK's objects cost more than the loopback request (the request path of
        # inline mode). Parameters, key and retries are the SDK's as for ``.update``.
        response = call(lambda: self.client.raw_request(
            "post", f"/v1/subscription_items/{item_id}", quantity=quantity,
            proration_behavior=proration_behavior, idempotency_key=idempotency_key,
        ))
        headers = {k.lower(): v for k, v in (response.headers or {}).items()}
        replayed = str(headers.get("idempotent-replayed", "")).lower() == "true"
        updated = response.data
        answered = plain(updated)
        new_quantity = int(answered.get("quantity") or quantity)
        # The answer is the item itself (price, period): the proration needs no earlier read.
        item = answered if answered.get("price") else self._seat_item(subscription)
        currency = subscription.currency or (item.get("price") or {}).get("currency")
        amount = None
        if proration_behavior != "none" and subscription.seats is not None:
            amount = prorated_amount(item, new_quantity - subscription.seats)
        return SeatUpdate(
            subscription=replace(subscription, seats=new_quantity),
            prorated_amount=amount,
            currency=currency,
            replayed=replayed,
        )

    def update_seat_types(
        self,
        subscription: RemoteSubscription,
        quantities: dict[str, int],
        *,
        proration_behavior: str,
        idempotency_key: str,
    ) -> SeatUpdate:
        """One ``POST /v1/subscriptions/{id}`` with an entry per changed seat type: existing
        items by id, a type without an item by its price, so one membership change (a
        promotion moves two types) is one proration and one invoice line pair."""
        items = self._type_items(subscription, quantities)
        sub_id = stripe_id(subscription.id, "subscription")
        # A raw request like ``update_seats``: the key and retries are the SDK's, the answer
        # plain JSON; ``Idempotent-Replayed`` says it was applied by an earlier request.
        response = call(lambda: self.client.raw_request(
            "post", f"/v1/subscriptions/{sub_id}", items=items,
            proration_behavior=proration_behavior, idempotency_key=idempotency_key,
        ))
        headers = {k.lower(): v for k, v in (response.headers or {}).items()}
        replayed = str(headers.get("idempotent-replayed", "")).lower() == "true"
        return SeatUpdate(subscription=self.to_remote(response.data),
                          currency=subscription.currency, replayed=replayed)

    def _type_items(
        self, subscription: RemoteSubscription, quantities: dict[str, int]
    ) -> list[dict[str, Any]]:
        """``items`` entries setting these seat types: an existing item by id, a type without
        one by its price (Stripe adds the item)."""
        plan = self.catalog.get(subscription.plan_name) if subscription.plan_name else None
        if plan is None or not plan.seat_prices:
            raise ValueError(f"Subscription {subscription.id} has no seat types.")
        items: list[dict[str, Any]] = []
        for kind, quantity in sorted(quantities.items()):
            item_id = (subscription.seat_items_by_type or {}).get(kind)
            if item_id is not None:
                items.append({"id": stripe_id(item_id, "subscription item"),
                              "quantity": quantity})
            else:
                items.append({"price": plan.seat_prices[kind], "quantity": quantity})
        return items

    # -- checkout, portal, preview ------------------------------------------------------------

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        return checkout.create_checkout(self.client, request)

    def retrieve_checkout(self, session_id: str) -> CheckoutSession:
        return checkout.retrieve_checkout(self.client, session_id)

    def expire_checkout(self, session_id: str) -> CheckoutSession:
        return checkout.expire_checkout(self.client, session_id)

    def create_portal(self, customer_id: str, return_url: str) -> str:
        return checkout.create_portal(self.client, customer_id, return_url)

    def preview_seat_change(
        self, subscription: RemoteSubscription, quantity: int, *, proration_behavior: str
    ) -> SeatPreview:
        return preview.preview_seat_change(
            self.client, subscription, quantity, proration_behavior=proration_behavior
        )

    def preview_seat_types(
        self, subscription: RemoteSubscription, quantities: dict[str, int], *,
        proration_behavior: str,
    ) -> SeatPreview:
        """The invoice preview of :meth:`update_seat_types`'s request, against one that
        leaves the same items as they are (see :func:`.preview.preview_items`)."""
        current = subscription.seats_by_type or {}
        unchanged = {k: current.get(k, 0) for k in quantities
                     if k in (subscription.seat_items_by_type or {})}
        total = sum({**current, **quantities}.values())
        return preview.preview_items(
            self.client, subscription, self._type_items(subscription, unchanged),
            self._type_items(subscription, quantities), to_seats=total,
            proration_behavior=proration_behavior)

    # -- resync paging and check-config ---------------------------------------------------------

    def list_subscriptions_page(
        self, *, starting_after: str | None = None, page_size: int = 100
    ) -> SubscriptionPage:
        """``GET /v1/subscriptions?status=all`` once; the last id is the next page's cursor.

        A raw request: building StripeObjects is most of the client's cost on a large listing
        (about three quarters of it at 10,000 subscriptions), and only plain data is needed.
        """
        params: dict[str, Any] = {"status": "all", "limit": page_size}
        if starting_after:
            params["starting_after"] = starting_after
        response = call(lambda: self.client.raw_request("get", "/v1/subscriptions", **params))
        page: dict[str, Any] = response.data
        subs = [self.to_remote(obj) for obj in page.get("data") or []]
        more = bool(page.get("has_more")) and bool(subs)
        return SubscriptionPage(subs, subs[-1].id if more else None)

    def retrieve_price(self, price_id: str) -> RemotePrice:
        """The price and its product (two GETs: the product's ``active`` is not on the price)."""
        checked = stripe_id(price_id, "price")
        data = plain(call(lambda: self.client.v1.prices.retrieve(checked)))
        recurring = data.get("recurring") or {}
        product = data.get("product")
        product_id = product.get("id") if isinstance(product, dict) else product
        product_active = None
        if product_id:
            product = stripe_id(str(product_id), "product")
            found = plain(call(lambda: self.client.v1.products.retrieve(product)))
            product_active = bool(found.get("active"))
        return RemotePrice(
            id=str(data["id"]),
            active=bool(data.get("active")),
            recurring=bool(recurring),
            interval=recurring.get("interval"),
            interval_count=int(recurring.get("interval_count") or 1),
            currency=data.get("currency"),
            billing_scheme=data.get("billing_scheme"),
            usage_type=recurring.get("usage_type"),
            product_id=str(product_id) if product_id else None,
            product_active=product_active,
        )
