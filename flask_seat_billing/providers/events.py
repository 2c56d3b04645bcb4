"""A verified webhook delivery as the core sees it: a small event that names no provider's API.

A provider's parser (``providers/<name>/webhooks.py``) checks the signature and reads only what
the core acts on: the event's id and type, and which subscription or checkout it is about. The
payload's copy of the object is never trusted; the dispatcher re-reads it from the provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

MAX_EVENT_ID = 255  # seat_billing_webhook_events.event_id
MAX_EVENT_TYPE = 100  # seat_billing_webhook_events.event_type

# What the dispatcher does with an event:
SUBSCRIPTION_CHANGED = "subscription_changed"  # re-read ``subscription_id`` and store it
CHECKOUT_COMPLETED = "checkout_completed"  # record checkout ``checkout_id`` as completed
RECORD_ONLY = "record_only"  # nothing to re-read: record the event as processed
NOT_HANDLED = "not_handled"  # a type the extension does not act on: acknowledged, "ignored"


@dataclass(frozen=True)
class WebhookEvent:
    """One verified delivery.

    ``malformed`` says why a signed event cannot be used (its object is not an object, its id is
    not an id): no retry can cure that, so it is acknowledged and logged rather than answered
    with an error the provider would retry for days. A ``checkout_completed`` event may name the
    subscription too (Polar's ``subscription.created``): when the checkout turns out not to be
    one this app can record, that subscription is stored as for any change.
    """

    provider: str
    id: str
    type: str
    action: str
    subscription_id: str | None = None
    checkout_id: str | None = None
    malformed: str | None = None


class WebhookRejected(Exception):
    """The delivery is refused; nothing was written. ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class WebhookParser(Protocol):
    """Verify a delivery and read it; raise :class:`WebhookRejected` for anything unsigned."""

    def __call__(
        self, body: bytes, headers: Mapping[str, str], secret: str, tolerance: int
    ) -> WebhookEvent: ...


def storable(event_id: Any, event_type: Any) -> bool:
    """True when the event's id and type are strings the events table can record as given."""
    return (
        isinstance(event_id, str) and 0 < len(event_id) <= MAX_EVENT_ID
        and event_id.isprintable()
        and isinstance(event_type, str) and 0 < len(event_type) <= MAX_EVENT_TYPE
        and event_type.isprintable()
    )
