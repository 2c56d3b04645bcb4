"""One small handler per kind of neutral event, in one table; each re-reads what it is about.

The payload's copy of an object is never trusted: the subscription (or the checkout) is read
again from the provider, under the organization's lock (:mod:`..reconcile`), so an old event
arriving late cannot roll state back, and the event id is recorded in the same transaction as
the changes it caused.
"""

from __future__ import annotations

from collections.abc import Callable

from ..checkout import record_completed_checkout
from ..providers.events import CHECKOUT_COMPLETED, RECORD_ONLY, SUBSCRIPTION_CHANGED, WebhookEvent
from ..reconcile import EventRef, apply_subscription, record_event_only
from ..state import SeatBillingState

Handler = Callable[[SeatBillingState, EventRef, WebhookEvent], None]


def subscription_changed(state: SeatBillingState, ref: EventRef, event: WebhookEvent) -> None:
    assert event.subscription_id is not None  # the parser names it or marks the event malformed
    apply_subscription(state, event.subscription_id, event=ref)


def checkout_completed(state: SeatBillingState, ref: EventRef, event: WebhookEvent) -> None:
    """Record the checkout as completed (``checkout_completed`` signal, after-checkout hooks, a
    follow-up sync); if it is not one that can be (not complete, or about another
    subscription), store the subscription the event names, else only record the event."""
    assert event.checkout_id is not None
    session = state.provider.retrieve_checkout(event.checkout_id)
    if event.subscription_id is None or session.subscription_id == event.subscription_id:
        if record_completed_checkout(state, session, event=ref, source="webhook") is not None:
            return
    if event.subscription_id is not None:
        apply_subscription(state, event.subscription_id, event=ref)
    else:
        record_event_only(state, ref)


def record_only(state: SeatBillingState, ref: EventRef, event: WebhookEvent) -> None:
    record_event_only(state, ref)


HANDLERS: dict[str, Handler] = {
    SUBSCRIPTION_CHANGED: subscription_changed,
    CHECKOUT_COMPLETED: checkout_completed,
    RECORD_ONLY: record_only,
}
