"""Stripe, through ``stripe.StripeClient`` and its ``client.v1`` services.

Seats are the quantity of the plan's seat item (the item whose price is ``seat_price_id``);
writes address that item directly, as newer API versions require, with a caller-supplied
idempotency key so a retried write after a crash can never apply twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import stripe

from ..plans import PlanCatalog
from .base import (
    NAMESPACE_KEY,
    ORGANIZATION_KEY,
    OWNER_KEY,
    PLAN_KEY,
    BillingProvider,
    Capabilities,
    CheckoutRequest,
    CheckoutSession,
    RemotePrice,
    RemoteSubscription,
    SeatPreview,
    SeatUpdate,
    SubscriptionPage,
)
from .stripe_errors import call


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(int(value), timezone.utc).replace(tzinfo=None)


def _dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict) and not isinstance(obj, stripe.StripeObject):
        return obj
    result: dict[str, Any] = obj.to_dict()
    return result


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
    capabilities = Capabilities(
        supports_subscription_updates=True,
        separate_seat_price=True,
        proration_behaviors=frozenset({"create_prorations", "always_invoice", "none"}),
        idempotency_keys=True,
        billing_portal=True,
        invoice_preview=True,
    )

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
        if api_base:
            root = api_base.rstrip("/")
            base = {"api": root, "connect": root, "files": root, "meter_events": root}
        self.client = stripe.StripeClient(
            api_key,
            base_addresses=base,  # type: ignore[arg-type]
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    # -- reading -----------------------------------------------------------------------------

    def to_remote(self, obj: Any) -> RemoteSubscription:
        """Reduce a Stripe subscription object to a :class:`RemoteSubscription`."""
        data = _dict(obj)
        items = [_dict(i) for i in (data.get("items") or {}).get("data", [])]
        price_ids = frozenset(str((i.get("price") or {}).get("id")) for i in items)
        plan = self.catalog.match_prices(set(price_ids))
        seat_item = None
        if plan is not None and plan.seat_price_id:
            seat_item = next(
                (i for i in items if (i.get("price") or {}).get("id") == plan.seat_price_id), None
            )
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
            seats=int(seat_item["quantity"]) if seat_item else None,
            currency=data.get("currency"),
            current_period_start=_time(period_item.get("current_period_start")),
            current_period_end=_time(period_item.get("current_period_end")),
            trial_start=_time(data.get("trial_start")),
            trial_end=_time(data.get("trial_end")),
            cancel_at_period_end=bool(data.get("cancel_at_period_end")),
            cancel_at=_time(data.get("cancel_at")),
            canceled_at=_time(data.get("canceled_at")),
            ended_at=_time(data.get("ended_at")),
            organization_hint=metadata.get(ORGANIZATION_KEY),
            raw=data,
        )

    def retrieve_subscription(self, subscription_id: str) -> RemoteSubscription:
        obj = call(lambda: self.client.v1.subscriptions.retrieve(subscription_id))
        return self.to_remote(obj)

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
        item_id = subscription.seat_item_id
        if item_id is None:
            raise ValueError(f"Subscription {subscription.id} has no seat item to update.")
        params = {"quantity": quantity, "proration_behavior": proration_behavior}
        updated = call(
            lambda: self.client.v1.subscription_items.update(
                item_id,
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        )
        new_quantity = int(_dict(updated).get("quantity") or quantity)
        item = self._seat_item(subscription)
        amount = None
        if proration_behavior != "none" and subscription.seats is not None:
            amount = prorated_amount(item, new_quantity - subscription.seats)
        return SeatUpdate(
            subscription=replace(subscription, seats=new_quantity),
            prorated_amount=amount,
            currency=subscription.currency,
        )

    # -- checkout, portal, preview ------------------------------------------------------------

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        plan = request.plan
        seats = max(1, request.seats)
        if plan.seat_only:
            line_items = [{"price": plan.seat_price_id, "quantity": seats}]
        elif plan.seat_price_id:
            line_items = [
                {"price": plan.plan_id, "quantity": 1},
                {"price": plan.seat_price_id, "quantity": seats},
            ]
        else:
            line_items = [{"price": plan.plan_id, "quantity": 1}]
        metadata = {ORGANIZATION_KEY: request.organization_key, PLAN_KEY: plan.name,
                    **request.metadata}
        subscription_data: dict[str, Any] = {"metadata": metadata}
        if plan.trial_days:
            subscription_data["trial_period_days"] = plan.trial_days
        params: dict[str, Any] = {
            "mode": "subscription",
            "line_items": line_items,
            "client_reference_id": request.organization_key,
            "metadata": metadata,
            "subscription_data": subscription_data,
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
        }
        if request.customer_id:
            params["customer"] = request.customer_id
        elif request.customer_email:
            params["customer_email"] = request.customer_email
        session = call(lambda: self.client.v1.checkout.sessions.create(params=params))  # type: ignore[arg-type]
        return self._checkout(session)

    def _checkout(self, session: Any) -> CheckoutSession:
        data = _dict(session)
        subscription = data.get("subscription")
        if isinstance(subscription, dict):
            subscription = subscription.get("id")
        customer = data.get("customer")
        if isinstance(customer, dict):
            customer = customer.get("id")
        metadata = data.get("metadata") or {}
        # Never client_reference_id: a Payment Link or the pricing table lets the buyer set it.
        return CheckoutSession(
            id=str(data["id"]),
            url=data.get("url"),
            status=str(data.get("status")),
            subscription_id=subscription,
            customer_id=customer,
            organization_hint=metadata.get(ORGANIZATION_KEY),
            plan_name=metadata.get(PLAN_KEY),
            owner_tag=metadata.get(OWNER_KEY) or None,
            namespace=metadata.get(NAMESPACE_KEY) or None,
        )

    def retrieve_checkout(self, session_id: str) -> CheckoutSession:
        return self._checkout(call(lambda: self.client.v1.checkout.sessions.retrieve(session_id)))

    def create_portal(self, customer_id: str, return_url: str) -> str:
        params = {"customer": customer_id, "return_url": return_url}
        session = call(lambda: self.client.v1.billing_portal.sessions.create(params=params))  # type: ignore[arg-type]
        return str(session.url)

    def preview_seat_change(
        self, subscription: RemoteSubscription, quantity: int, *, proration_behavior: str
    ) -> SeatPreview:
        proration_date = int(time.time())
        params: dict[str, Any] = {
            "customer": subscription.customer_id,
            "subscription": subscription.id,
            "subscription_details": {
                "items": [{"id": subscription.seat_item_id, "quantity": quantity}],
                "proration_behavior": proration_behavior
                if proration_behavior != "none"
                else "create_prorations",
                "proration_date": proration_date,
            },
        }
        invoice = _dict(call(lambda: self.client.v1.invoices.create_preview(params=params)))  # type: ignore[arg-type]
        lines = [_dict(line) for line in (invoice.get("lines") or {}).get("data", [])]
        proration_lines = [line for line in lines if _is_proration(line)]
        prorated = sum(int(line.get("amount") or 0) for line in proration_lines)
        if proration_behavior == "none":
            prorated = 0
        return SeatPreview(
            organization_id=None,
            from_seats=subscription.seats or 0,
            to_seats=quantity,
            amount_due_now=prorated if proration_behavior == "always_invoice" else 0,
            prorated_amount=prorated,
            currency=str(invoice.get("currency") or subscription.currency or "usd"),
            lines=proration_lines,
        )

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
        data = _dict(call(lambda: self.client.v1.prices.retrieve(price_id)))
        recurring = data.get("recurring") or {}
        product = data.get("product")
        product_id = product.get("id") if isinstance(product, dict) else product
        product_active = None
        if product_id:
            found = _dict(call(lambda: self.client.v1.products.retrieve(str(product_id))))
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

def _is_proration(line: dict[str, Any]) -> bool:
    if line.get("proration"):
        return True
    parent = line.get("parent") or {}
    for detail in parent.values() if isinstance(parent, dict) else []:
        if isinstance(detail, dict) and detail.get("proration"):
            return True
    return False

