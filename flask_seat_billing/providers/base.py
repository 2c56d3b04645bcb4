"""The one interface the sync engine, routes and CLI use, whichever provider bills.

Provider objects translate between the provider's API and these small frozen records, and
translate the provider's errors into :class:`TransientProviderError` (retry) or
:class:`PermanentProviderError` (record and stop). Nothing above this layer imports ``stripe``
or ``polar``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..plans import Plan, PlanCatalog

ACTIVE_STATUSES = ("active", "trialing")
SUBSCRIBED_STATUSES = ("active", "trialing", "past_due")
ENDED_STATUSES = ("canceled", "incomplete_expired")

# What a subscription's status means for a seat sync (see the README's lifecycle table):
BILLABLE = "billable"  # a quantity update is sent now
HELD = "held"  # not sent now; the change stays owed until the subscription is billable again
ENDED = "ended"  # nothing will ever be billed on it again; nothing is owed to it

# Metadata the extension writes at checkout (server-side) and reads back to prove ownership.
ORGANIZATION_KEY = "organization_id"
PLAN_KEY = "plan"
OWNER_KEY = "seat_billing_owner"
NAMESPACE_KEY = "seat_billing_namespace"


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do; the seed's ``supportsSubscriptionUpdates`` and friends."""

    supports_subscription_updates: bool
    separate_seat_price: bool
    proration_behaviors: frozenset[str]
    idempotency_keys: bool
    billing_portal: bool
    invoice_preview: bool
    native_next_period: bool = False
    seat_types: bool = False
    """Several seat prices on one subscription (``Plan.seat_prices``), one item each."""
    """The provider itself can hold a seat decrease until the renewal (Polar's ``next_period``
    proration); without it the engine waits and lowers the quantity just before the period's end."""


