"""The Stripe stand-in's side of the shared stand-in interface (:class:`ProviderStandIn`).

On Stripe seats are the quantity of the seat price's subscription item, so a plan is turned into
items here: its base price with quantity 1 and its seat price with the seats (one item for a
seat-only plan). The stand-in remembers the seat price of every plan it subscribed, so
:meth:`seats` needs no plan for those subscriptions.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .._standin.provider import SUBSCRIPTION_STATUSES, ProviderStandIn, StandInCapabilities
from .catalog import create_customer
from .items import ItemChange, apply_changes, plan_changes
from .lifecycle import create_subscription, set_status
from .state import StripeState

if TYPE_CHECKING:
    from ...plans import Plan

__all__ = ["StripeSharedInterface"]

Obj = dict[str, Any]


def _items(plan: Plan, seats: int) -> list[tuple[str, int, dict[str, str]]]:
    if plan.seat_price_id is None:
        return [(plan.plan_id, 1, {})]
    if plan.seat_only:
        return [(plan.seat_price_id, seats, {})]
    return [(plan.plan_id, 1, {}), (plan.seat_price_id, seats, {})]


class StripeSharedInterface(ProviderStandIn):
    """:class:`ProviderStandIn` on Stripe's state; mixed into ``StripeStandIn``."""

    provider_name = "stripe"
    subscription_paths = ("/v1/subscriptions", "/v1/subscription_items")
    event_types: Mapping[str, str] = {
        "created": "customer.subscription.created",
        "updated": "customer.subscription.updated",
        "paused": "customer.subscription.paused",
        "resumed": "customer.subscription.resumed",
        "ended": "customer.subscription.deleted",
    }
    state: StripeState
    _seat_prices: dict[str, str]  # subscription id -> its seat price

    def clock(self) -> datetime:
        """The stand-in's clock (``now()``, unix seconds) as naive UTC."""
        return datetime.fromtimestamp(self.state.now(), timezone.utc).replace(tzinfo=None)

    @property
    def capabilities(self) -> StandInCapabilities:
        from ...providers.stripe.capabilities import CAPABILITIES

        return StandInCapabilities(
            name="Stripe",
            provider=CAPABILITIES,
            statuses=SUBSCRIPTION_STATUSES,
            pause=True,
        )

    def app_config(self, webhook_secret: str | None = None) -> dict[str, Any]:
        config: dict[str, Any] = {
            "SEAT_BILLING_PROVIDER": "stripe",
            "SEAT_BILLING_STRIPE_API_BASE": self.url,
        }
        if webhook_secret is not None:
            config["SEAT_BILLING_STRIPE_WEBHOOK_SECRET"] = webhook_secret
        return config

    def new_webhook_secret(self) -> str:
        """``whsec_`` and 32 random characters, as Stripe makes them."""
        return f"whsec_{secrets.token_hex(16)}"

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
        meta = dict(metadata if metadata is not None else self.organization_metadata(
            organization_id, plan
        ))
        with self.state.lock:
            customer = create_customer(self.state, {})["id"]
            sub = create_subscription(
                self.state, customer, _items(plan, seats), metadata=meta, status=status
            )
            self._remember(sub["id"], plan)
            return str(sub["id"])

    def bulk_subscribe(
        self,
        organization_ids: Iterable[object],
        plan: Plan,
        seats: int = 1,
        *,
        emit_events: bool = False,
    ) -> list[str]:
        ids: list[str] = []
        items = _items(plan, seats)
        with self.state.lock:
            for organization_id in organization_ids:
                customer = create_customer(self.state, {}, emit=emit_events)["id"]
                meta = self.organization_metadata(organization_id, plan)
                sub = create_subscription(
                    self.state, customer, items, metadata=meta, emit=emit_events
                )
                self._remember(sub["id"], plan)
                ids.append(str(sub["id"]))
        return ids

    def seats(self, subscription_id: str, plan: Plan | None = None) -> int:
        with self.state.lock:
            item = self._seat_item(subscription_id, plan)
            return int(item["quantity"])

    def set_seats(self, subscription_id: str, seats: int, plan: Plan | None = None) -> Obj:
        """A dashboard edit of the seat item (``customer.subscription.updated``, prorated)."""
        with self.state.lock:
            sub = self._subscription(subscription_id)
            item = self._seat_item(subscription_id, plan)
            change = ItemChange(item_id=item["id"], price_id=item["price"]["id"], quantity=seats)
            planned = plan_changes(self.state, sub, [change])
            apply_changes(self.state, sub, planned, proration_behavior="create_prorations")
            return copy.deepcopy(sub)

    def subscription_ids(self) -> list[str]:
        with self.state.lock:
            subs = self.state.subscriptions
            return [i for i in subs.order if i in subs.objects]

    def subscription_status(self, subscription_id: str) -> str:
        with self.state.lock:
            return str(self._subscription(subscription_id)["status"])

    def cancel_at_period_end(self, subscription_id: str) -> bool:
        with self.state.lock:
            return bool(self._subscription(subscription_id)["cancel_at_period_end"])

    def current_period_end(self, subscription_id: str) -> datetime:
        with self.state.lock:
            items = self._subscription(subscription_id)["items"]["data"]
            end = min(int(item["current_period_end"]) for item in items)
        return datetime.fromtimestamp(end, timezone.utc).replace(tzinfo=None)

    def set_status(self, subscription_id: str, status: str) -> Obj:
        """Any status, with ``customer.subscription.updated`` (plus ``...paused``,
        ``...resumed``, or ``...deleted`` for ``canceled``)."""
        if status not in SUBSCRIPTION_STATUSES:
            raise ValueError(f"Stripe has no subscription status {status!r}")
        with self.state.lock:
            sub = self._subscription(subscription_id)
            return copy.deepcopy(set_status(self.state, sub, status))

    def customer_of(self, subscription_id: str) -> str:
        with self.state.lock:
            return str(self._subscription(subscription_id)["customer"])

    def checkout_subscription_id(self, checkout_id: str) -> str | None:
        with self.state.lock:
            session = self.state.checkout_sessions.get(checkout_id)
            if session is None:
                raise KeyError(checkout_id)
            found = session.get("subscription")
            return None if found is None else str(found)

    # -- helpers -------------------------------------------------------------------------------
    def _remember(self, subscription_id: str, plan: Plan) -> None:
        if plan.seat_price_id is not None:
            self._seat_prices[subscription_id] = plan.seat_price_id

    def _subscription(self, subscription_id: str) -> Obj:
        sub = self.state.subscriptions.get(subscription_id)
        if sub is None:
            raise KeyError(subscription_id)
        return sub

    def _seat_item(self, subscription_id: str, plan: Plan | None) -> Obj:
        sub = self._subscription(subscription_id)
        items: list[Obj] = sub["items"]["data"]
        price = plan.seat_price_id if plan is not None else self._seat_prices.get(subscription_id)
        if price is None and len(items) == 1:
            return items[0]
        for item in items:
            if item["price"]["id"] == price:
                return item
        if price is None:
            raise KeyError(
                f"{subscription_id} has {len(items)} items; pass the plan to say which holds seats"
            )
        raise KeyError(f"{subscription_id} has no item with price {price}")
