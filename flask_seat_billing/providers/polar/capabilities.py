"""What Polar can do, kept apart from the client so the provider table can read it without
importing the ``polar`` SDK (seconds on a cold start)."""

from __future__ import annotations

from ..base import Capabilities

CAPABILITIES = Capabilities(
    supports_subscription_updates=True,
    separate_seat_price=False,
    proration_behaviors=frozenset({"create_prorations", "always_invoice"}),
    idempotency_keys=False,
    billing_portal=True,
    invoice_preview=False,
    native_next_period=True,
)
