"""One webhook path for every provider: dedupe, run the event's handler, acknowledge what no
retry can cure.

A provider retries every delivery that is not answered 2xx, for days. That is right when a retry
can succeed (the database or the provider's API was briefly down) and wrong when it cannot: a
signed event whose object is not an object or whose id is not an id (the same payload arrives
again), or not an id of the kind the event names (``cus_123`` as a subscription, refused by
``providers.ids`` before any request), or an event about an object the provider no longer has
(404). Those are acknowledged,
recorded as processed and logged, so they are seen once instead of as a retry loop.
"""

from __future__ import annotations

import logging

from ..errors import InvalidProviderId, PermanentProviderError
from ..providers.events import NOT_HANDLED, SUBSCRIPTION_CHANGED, WebhookEvent
from ..reconcile import EventRef, lookup, record_event_only
from ..state import SeatBillingState
from .handlers import HANDLERS

log = logging.getLogger("flask_seat_billing.webhooks")


def handle(state: SeatBillingState, event: WebhookEvent) -> str:
    """Process a verified event; returns ``processed``, ``duplicate`` or ``ignored``.

    Errors a retry may cure propagate (the route answers 500 and the provider retries); the
    rest are acknowledged.
    """
    ref = EventRef(event.provider, event.id, event.type)
    # An event about a subscription learns its lock with the dedupe, in the same query.
    about = event.subscription_id if event.action == SUBSCRIPTION_CHANGED else None
    recorded, ref = lookup(state, ref, None if event.malformed else about)
    if recorded:
        return "duplicate"
    if event.malformed:
        log.warning("%s event %s (%s) is acknowledged without effect: %s", ref.provider,
                    ref.event_id, ref.event_type, event.malformed)
        return _acknowledge(state, ref)
    handler = HANDLERS.get(event.action) if event.action != NOT_HANDLED else None
    if handler is None:
        return _acknowledge(state, ref)
    try:
        handler(state, ref, event)
    except InvalidProviderId as error:  # e.g. ``cus_123`` named as a subscription
        log.warning("%s event %s (%s) is acknowledged without effect: %s", ref.provider,
                    ref.event_id, ref.event_type, error)
        return _acknowledge(state, ref)
    except PermanentProviderError as error:
        if error.status != 404:
            raise
        # Deleted test data, another account's id: no retry can ever find it.
        log.warning("%s event %s (%s) names an object the provider does not have: %s",
                    ref.provider, ref.event_id, ref.event_type, error.message)
        return _acknowledge(state, ref)
    return "processed"


def _acknowledge(state: SeatBillingState, ref: EventRef) -> str:
    return "ignored" if record_event_only(state, ref) else "duplicate"
