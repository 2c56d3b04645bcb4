"""In-memory records of the Polar stand-in.

These are plain mutable dataclasses guarded by the store's lock, not the SDK's output classes: the
stand-in needs to mutate state cheaply (10,000 subscriptions in benchmarks) and only turns a record
into Polar's JSON shape when it answers a request or emits a webhook (see ``_serialize``).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "Checkout",
    "Customer",
    "CustomerSession",
    "Product",
    "SeatChange",
    "SeatTier",
    "Subscription",
    "add_interval",
]

Metadata = dict[str, Any]


@dataclass(frozen=True)
class SeatTier:
    """One tier of a seat-based price, as Polar models it (``max_seats=None`` is unlimited)."""

    min_seats: int
    max_seats: int | None
    price_per_seat: int


@dataclass
class Product:
    """A recurring product with an optional fixed price and an optional seat-based price.

    Polar keeps seats at subscription level and prices them on the product: there is no separate
    "seat price" to address, so the tiers live here and the price ids exist only for the JSON.
    """

    id: str
    name: str
    created_at: datetime
    seat_tiers: tuple[SeatTier, ...]
    seat_tier_type: str = "volume"
    fixed_price: int | None = None
    currency: str = "usd"
    recurring_interval: str = "month"
    recurring_interval_count: int = 1
    description: str | None = None
    metadata: Metadata = field(default_factory=dict)
    seat_price_id: str = ""
    fixed_price_id: str = ""
    is_archived: bool = False
    visibility: str = "public"
    trial_days: int | None = None
    modified_at: datetime | None = None

    @property
    def is_seat_based(self) -> bool:
        """Whether the product has a seat-based price (only those accept a seats update)."""
        return bool(self.seat_tiers)

    @property
    def minimum_seats(self) -> int:
        """Polar derives the minimum from the first tier."""
        return self.seat_tiers[0].min_seats if self.seat_tiers else 1

    @property
    def maximum_seats(self) -> int | None:
        """Polar derives the maximum from the last tier (``None``: unlimited)."""
        return self.seat_tiers[-1].max_seats if self.seat_tiers else None

    def seat_cost(self, seats: int) -> int:
        """Price of ``seats`` seats for one period, in cents, honouring volume/graduated tiers."""
        if not self.seat_tiers or seats <= 0:
            return 0
        if self.seat_tier_type == "graduated":
            total = 0
            for tier in self.seat_tiers:
                upper = seats if tier.max_seats is None else min(seats, tier.max_seats)
                if upper >= tier.min_seats:
                    total += (upper - tier.min_seats + 1) * tier.price_per_seat
            return total
        for tier in self.seat_tiers:
            if tier.max_seats is None or seats <= tier.max_seats:
                return seats * tier.price_per_seat
        return seats * self.seat_tiers[-1].price_per_seat

    def amount(self, seats: int | None) -> int:
        """Recurring amount of a subscription to this product with ``seats`` seats."""
        return (self.fixed_price or 0) + self.seat_cost(seats or 0)


@dataclass
class Customer:
    """A Polar customer; ``external_id`` is the caller's own id (unique per organization)."""

    id: str
    email: str
    created_at: datetime
    external_id: str | None = None
    name: str | None = None
    metadata: Metadata = field(default_factory=dict)
    modified_at: datetime | None = None


@dataclass
class Subscription:
    """A subscription; ``seq`` is a creation counter used as a stable sort tie-breaker."""

    id: str
    seq: int
    customer_id: str
    product_id: str
    status: str
    seats: int | None
    created_at: datetime
    current_period_start: datetime
    current_period_end: datetime
    started_at: datetime | None
    metadata: Metadata = field(default_factory=dict)
    cancel_at_period_end: bool = False
    canceled_at: datetime | None = None
    ends_at: datetime | None = None
    ended_at: datetime | None = None
    past_due_at: datetime | None = None
    paused_at: datetime | None = None
    trial_start: datetime | None = None
    trial_end: datetime | None = None
    checkout_id: str | None = None
    customer_cancellation_reason: str | None = None
    customer_cancellation_comment: str | None = None
    pending_update_id: str | None = None
    pending_seats: int | None = None
    pending_created_at: datetime | None = None
    assigned_seats: int = 0
    modified_at: datetime | None = None


@dataclass
class Checkout:
    """A checkout session; completing it creates the customer and the subscription."""

    id: str
    client_secret: str
    product_id: str
    product_ids: list[str]
    created_at: datetime
    expires_at: datetime
    seats: int | None
    min_seats: int | None
    max_seats: int | None
    success_url: str
    return_url: str | None = None
    metadata: Metadata = field(default_factory=dict)
    customer_metadata: Metadata = field(default_factory=dict)
    external_customer_id: str | None = None
    customer_id: str | None = None
    customer_email: str | None = None
    customer_name: str | None = None
    status: str = "open"
    subscription_id: str | None = None
    modified_at: datetime | None = None
    trial_interval: str | None = None  # set on the checkout; else the product's trial applies
    trial_interval_count: int | None = None

    def trial(self, product: Product) -> tuple[str, int] | None:
        """The trial this checkout grants: its own if set, else the product's (in days)."""
        if self.trial_interval is not None and self.trial_interval_count is not None:
            return self.trial_interval, self.trial_interval_count
        return ("day", product.trial_days) if product.trial_days else None


@dataclass(frozen=True)
class SeatChange:
    """What a seats update cost: Polar's proration order (``invoice``), a line for the next
    invoice (``prorate``) or a pending update (``next_period``). Kept so tests and the demo can
    show money moving; ``amount`` is negative for a credit."""

    id: str
    subscription_id: str
    customer_id: str
    from_seats: int
    to_seats: int
    proration_behavior: str
    amount: int
    period_fraction: float
    billed: str
    created_at: datetime
    source: str = "api"


@dataclass
class CustomerSession:
    """A customer portal session: its ``token`` authenticates the portal page."""

    id: str
    token: str
    customer_id: str
    created_at: datetime
    expires_at: datetime
    return_url: str | None = None


def add_interval(start: datetime, interval: str, count: int = 1) -> datetime:
    """``start`` plus ``count`` recurring intervals, clamping the day for months and years
    (Jan 31 + 1 month = Feb 28/29), the way billing periods roll."""
    if interval == "day":
        return start + timedelta(days=count)
    if interval == "week":
        return start + timedelta(weeks=count)
    months = count * (12 if interval == "year" else 1)
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)
