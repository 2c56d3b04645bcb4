"""Polar, through the dated ``polar.v2026_10`` client.

Seats live on the subscription itself (no seat item, no separate seat price): a plan's ``plan_id``
is the Polar product id, and a write sends ``seats`` alone, as Polar refuses seats combined with
other changes. Polar has no idempotency keys and the SDK no retries; the engine's read-before-write
and backoff are what make a retried write safe, so the key the engine passes is not sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from functools import partial
from typing import Any, Literal

from polar.v2026_10 import Polar

from ..plans import PlanCatalog
from .base import (
    BILLABLE,
    ENDED,
    HELD,
    NAMESPACE_KEY,
    ORGANIZATION_KEY,
    OWNER_KEY,
    PLAN_KEY,
    BillingProvider,
    Capabilities,
    CheckoutRequest,
    CheckoutSession,
    RemoteSubscription,
    SeatUpdate,
)
from .ids import polar_id
from .polar_errors import call

PolarProration = Literal["invoice", "prorate"]
PRORATION: dict[str, PolarProration] = {
    "create_prorations": "prorate",
    "always_invoice": "invoice",
    "none": "prorate",  # Polar has no "none": it falls back to prorate, as Polar itself does
}
CHECKOUT_STATUSES = {"succeeded": "complete", "confirmed": "open"}
SANDBOX = "sandbox"


def _time(value: str | None) -> datetime | None:
    """Polar's ISO timestamps as naive UTC, the way the local tables store times."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def _strings(mapping: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(mapping or {}).items()}


def proration_for_polar(behavior: str) -> PolarProration:
    """The Polar ``proration_behavior`` for one of the project's (Stripe-named) behaviours."""
    return PRORATION.get(behavior, "prorate")


def make_client(access_token: str, server_url: str | None, timeout: float) -> Polar:
    """A client for production, the sandbox (``"sandbox"``), or any base URL (a stand-in)."""
    if server_url == SANDBOX:
        return Polar(access_token, environment="sandbox", timeout=timeout)
    if server_url:
        return Polar(access_token, base_url=server_url.rstrip("/"), timeout=timeout)
    return Polar(access_token, timeout=timeout)


