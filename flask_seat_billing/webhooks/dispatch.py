"""What both providers' webhook handlers share: which failures to acknowledge rather than retry.

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
import re
from collections.abc import Callable
from typing import Any

from ..errors import InvalidProviderId, PermanentProviderError
from ..reconcile import EventRef, already_processed, record_event_only
from ..state import SeatBillingState

log = logging.getLogger("flask_seat_billing.webhooks")

Handler = Callable[[SeatBillingState, EventRef, dict[str, Any]], None]
MAX_EVENT_ID = 255  # seat_billing_webhook_events.event_id
MAX_EVENT_TYPE = 100  # seat_billing_webhook_events.event_type
STRIPE_ID = re.compile(r"[A-Za-z0-9_]{1,255}")
POLAR_ID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")  # a UUID


class MalformedEvent(Exception):
    """A signed event whose content no retry can make usable."""


def storable(event_id: Any, event_type: Any) -> bool:
    """True when the event's id and type are strings the events table can record as given."""
    return (
        isinstance(event_id, str) and 0 < len(event_id) <= MAX_EVENT_ID
        and event_id.isprintable()
        and isinstance(event_type, str) and 0 < len(event_type) <= MAX_EVENT_TYPE
        and event_type.isprintable()
    )


def object_id(value: Any, pattern: re.Pattern[str], what: str) -> str:
    """``value`` if it is an id of the provider's shape, else :class:`MalformedEvent`.

    Numbers, objects and strings with path characters never reach an API call.
    """
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise MalformedEvent(f"{what} is not an id")
    return value


def dispatch(state: SeatBillingState, ref: EventRef, handler: Handler | None, obj: Any) -> str:
    """Run ``handler`` on the event's object; returns ``processed``, ``duplicate`` or
    ``ignored``. Errors a retry may cure propagate (the route answers 500 and the provider
    retries); the rest are acknowledged."""
    if already_processed(state, ref):
        return "duplicate"
    if handler is None:
        return _acknowledge(state, ref)
    try:
        if not isinstance(obj, dict):
            raise MalformedEvent("its object is not a JSON object")
        handler(state, ref, obj)
    except (MalformedEvent, InvalidProviderId) as error:
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
