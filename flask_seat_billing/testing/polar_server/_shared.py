"""The Polar stand-in's side of the shared stand-in interface (:class:`ProviderStandIn`).

On Polar seats live on the subscription and a plan's ``plan_id`` is the product, so there is
nothing to resolve: an organization's subscription is created for its external customer id
(the organization id), as the library's checkout does.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .._standin.provider import SUBSCRIPTION_STATUSES, ProviderStandIn, StandInCapabilities
from . import _lifecycle as life
from ._store import PolarStore
from ._webhooks import generate_secret, signature_headers

if TYPE_CHECKING:
    from ...plans import Plan

__all__ = ["PolarSharedInterface"]

JSON = dict[str, Any]


class PolarSharedInterface(ProviderStandIn):
    """:class:`ProviderStandIn` on Polar's store; mixed into ``PolarStandIn``."""

    provider_name = "polar"
    subscription_paths = ("/v1/subscriptions",)
    event_types: Mapping[str, str] = {
        "created": "subscription.created",
        "updated": "subscription.updated",
        "paused": "subscription.paused",
        "resumed": "subscription.resumed",
        "ended": "subscription.revoked",
    }
    _store: PolarStore

    def clock(self) -> datetime:
        """The store's clock (aware, as Polar prints it) as naive UTC."""
        return self._store.clock().astimezone(timezone.utc).replace(tzinfo=None)

    def advance_time(self, seconds: float) -> list[str]:
        """Shift the store's clock by ``seconds`` and renew every live subscription whose
        period has ended (``subscription.cycled``: a pending ``next_period`` update applies,
        a canceling subscription ends), as often as periods ended."""
        store = self._store
        renewed: list[str] = []
        with store.lock:
            base, delta = store.clock, timedelta(seconds=seconds)
            store.clock = lambda: base() + delta
            now = store.clock()
            for sub in list(store.subscriptions.values()):
                while sub.status in ("active", "trialing", "past_due") and (
                    sub.ended_at is None and sub.current_period_end <= now
                ):
                    life.cycle(store, sub)
                    renewed.append(sub.id)
        return renewed

    @property
    def capabilities(self) -> StandInCapabilities:
        from ...providers.polar.capabilities import CAPABILITIES

        return StandInCapabilities(
            name="Polar",
            provider=CAPABILITIES,
            statuses=SUBSCRIPTION_STATUSES,
            pause=True,
            # Polar ends an unpaid subscription (it is revoked); on Stripe it can still recover.
            final_statuses=frozenset({"canceled", "unpaid", "incomplete_expired"}),
            absent={
                "separate_seat_price": "Polar keeps seats on the subscription, not on a price",
                "invoice_preview": "Polar has no invoice preview for a seat change",
                "idempotency_keys": "Polar's API takes no idempotency keys",
                "proration:none": "Polar has no 'none' proration; it falls back to 'prorate'",
                "seat_types": "Polar has one seat count per subscription, no seat prices per type",
            },
        )

    def app_config(self, webhook_secret: str | None = None) -> dict[str, Any]:
        config: dict[str, Any] = {
            "SEAT_BILLING_PROVIDER": "polar",
            "SEAT_BILLING_POLAR_SERVER_URL": self.url,
        }
        if webhook_secret is not None:
            config["SEAT_BILLING_POLAR_WEBHOOK_SECRET"] = webhook_secret
        return config

    def new_webhook_secret(self) -> str:
        """A secret shaped like Polar's (``polar_whs_...``)."""
        return generate_secret()

    # -- subscriptions -------------------------------------------------------------------------
    def subscribe(
        self,
        organization_id: object,
        plan: Plan,
        seats: int,
        *,
        status: str = "active",
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Created for the external customer ``str(organization_id)`` (found or created)."""
        meta = dict(metadata if metadata is not None else self.organization_metadata(
            organization_id, plan
        ))
        store = self._store
        external_id = str(organization_id)
        with store.lock:
            product = store.product(plan.plan_id)
            if external_id in store.customers_by_external:
                customer = store.customer_by_external(external_id)
            else:
                customer = store.add_customer(external_id=external_id)
            initial = status if status in ("active", "trialing") else "active"
            sub = store.add_subscription(product, customer, seats, status=initial, metadata=meta)
            if status != initial:
                life.set_status(store, sub, status)
            return sub.id

    def bulk_subscribe(
        self,
        organization_ids: Iterable[object],
        plan: Plan,
        seats: int = 1,
        *,
        emit_events: bool = False,
    ) -> list[str]:
        store = self._store
        ids: list[str] = []
        with store.lock:
            product = store.product(plan.plan_id)
            for organization_id in organization_ids:
                customer = store.add_customer(external_id=str(organization_id))
                meta = self.organization_metadata(organization_id, plan)
                sub = store.add_subscription(
                    product, customer, seats, metadata=meta, emit=emit_events
                )
                ids.append(sub.id)
        return ids

    def seats(self, subscription_id: str, plan: Plan | None = None) -> int:
        """Current seats (0 for a subscription without seat pricing)."""
        with self._store.lock:
            return self._store.subscription(subscription_id).seats or 0

    def set_seats(self, subscription_id: str, seats: int, plan: Plan | None = None) -> JSON:
        """Change seats as from Polar's dashboard: no refusals or charges, recorded as a
        ``prorate`` change with source ``"dashboard"``; emits ``subscription.updated``."""
        return self._apply(subscription_id, life.force_seats, seats)

    def subscription_status(self, subscription_id: str) -> str:
        with self._store.lock:
            return self._store.subscription(subscription_id).status

    def cancel_at_period_end(self, subscription_id: str) -> bool:
        with self._store.lock:
            return self._store.subscription(subscription_id).cancel_at_period_end

    def current_period_end(self, subscription_id: str) -> datetime:
        with self._store.lock:
            end = self._store.subscription(subscription_id).current_period_end
        return end.astimezone(timezone.utc).replace(tzinfo=None) if end.tzinfo else end

    def set_status(self, subscription_id: str, status: str) -> JSON:
        """Move to ``past_due`` (``subscription.past_due``), back to ``active``
        (``subscription.active``), ``paused`` (``subscription.paused``; ``active`` again is
        ``subscription.resumed``, in a new period), ``unpaid`` or ``canceled``
        (``subscription.revoked``) ..."""
        if status not in SUBSCRIPTION_STATUSES:
            raise ValueError(f"Polar has no subscription status {status!r}")
        return self._apply(subscription_id, life.set_status, status)

    def customer_of(self, subscription_id: str) -> str:
        with self._store.lock:
            return self._store.subscription(subscription_id).customer_id

    def checkout_subscription_id(self, checkout_id: str) -> str | None:
        with self._store.lock:
            return self._store.checkout(checkout_id).subscription_id

    def webhook_headers(
        self, payload: bytes, secret: str, *, event_id: str, timestamp: int | None = None
    ) -> dict[str, str]:
        """Standard Webhooks' ``webhook-id`` / ``-timestamp`` / ``-signature``, as Polar signs."""
        ts = int(time.time()) if timestamp is None else timestamp
        headers = signature_headers(payload, secret, ts, event_id=event_id)
        return {**headers, "Content-Type": "application/json"}

    # -- helpers -------------------------------------------------------------------------------
    def _apply(self, subscription_id: str, action: Callable[..., Any], *args: Any) -> JSON:
        store = self._store
        with store.lock:
            sub = store.subscription(subscription_id)
            action(store, sub, *args)
            return copy.deepcopy(store.subscription_json(sub))
