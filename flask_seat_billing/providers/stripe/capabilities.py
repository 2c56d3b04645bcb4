"""What Stripe can do, kept apart from the client so the provider table can read it without
importing the ``stripe`` SDK."""

from __future__ import annotations

from ..base import Capabilities

CAPABILITIES = Capabilities(
    supports_subscription_updates=True,
    separate_seat_price=True,
    proration_behaviors=frozenset({"create_prorations", "always_invoice", "none"}),
    idempotency_keys=True,
    billing_portal=True,
    invoice_preview=True,
    seat_types=True,
)