@dataclass(frozen=True)
class RemoteSubscription:
    """A subscription as the provider holds it, reduced to what seat billing needs.

    ``seats`` and ``seat_item_id`` are resolved against the plan catalog by the provider:
    the seat item's quantity on Stripe, the subscription's ``seats`` on Polar.
    """

    id: str
    customer_id: str | None
    status: str
    metadata: dict[str, str]
    price_ids: frozenset[str]
    plan_name: str | None
    seat_item_id: str | None
    seats: int | None
    currency: str | None = None
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    trial_start: datetime | None = None
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    cancel_at: datetime | None = None
    canceled_at: datetime | None = None
    ended_at: datetime | None = None
    organization_hint: str | None = None
    created_at: datetime | None = None
    """When the provider created it: decides "the newest" among equal subscriptions."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    pending_seats: int | None = None
    """Seats the provider will apply at ``pending_at`` (a Polar ``next_period`` update)."""
    pending_at: datetime | None = None
    seats_by_type: dict[str, int] | None = None
    """A plan with ``seat_prices``: each seat type's quantity (0 when it has no item yet);
    ``seats`` is then their total."""
    seat_items_by_type: dict[str, str] | None = None
    """The item id of each seat type that has an item."""

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def owner_tag(self) -> str | None:
        """The ownership tag our checkout wrote into the metadata, if any."""
        return self.metadata.get(OWNER_KEY) or None


@dataclass(frozen=True)
class SeatUpdate:
    """What a seat write sent and got back."""

    subscription: RemoteSubscription
    prorated_amount: int | None = None
    currency: str | None = None
    replayed: bool = False
    """The provider answered from its idempotency store: an earlier request with the same key
    was applied then, and the answer says nothing about the subscription now."""


@dataclass(frozen=True)
class CheckoutRequest:
    """Everything a provider needs to open a checkout for an organization."""

    organization_key: str
    plan: Plan
    seats: int
    success_url: str
    cancel_url: str
    customer_id: str | None
    customer_email: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    """What the provider must put on the subscription server-side: organization, plan, owner."""
    seats_by_type: dict[str, int] | None = None
    """A plan with ``seat_prices``: the billable members of each seat type."""


@dataclass(frozen=True)
class CheckoutSession:
    """A checkout as the provider holds it. ``organization_hint`` comes from the metadata the
    app set through the API only, never from a buyer-settable field (``client_reference_id``,
    Polar's ``external_customer_id``); ``owner_tag`` is the tag that proves the app made it."""

    id: str
    url: str | None
    status: str
    subscription_id: str | None
    customer_id: str | None
    organization_hint: str | None
    plan_name: str | None = None
    owner_tag: str | None = None
    namespace: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class SeatPreview:
    """The cost of moving to ``seats`` now: the prorated amount in minor units."""

    organization_id: Any
    from_seats: int
    to_seats: int
    amount_due_now: int
    prorated_amount: int
    currency: str
    lines: list[dict[str, Any]] = field(default_factory=list)
    seats_from_next_period: int | None = None
    """With ``"at_period_end"`` decreases: the seats billed from the renewal on, while
    ``to_seats`` stays what is billed until then; ``takes_effect_at`` is the renewal."""
    takes_effect_at: datetime | None = None
    from_seats_by_type: dict[str, int] | None = None
    """A plan with seat types: each type's quantity now (``from_seats`` is their total)."""
    to_seats_by_type: dict[str, int] | None = None
    """Each type's quantity billed from now on until the renewal (a decrease that waits for
    the period's end keeps today's), ``to_seats`` their total."""
    seats_from_next_period_by_type: dict[str, int] | None = None
    """With ``"at_period_end"`` decreases: each type's quantity from the renewal on."""


def shown(value: object) -> str:
    """``value`` as an error message may quote it: its repr, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class BillingProvider(ABC):
    """Base class of the Stripe and Polar providers."""

    name: str
    capabilities: Capabilities

    def __init__(self, catalog: PlanCatalog) -> None:
        self.catalog = catalog

    @abstractmethod
    def retrieve_subscription(self, subscription_id: str) -> RemoteSubscription:
        """The subscription as the provider holds it now (read when the local copy can't decide)."""

    @abstractmethod
    def update_seats(
        self,
        subscription: RemoteSubscription,
        quantity: int,
        *,
        proration_behavior: str,
        idempotency_key: str,
    ) -> SeatUpdate:
        """Set the seat quantity; raise a provider error on refusal."""

    @abstractmethod
    def list_subscriptions(self, *, page_size: int = 100) -> Iterator[RemoteSubscription]:
        """Every subscription, in pages (used by resync)."""

    @abstractmethod
    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        """Open a hosted checkout."""

    @abstractmethod
    def retrieve_checkout(self, session_id: str) -> CheckoutSession:
        """A checkout as it stands (for the success page)."""

    def expire_checkout(self, session_id: str) -> CheckoutSession | None:
        """Close an open checkout so it can no longer be paid; None when the provider offers
        no way to (Polar: a checkout stays payable until its ``expires_at``)."""
        return None

    def create_portal(self, customer_id: str, return_url: str) -> str:
        """A billing-portal URL for the customer."""
        raise NotImplementedError(f"{self.name} offers no billing portal")

    def update_seat_types(
        self,
        subscription: RemoteSubscription,
        quantities: dict[str, int],
        *,
        proration_behavior: str,
        idempotency_key: str,
    ) -> SeatUpdate:
        """Set several seat types' quantities in one request (one proration); a type without an
        item yet gets one. Only providers with ``capabilities.seat_types``."""
        raise NotImplementedError(f"{self.name} has no seat types")

    def preview_seat_change(
        self, subscription: RemoteSubscription, quantity: int, *, proration_behavior: str
    ) -> SeatPreview:
        raise NotImplementedError(f"{self.name} cannot preview a seat change")

    def preview_seat_types(
        self, subscription: RemoteSubscription, quantities: dict[str, int], *,
        proration_behavior: str,
    ) -> SeatPreview:
        """What setting several seat types' quantities in one write would cost now (the
        write of :meth:`update_seat_types`); ``to_seats`` is the total after it."""
        raise NotImplementedError(f"{self.name} cannot preview a change of seat types")

    def sync_state(self, subscription: RemoteSubscription) -> str:
        """``billable``, ``held`` or ``ended``: may a seat quantity be sent to it now?

        The default is Stripe's: quantity updates are accepted while ``active``, ``trialing``
        and ``past_due`` (dunning: the customer still uses the seats and the retried invoice
        should carry them); ``unpaid``, ``incomplete`` and ``paused`` are held (no invoices are
        attempted, or the first one is not paid yet); ``canceled`` and ``incomplete_expired``
        have ended. An unknown status is held: never written, never forgotten.
        """
        if subscription.status in ("active", "trialing", "past_due"):
            return BILLABLE
        if subscription.status in ENDED_STATUSES or subscription.ended_at is not None:
            return ENDED
        return HELD

    def proration_for(self, subscription: RemoteSubscription, default: str) -> str:
        """The proration behaviour for a subscription: its plan's own, else the app's default."""
        plan = self.catalog.get(subscription.plan_name) if subscription.plan_name else None
        if plan is not None and plan.proration_behavior:
            return plan.proration_behavior
        return default

    # -- resync and check-config (appended; defaults keep other providers working) -------------

    def list_subscriptions_page(
        self, *, starting_after: str | None = None, page_size: int = 100
    ) -> SubscriptionPage:
        """One page of every subscription, so resync can retry a rate-limited page alone.

        Providers that cannot page by cursor keep this default; resync then falls back to
        :meth:`list_subscriptions` and restarts the listing when a page fails.
        """
        raise NotImplementedError(f"{self.name} cannot list subscriptions page by page")

    def retrieve_price(self, price_id: str) -> RemotePrice:
        """A configured price with its product, for ``flask seats check-config``."""
        raise NotImplementedError(f"{self.name} cannot retrieve prices")


@dataclass(frozen=True)
class SubscriptionPage:
    """One page of a subscription listing; ``next_cursor`` is None on the last page."""

    subscriptions: list[RemoteSubscription]
    next_cursor: str | None


@dataclass(frozen=True)
class RemotePrice:
    """What check-config needs to know about a price: can it bill a plan's seats as configured."""

    id: str
    active: bool
    recurring: bool
    interval: str | None
    interval_count: int
    currency: str | None
    billing_scheme: str | None
    usage_type: str | None
    product_id: str | None
    product_active: bool | None