class PolarProvider(BillingProvider):
    """The Polar provider; see :mod:`flask_seat_billing.providers.base` for the contract."""

    name = "polar"
    capabilities = Capabilities(
        supports_subscription_updates=True,
        separate_seat_price=False,
        proration_behaviors=frozenset({"create_prorations", "always_invoice"}),
        idempotency_keys=False,
        billing_portal=True,
        invoice_preview=False,
    )

    def __init__(
        self,
        catalog: PlanCatalog,
        *,
        access_token: str,
        server_url: str | None,
        timeout: float,
    ) -> None:
        super().__init__(catalog)
        self.client = make_client(access_token, server_url, timeout)

    # -- reading -----------------------------------------------------------------------------

    def to_remote(self, sub: Any) -> RemoteSubscription:
        """Reduce a Polar ``outputs.Subscription`` to a :class:`RemoteSubscription`."""
        metadata = _strings(sub.metadata)
        product_id = str(sub.product_id)
        plan = self.catalog.match_prices({product_id})
        customer = getattr(sub, "customer", None)
        external_id = getattr(customer, "external_id", None)
        seats = sub.seats
        return RemoteSubscription(
            id=str(sub.id),
            customer_id=sub.customer_id,
            status=str(sub.status),
            metadata=metadata,
            price_ids=frozenset({product_id}),
            plan_name=plan.name if plan else None,  # unknown product: never billed by us
            seat_item_id=None,
            seats=int(seats) if seats is not None else None,
            currency=sub.currency,
            current_period_start=_time(sub.current_period_start),
            current_period_end=_time(sub.current_period_end),
            trial_start=_time(sub.trial_start),
            trial_end=_time(sub.trial_end),
            cancel_at_period_end=bool(sub.cancel_at_period_end),
            cancel_at=_time(sub.ends_at),
            canceled_at=_time(sub.canceled_at),
            ended_at=_time(sub.ended_at),
            # Never external_customer_id: it names a customer, not a proof of ownership.
            organization_hint=metadata.get(ORGANIZATION_KEY),
            created_at=_time(sub.created_at),
            raw={"product_id": product_id, "external_customer_id": external_id},
        )

    def sync_state(self, subscription: RemoteSubscription) -> str:
        """Polar accepts seat updates only on ``active`` and ``trialing`` subscriptions that are
        not canceling (403 otherwise): ``past_due``, ``incomplete``, ``paused`` and a pending
        cancellation are held; ``canceled``, ``unpaid`` and ``incomplete_expired`` have ended."""
        if subscription.status in ("canceled", "unpaid", "incomplete_expired") or (
            subscription.ended_at is not None
        ):
            return ENDED
        if subscription.status in ("active", "trialing") and not subscription.cancel_at_period_end:
            return BILLABLE
        return HELD

    def retrieve_subscription(self, subscription_id: str) -> RemoteSubscription:
        sub_id = polar_id(subscription_id, "subscription")
        return self.to_remote(call(lambda: self.client.subscriptions.get(sub_id)))

    def list_subscriptions(self, *, page_size: int = 100) -> Iterator[RemoteSubscription]:
        limit = max(1, min(page_size, 100))  # Polar refuses limit > 100
        page = 1
        while True:
            result = call(partial(self.client.subscriptions.list, page=page, limit=limit))
            for sub in result.items:
                yield self.to_remote(sub)
            if not result.items or page >= int(result.pagination.max_page):
                return
            page += 1

    # -- writing -----------------------------------------------------------------------------

    def update_seats(
        self,
        subscription: RemoteSubscription,
        quantity: int,
        *,
        proration_behavior: str,
        idempotency_key: str,
    ) -> SeatUpdate:
        """Send ``seats`` alone; ``idempotency_key`` is unused (Polar takes none)."""
        behavior = proration_for_polar(proration_behavior)
        sub_id = polar_id(subscription.id, "subscription")
        updated = call(
            lambda: self.client.subscriptions.update(
                sub_id, seats=quantity, proration_behavior=behavior
            )
        )
        return SeatUpdate(subscription=self.to_remote(updated), currency=subscription.currency)

    # -- checkout, portal --------------------------------------------------------------------

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        plan = request.plan
        success = request.success_url
        if "{CHECKOUT_ID}" not in success:  # Polar fills it in, as Stripe does its session id
            success += ("&" if "?" in success else "?") + "checkout_id={CHECKOUT_ID}"
        # Polar copies checkout metadata to the subscription it creates (``CheckoutCreate``).
        metadata: dict[str, str | int | float | bool] = {
            ORGANIZATION_KEY: request.organization_key, PLAN_KEY: plan.name, **request.metadata,
        }
        customer: dict[str, Any] = (
            {"customer_id": request.customer_id}
            if request.customer_id
            else {"external_customer_id": request.organization_key}
        )
        if request.customer_email and not request.customer_id:
            customer["customer_email"] = request.customer_email
        trial: dict[str, Any] = {}
        if plan.trial_days:  # Stripe's trial_period_days, in Polar's terms (1..1000 days)
            trial = {"trial_interval": "day", "trial_interval_count": plan.trial_days}
        checkout = call(
            lambda: self.client.checkouts.create(
                products=[plan.plan_id],
                seats=max(1, request.seats),
                metadata=metadata,
                success_url=success,
                return_url=request.cancel_url,
                **customer,
                **trial,
            )
        )
        return self._checkout(checkout)

    def _checkout(self, checkout: Any) -> CheckoutSession:
        metadata = _strings(checkout.metadata)
        status = str(checkout.status)
        return CheckoutSession(
            id=str(checkout.id),
            url=checkout.url,
            status=CHECKOUT_STATUSES.get(status, status),
            subscription_id=checkout.subscription_id,
            customer_id=checkout.customer_id,
            organization_hint=metadata.get(ORGANIZATION_KEY),
            plan_name=metadata.get(PLAN_KEY),
            owner_tag=metadata.get(OWNER_KEY) or None,
            namespace=metadata.get(NAMESPACE_KEY) or None,
            expires_at=_time(checkout.expires_at),
        )

    def retrieve_checkout(self, session_id: str) -> CheckoutSession:
        checked = polar_id(session_id, "checkout")
        return self._checkout(call(lambda: self.client.checkouts.get(checked)))

    def create_portal(self, customer_id: str, return_url: str) -> str:
        """Polar's customer portal, opened for the customer through a customer session."""
        session = call(
            lambda: self.client.customer_sessions.create(
                customer_id=customer_id, return_url=return_url
            )
        )
        return str(session.customer_portal_url)
