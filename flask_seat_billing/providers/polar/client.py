"""Polar, through the dated ``polar.v2026_10`` client.

Seats live on the subscription itself (no seat item, no separate seat price): a plan's ``plan_id``
is the Polar product id, and a write sends ``seats`` alone, as Polar refuses seats combined with
other changes. Polar has no idempotency keys and the SDK no retries; the engine reads first
after a write whose outcome is unknown, and backs off, which is what makes a retried write safe,
so the key the engine passes is not sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any, Literal

from polar.v2026_10 import Polar

from ...plans import PlanCatalog
from ..base import (
    BILLABLE,
    ENDED,
    HELD,
    ORGANIZATION_KEY,
    BillingProvider,
    CheckoutRequest,
    CheckoutSession,
    RemoteSubscription,
    SeatUpdate,
)
from . import checkout
from .capabilities import CAPABILITIES
from .data import strings, timestamp
from .errors import call
from .ids import polar_id
from .settings import SANDBOX

PolarProration = Literal["invoice", "prorate", "next_period"]
PRORATION: dict[str, PolarProration] = {
    "create_prorations": "prorate",
    "always_invoice": "invoice",
    "none": "prorate",  # Polar has no "none": it falls back to prorate, as Polar itself does
    "next_period": "next_period",  # a seat decrease held by Polar until the renewal
}



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
    capabilities = CAPABILITIES

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
        metadata = strings(sub.metadata)
        product_id = str(sub.product_id)
        plan = self.catalog.match_prices({product_id})
        customer = getattr(sub, "customer", None)
        external_id = getattr(customer, "external_id", None)
        seats = sub.seats
        pending = getattr(sub, "pending_update", None)
        pending_seats = getattr(pending, "seats", None)
        pending_at = getattr(pending, "applies_at", None)
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
            current_period_start=timestamp(sub.current_period_start),
            current_period_end=timestamp(sub.current_period_end),
            trial_start=timestamp(sub.trial_start),
            trial_end=timestamp(sub.trial_end),
            cancel_at_period_end=bool(sub.cancel_at_period_end),
            cancel_at=timestamp(sub.ends_at),
            canceled_at=timestamp(sub.canceled_at),
            ended_at=timestamp(sub.ended_at),
            # Never external_customer_id: it names a customer, not a proof of ownership.
            organization_hint=metadata.get(ORGANIZATION_KEY),
            created_at=timestamp(sub.created_at),
            raw={"product_id": product_id, "external_customer_id": external_id},
            pending_seats=int(pending_seats) if pending_seats is not None else None,
            pending_at=timestamp(pending_at) if pending_seats is not None else None,
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
        return checkout.create_checkout(self.client, request)

    def retrieve_checkout(self, session_id: str) -> CheckoutSession:
        return checkout.retrieve_checkout(self.client, session_id)

    def create_portal(self, customer_id: str, return_url: str) -> str:
        """Polar's customer portal, opened for the customer through a customer session."""
        return checkout.create_portal(self.client, customer_id, return_url)
