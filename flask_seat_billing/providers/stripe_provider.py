"""Stripe, through ``stripe.StripeClient`` and its ``client.v1`` services.

Seats are the quantity of the plan's seat item (the item whose price is ``seat_price_id``);
writes address that item directly, as newer API versions require, with a caller-supplied
idempotency key so a retried write after a crash can never apply twice.
"""

from __future__ import annotations

import time
from collections import Counter
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
from .ids import stripe_id
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
            created_at=_time(data.get("created")),
            raw=data,
        )

    def retrieve_subscription(self, subscription_id: str) -> RemoteSubscription:
        sub_id = stripe_id(subscription_id, "subscription")
        obj = call(lambda: self.client.v1.subscriptions.retrieve(sub_id))
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
        if subscription.seat_item_id is None:
            raise ValueError(f"Subscription {subscription.id} has no seat item to update.")
        item_id = stripe_id(subscription.seat_item_id, "subscription item")
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
            expires_at=_time(data.get("expires_at")),
        )

    def retrieve_checkout(self, session_id: str) -> CheckoutSession:
        checked = stripe_id(session_id, "checkout session")
        return self._checkout(call(lambda: self.client.v1.checkout.sessions.retrieve(checked)))

    def expire_checkout(self, session_id: str) -> CheckoutSession:
        """``POST /v1/checkout/sessions/{id}/expire``: the session can no longer be paid."""
        checked = stripe_id(session_id, "checkout session")
        return self._checkout(call(lambda: self.client.v1.checkout.sessions.expire(checked)))

    def create_portal(self, customer_id: str, return_url: str) -> str:
        params = {"customer": customer_id, "return_url": return_url}
        session = call(lambda: self.client.v1.billing_portal.sessions.create(params=params))  # type: ignore[arg-type]
        return str(session.url)

    def preview_seat_change(
        self, subscription: RemoteSubscription, quantity: int, *, proration_behavior: str
    ) -> SeatPreview:
        """The cost of this change alone: what it adds to the invoice, read from every page.

        A preview invoice holds every pending invoice item, so prorations left by earlier
        changes in the period are in it too; summing its proration lines overstates the price.
        Stripe's rule for telling the change's own lines apart (their period starts at the
        ``proration_date`` sent) fails when an earlier change was applied in that same second,
        which is common (a member joins, and the page that follows previews the next seat). So
        two previews at one ``proration_date`` are compared, one with the quantity unchanged:
        the proration lines only the second holds are this change's, whatever else is pending.
        Two requests (plus one per further 100 lines), against one for the inexact rule.
        """
        item_id = subscription.seat_item_id
        if item_id is None:
            raise ValueError(f"Subscription {subscription.id} has no seat item to preview.")
        proration_date = int(time.time())
        behavior = proration_behavior if proration_behavior != "none" else "create_prorations"

        def preview(seats: int) -> dict[str, Any]:
            params: dict[str, Any] = {
                "customer": subscription.customer_id,
                "subscription": subscription.id,
                "subscription_details": {
                    "items": [{"id": item_id, "quantity": seats}],
                    "proration_behavior": behavior,
                    "proration_date": proration_date,
                },
            }
            return _dict(call(lambda: self.client.v1.invoices.create_preview(params=params)))  # type: ignore[arg-type]

        unchanged = preview(subscription.seats if subscription.seats is not None else quantity)
        invoice = preview(quantity)
        already = Counter(_line_key(line) for line in self._proration_lines(unchanged))
        change_lines = []
        for line in self._proration_lines(invoice):
            key = _line_key(line)
            if already[key]:
                already[key] -= 1
            else:
                change_lines.append(line)
        prorated = sum(int(line.get("amount") or 0) for line in change_lines)
        if proration_behavior == "none":
            prorated = 0
        return SeatPreview(
            organization_id=None,
            from_seats=subscription.seats or 0,
            to_seats=quantity,
            amount_due_now=prorated if proration_behavior == "always_invoice" else 0,
            prorated_amount=prorated,
            currency=str(invoice.get("currency") or subscription.currency or "usd"),
            lines=change_lines,
        )

    def _proration_lines(self, invoice: dict[str, Any]) -> list[dict[str, Any]]:
        return [line for line in self._preview_lines(invoice) if _is_proration(line)]

    def _preview_lines(self, invoice: dict[str, Any]) -> list[dict[str, Any]]:
        """Every line of a (preview) invoice: the embedded first page, then the rest in 100s."""
        embedded = invoice.get("lines") or {}
        lines = [_dict(line) for line in embedded.get("data") or []]
        more = bool(embedded.get("has_more"))
        while more and lines:
            invoice_id = stripe_id(invoice.get("id"), "invoice")
            page_params = {"limit": 100, "starting_after": str(lines[-1]["id"])}
            page = call(
                lambda: self.client.v1.invoices.line_items.list(invoice_id, params=page_params)  # type: ignore[arg-type]  # noqa: B023
            )
            lines += [_dict(line) for line in page.data]
            more = bool(page.has_more) and bool(page.data)
        return lines

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
        data = _dict(call(lambda: self.client.v1.prices.retrieve(checked)))
        recurring = data.get("recurring") or {}
        product = data.get("product")
        product_id = product.get("id") if isinstance(product, dict) else product
        product_active = None
        if product_id:
            product = stripe_id(str(product_id), "product")
            found = _dict(call(lambda: self.client.v1.products.retrieve(product)))
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

def _line_key(line: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two preview lines the same charge (line ids differ from preview to preview)."""
    period = line.get("period") or {}
    parent = line.get("parent") or {}
    details = parent.get("subscription_item_details") if isinstance(parent, dict) else None
    item = details.get("subscription_item") if isinstance(details, dict) else None
    return (
        line.get("amount"), line.get("quantity"), period.get("start"), period.get("end"),
        item, line.get("description"),
    )


def _is_proration(line: dict[str, Any]) -> bool:
    if line.get("proration"):
        return True
    parent = line.get("parent") or {}
    for detail in parent.values() if isinstance(parent, dict) else []:
        if isinstance(detail, dict) and detail.get("proration"):
            return True
    return False

