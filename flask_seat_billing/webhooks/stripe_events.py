"""Stripe webhooks: signature first, then one small handler per event type.

Handlers never trust the payload's copy of an object: they re-read the subscription (or the
checkout session) from Stripe, so an old event arriving late cannot roll state back. Each event
id is recorded in the same transaction as its changes; a duplicate is acknowledged and ignored.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import stripe

from ..checkout import record_completed_checkout
from ..reconcile import EventRef, apply_subscription, record_event_only
from ..state import SeatBillingState
from .dispatch import STRIPE_ID, Handler, dispatch, object_id, storable
from .intake import WebhookRejected

TIMESTAMP = re.compile(r"[0-9]{1,15}")


def _timestamp(header: str) -> int:
    """The ``t=`` value, read as the SDK reads it (first ``t``), but only plain ASCII digits:
    the SDK's ``int()`` takes ``1_7``, signs and Unicode digits, and hundreds of digits do not
    fit a float in a subtraction from ``time.time()``."""
    stamps = [p.split("=", 2) for p in header.split(",")]
    found = [p[1] for p in stamps if len(p) > 1 and p[0] == "t"]
    if not found or not TIMESTAMP.fullmatch(found[0]):
        raise WebhookRejected(400, "Malformed Stripe-Signature header.")
    return int(found[0])


def verify(payload: bytes, header: str | None, secret: str, tolerance: int) -> dict[str, Any]:
    """The event, if ``Stripe-Signature`` signs ``payload`` recently enough; else reject.

    The signature itself is checked by ``stripe.WebhookSignature``; the timestamp is checked
    here first because the SDK lets future timestamps through.
    """
    if not header:
        raise WebhookRejected(400, "Missing Stripe-Signature header.")
    if not (header.isascii() and header.isprintable()):
        # The SDK compares signatures as str with hmac.compare_digest, which raises TypeError
        # on non-ASCII text: a signature is hex, so anything else is refused before it.
        raise WebhookRejected(400, "Malformed Stripe-Signature header.")
    timestamp = _timestamp(header)
    now = int(time.time())
    if not now - tolerance <= timestamp <= now + tolerance:
        raise WebhookRejected(400, "Stripe-Signature timestamp outside the tolerance.")
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(text, header, secret, tolerance)
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        raise WebhookRejected(400, "Invalid Stripe-Signature.") from None
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):
        raise WebhookRejected(400, "Webhook body is not valid JSON.") from None
    if not isinstance(event, dict) or not storable(event.get("id"), event.get("type")):
        raise WebhookRejected(400, "Webhook body is not a Stripe event.")
    return event


def _subscription_changed(state: SeatBillingState, ref: EventRef, obj: dict[str, Any]) -> None:
    apply_subscription(state, object_id(obj.get("id"), STRIPE_ID, "the subscription id"),
                       event=ref)


def _invoice(state: SeatBillingState, ref: EventRef, obj: dict[str, Any]) -> None:
    subscription = obj.get("subscription")
    if not subscription:
        parent = obj.get("parent")
        details = parent.get("subscription_details") if isinstance(parent, dict) else None
        subscription = details.get("subscription") if isinstance(details, dict) else None
    if isinstance(subscription, dict):
        subscription = subscription.get("id")
    if subscription:
        apply_subscription(state, object_id(subscription, STRIPE_ID, "the invoice's subscription"),
                           event=ref)
    else:
        record_event_only(state, ref)


def _checkout_completed(state: SeatBillingState, ref: EventRef, obj: dict[str, Any]) -> None:
    mode = obj.get("mode")
    if mode is not None and mode != "subscription":
        record_event_only(state, ref)
        return
    session_id = object_id(obj.get("id"), STRIPE_ID, "the checkout session id")
    session = state.provider.retrieve_checkout(session_id)
    if record_completed_checkout(state, session, event=ref, source="webhook") is None:
        record_event_only(state, ref)


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": _checkout_completed,
    "invoice.paid": _invoice,
    "invoice.payment_failed": _invoice,
    **{
        f"customer.subscription.{name}": _subscription_changed
        for name in (
            "created", "updated", "deleted", "paused", "resumed",
            "pending_update_applied", "pending_update_expired",
        )
    },
}


def handle(state: SeatBillingState, event: dict[str, Any]) -> str:
    """Process a verified event; returns ``processed``, ``duplicate`` or ``ignored``."""
    ref = EventRef("stripe", str(event["id"]), str(event["type"]))
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    return dispatch(state, ref, HANDLERS.get(ref.event_type), obj)
