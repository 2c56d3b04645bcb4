"""One open checkout per organization: a second request reuses or closes the first.

Two checkouts opened before either is paid (a second tab, a double click) would each create a
subscription when paid, and the older would keep billing a frozen seat count. So the checkout
id and plan are recorded with the owner tag when the provider answers (``ownership``), and a
new request first reads the organization's open checkouts back from the provider:

- still open, same plan: answered again (its URL), no new checkout;
- still open, another plan: expired first where the provider can (Stripe's
  ``POST /v1/checkout/sessions/{id}/expire``); Polar's API has no way to close a checkout, so
  the request is refused with :class:`CheckoutStillOpen`, naming when the open one expires;
- completed: recorded now (the webhook may not have arrived), so the caller sees the
  subscription and answers "already subscribed";
- expired or failed: forgotten.

Callers hold the organization's lock (``locks``), so two requests cannot both open one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from . import ownership
from .errors import SeatBillingError
from .plans import Plan
from .providers.base import CheckoutSession
from .state import SeatBillingState


class CheckoutStillOpen(SeatBillingError):
    """The organization has an open checkout of another plan that the provider cannot close."""

    def __init__(self, session: CheckoutSession, plan: str | None) -> None:
        until = (f" until {session.expires_at.isoformat(timespec='seconds')} UTC"
                 if session.expires_at else "")
        super().__init__(
            f"A checkout for plan {plan!r} is still open{until}; pay or abandon it "
            "before starting a checkout for another plan."
        )
        self.session = session
        self.expires_at = session.expires_at


@dataclass
class Settled:
    """What the organization's open checkouts came to."""

    reuse: CheckoutSession | None = None
    completed: list[CheckoutSession] = field(default_factory=list)


def settle(state: SeatBillingState, conn: sa.Connection, key: str, plan: Plan) -> Settled:
    """Read each open checkout from the provider and reuse, expire or forget it (see module).

    Commits on ``conn`` after each change; never holds a transaction across a provider call.
    """
    provider = state.provider
    result = Settled()
    for checkout_id, plan_name in ownership.open_checkouts(conn, state.tables, provider.name, key):
        conn.rollback()
        session = provider.retrieve_checkout(checkout_id)
        if session.status == "open" and session.url and result.reuse is None and (
                plan_name == plan.name):
            result.reuse = session
            continue
        if session.status == "open":
            expired = provider.expire_checkout(checkout_id)
            if expired is None:
                raise CheckoutStillOpen(session, plan_name)
            session = expired
        if session.status == "complete":
            result.completed.append(session)
        ownership.close_checkout(conn, state.tables, provider.name, checkout_id, session.status)
        conn.commit()
    return result
