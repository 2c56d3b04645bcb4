"""Helpers shared by subscription creation, item changes and lifecycle changes."""

from __future__ import annotations

import calendar
import copy
from datetime import datetime, timezone
from typing import Any

from .errors import StripeError
from .state import StripeState

__all__ = [
    "add_interval",
    "check_compatible",
    "current_period",
    "ensure_updatable",
    "items_of",
    "new_item",
    "recurring_price",
]

Obj = dict[str, Any]


def add_interval(ts: int, interval: str, count: int = 1) -> int:
    """``ts`` plus ``count`` intervals; months clamp the day (Jan 31 + 1 month = Feb 28/29)."""
    if interval == "day":
        return ts + 86400 * count
    if interval == "week":
        return ts + 7 * 86400 * count
    when = datetime.fromtimestamp(ts, tz=timezone.utc)
    months = count * (12 if interval == "year" else 1)
    year, month = divmod(when.month - 1 + months, 12)
    year += when.year
    day = min(when.day, calendar.monthrange(year, month + 1)[1])
    return int(when.replace(year=year, month=month + 1, day=day).timestamp())


def check_compatible(prices: list[Obj], param: str = "items") -> None:
    """All items of a subscription must share currency and billing interval, as Stripe insists."""
    if len({p["currency"] for p in prices}) > 1:
        raise StripeError(
            "Currency and interval fields must match across all plans on this subscription. "
            "Found mismatch in currency field.",
            param=param,
        )
    intervals = {(p["recurring"]["interval"], p["recurring"]["interval_count"]) for p in prices}
    if len(intervals) > 1:
        raise StripeError(
            "Currency and interval fields must match across all plans on this subscription. "
            "Found mismatch in interval field.",
            param=param,
        )


def recurring_price(state: StripeState, price_id: str, param: str) -> Obj:
    """A price usable on a subscription (it must exist and be recurring)."""
    price = state.prices.require(price_id, param)
    if price["recurring"] is None:
        raise StripeError(
            "The price specified is set to `type=one_time` but this field only accepts prices "
            f"with `type=recurring`: {price_id}",
            param=param,
        )
    return price


def items_of(sub: Obj) -> list[Obj]:
    """The subscription's item dicts (the same objects as in ``state.items``)."""
    items: list[Obj] = sub["items"]["data"]
    return items


def new_item(
    state: StripeState,
    sub: Obj,
    price: Obj,
    quantity: int,
    metadata: dict[str, str],
    period: tuple[int, int],
) -> Obj:
    """Create a subscription item; it embeds a copy of the full price, as the API returns it."""
    item: Obj = {
        "id": state.new_id("si"),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": state.now(),
        "current_period_end": period[1],
        "current_period_start": period[0],
        "discounts": [],
        "metadata": dict(metadata),
        "price": copy.deepcopy(price),
        "quantity": quantity,
        "subscription": sub["id"],
        "tax_rates": [],
    }
    state.items.add(item)
    items_of(sub).append(item)
    sub["items"]["total_count"] = len(items_of(sub))
    return item


def current_period(sub: Obj) -> tuple[int, int]:
    """The subscription's current period, taken from its items (where API 2025+ keeps it)."""
    first = items_of(sub)[0]
    return int(first["current_period_start"]), int(first["current_period_end"])


def ensure_updatable(sub: Obj) -> None:
    """Stripe refuses changes (other than metadata) to a canceled subscription."""
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise StripeError(
            "A canceled subscription can only update its cancellation_details and metadata. "
            f"This subscription ({sub['id']}) is {sub['status']}.",
        )
