"""Plan rules Polar would enforce later, checked at ``init_app`` instead."""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import ConfigurationError
from ...plans import Plan


def check_plans(plans: Sequence[Plan]) -> None:
    """Refuse ``seat_price_id``: Polar bills seats on the product itself, so there is no
    separate seat price to send (``capabilities.separate_seat_price`` is False)."""
    for plan in plans:
        if plan.seat_price_id is not None:
            raise ConfigurationError(
                f"Plan {plan.name!r} sets seat_price_id, which is Stripe-only: Polar bills "
                "seats on the product itself. Remove seat_price_id for Polar."
            )
