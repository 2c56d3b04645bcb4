"""Plan rules Stripe would enforce later, checked at ``init_app`` instead."""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import ConfigurationError
from ...plans import Plan


def check_plans(plans: Sequence[Plan]) -> None:
    """Refuse two plans of different intervals sharing a seat price: Stripe Checkout rejects
    line items of mixed intervals, so the second plan could never be bought."""
    seat_interval: dict[str, tuple[str, str]] = {}
    for plan in plans:
        if plan.seat_price_id is None:
            continue
        other = seat_interval.get(plan.seat_price_id)
        if other is not None and other[1] != plan.interval:
            raise ConfigurationError(
                f"Plans {other[0]!r} ({other[1]}) and {plan.name!r} ({plan.interval}) share "
                f"seat price {plan.seat_price_id!r}; Stripe Checkout rejects mixed intervals. "
                "Use one seat price per interval."
            )
        seat_interval[plan.seat_price_id] = (plan.name, plan.interval)
