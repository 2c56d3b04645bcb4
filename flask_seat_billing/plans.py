"""Products and plans: what an organization can subscribe to, as in the seed kit's config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Interval = Literal["day", "week", "month", "year"]
ProrationBehavior = Literal["create_prorations", "always_invoice", "none"]
PRORATION_BEHAVIORS: tuple[str, ...] = ("create_prorations", "always_invoice", "none")
SeatDecrease = Literal["immediately", "at_period_end"]
SEAT_DECREASES: tuple[str, ...] = ("immediately", "at_period_end")


@dataclass(frozen=True)
class Plan:
    """One way to pay for a product.

    ``plan_id`` is the provider's base price (Stripe) or product (Polar). ``seat_price_id`` is the
    Stripe per-seat price whose quantity follows membership; equal to ``plan_id`` for a seat-only
    plan (one line item). A plan without ``seat_price_id`` on Stripe is not billed per seat.
    ``limits["seats"]`` caps membership (see the seat-limit policy); ``proration_behavior``
    overrides ``SEAT_BILLING_PRORATION_BEHAVIOR`` for this plan, and ``seat_decrease``
    overrides ``SEAT_BILLING_SEAT_DECREASE`` ("immediately" or "at_period_end": when a lower
    seat count reaches the provider).
    """

    name: str
    plan_id: str
    seat_price_id: str | None = None
    interval: Interval = "month"
    cost: float = 0.0
    display_name: str | None = None
    limits: dict[str, Any] = field(default_factory=dict)
    proration_behavior: ProrationBehavior | None = None
    trial_days: int | None = None
    seat_decrease: SeatDecrease | None = None
    seat_prices: dict[str, str] | None = None
    """Several seat types on one subscription (Stripe): the seat price of each type, e.g.
    ``{"editor": "price_editor_m", "viewer": "price_viewer_m"}``; members are sorted into
    types by ``init_app(seat_type=...)``. Excludes ``seat_price_id``; ``plan_id`` is the base
    price. ``limits["seats"]`` may then be a mapping of caps per type."""
    included_seats: dict[str, int] | None = None
    """With ``seat_prices``: seats of a type that the plan's price includes, e.g.
    ``{"editor": 1}`` (the first editor is not billed as a seat). Types left out include none."""
    minimum_seats: dict[str, int] | None = None
    """With ``seat_prices``: the fewest seats of a type billed, e.g. ``{"editor": 1}`` (the
    type's item never goes below 1). Applied after ``included_seats``; types left out: 0."""

    @property
    def seat_only(self) -> bool:
        """True when the seat price is the whole plan: checkout sends one line item."""
        return self.seat_price_id is not None and self.seat_price_id == self.plan_id

    @property
    def seat_limit(self) -> int | None:
        """The plan's cap on members, or None when membership is not capped (or capped per
        seat type: see :attr:`seat_limits_by_type`)."""
        value = self.limits.get("seats")
        return int(value) if value is not None and not isinstance(value, dict) else None

    @property
    def seat_types(self) -> tuple[str, ...]:
        """The plan's seat types, in a fixed order (empty for a plan of one seat price)."""
        return tuple(sorted(self.seat_prices)) if self.seat_prices else ()

    def billed_total(self, total: int, counts: dict[str, int]) -> int:
        """The billable total (``total``, members of every type and none) as this plan bills
        it: moved by what its included and minimum seats per type take from (or add to) the
        types' ``counts``. The one place the total and the per-type rules meet."""
        if not (self.included_seats or self.minimum_seats):
            return total
        billed = self.billable_by_type(counts)
        return max(0, total + sum(billed.get(k, 0) - counts.get(k, 0) for k in self.seat_types))

    def billable_by_type(self, counts: dict[str, int]) -> dict[str, int]:
        """Members per seat type (``counts``) as billed: for each of the plan's types, the
        members less its ``included_seats``, never below its ``minimum_seats``. Types the plan
        does not price are returned as counted; a type of the plan with no member is present
        only when its minimum bills it."""
        if not self.seat_prices:
            return dict(counts)
        included = self.included_seats or {}
        minimum = self.minimum_seats or {}
        result = dict(counts)
        for kind in self.seat_types:
            n = max(minimum.get(kind, 0), counts.get(kind, 0) - included.get(kind, 0), 0)
            if n or kind in counts:
                result[kind] = n
        return result

    @property
    def seat_limits_by_type(self) -> dict[str, int]:
        """Caps per seat type, when ``limits["seats"]`` is a mapping; types left out are not
        capped."""
        value = self.limits.get("seats")
        return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Product:
    """A product groups plans (monthly, yearly) under one name and currency."""

    id: str
    name: str
    currency: str = "USD"
    plans: list[Plan] = field(default_factory=list)
    description: str | None = None
    features: list[str] = field(default_factory=list)


class PlanCatalog:
    """Every configured plan, indexed the ways the engine needs to find one."""

    def __init__(self, products: list[Product]) -> None:
        self.products = list(products)
        self.by_name: dict[str, Plan] = {}
        self.product_of: dict[str, Product] = {}
        for product in self.products:
            for plan in product.plans:
                self.by_name[plan.name] = plan
                self.product_of[plan.name] = product

    @property
    def plans(self) -> list[Plan]:
        return list(self.by_name.values())

    def get(self, name: str) -> Plan | None:
        return self.by_name.get(name)

    def match_prices(self, price_ids: set[str]) -> Plan | None:
        """The plan a subscription belongs to, judged by the prices on its items.

        A plan matches when its base price is among the items; a seat-priced plan matches best
        when its seat price is there too (plans may share a base price but not a seat price).
        """
        best: Plan | None = None
        for plan in self.by_name.values():
            if plan.seat_prices:
                if plan.plan_id in price_ids and set(plan.seat_prices.values()) & price_ids:
                    return plan
                continue
            if plan.plan_id not in price_ids and plan.seat_price_id not in price_ids:
                continue
            if plan.plan_id in price_ids and (
                plan.seat_price_id is None or plan.seat_price_id in price_ids
            ):
                return plan
            best = best or plan
        return best
