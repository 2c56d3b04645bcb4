"""The baseline: the seed kit's manual path, reimplemented as a Flask app would write it.

On every member change, in the request, after the commit: count the members, list the
organization's subscriptions from the provider, and set the seat item's quantity. An error is
logged and dropped, as the seed's service does (it rethrows into a policy that swallows it).
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
import stripe

from flask_seat_billing.providers.stripe.transport import http_client

log = logging.getLogger("bench.naive")


class NaiveSeatSync:
    """Count, list, update: one synchronous pass per membership change."""

    def __init__(self, api_base: str, seat_price: str, timeout: float = 5.0) -> None:
        root = api_base.rstrip("/")
        self.client = stripe.StripeClient(
            "sk_test_naive",
            base_addresses={"api": root, "connect": root, "files": root, "meter_events": root},
            max_network_retries=0,
            # The client the library's own provider sends through: the same request machinery
            # on both paths, so the comparison measures the sync, not the HTTP client.
            http_client=http_client(root, timeout),
        )
        self.seat_price = seat_price

    def update_subscription_seats(self, db: Any, member_model: Any, customer: str,
                                  organization_id: Any) -> None:
        try:
            count = db.session.execute(
                sa.select(sa.func.count()).select_from(member_model)
                .where(member_model.organization_id == organization_id,
                       member_model.deleted_at.is_(None))
            ).scalar_one()
            seats = max(1, int(count))
            subs = self.client.v1.subscriptions.list(params={"customer": customer})
            active = next((s for s in subs.data if s.status in ("active", "trialing")), None)
            if active is None:
                return
            item = next(i for i in active["items"]["data"] if i["price"]["id"] == self.seat_price)
            self.client.v1.subscription_items.update(
                item["id"], params={"quantity": seats, "proration_behavior": "create_prorations"}
            )
        except Exception as error:  # the seed: log and move on
            log.debug("naive seat sync failed for %s: %s", organization_id, error)
