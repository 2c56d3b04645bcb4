"""Stripe webhooks: signature first, then one small handler per event type.

Handlers never trust the payload's copy of an object: they re-read the subscription (or the
checkout session) from Stripe, so an old event arriving late cannot roll state back. Each event
id is recorded in the same transaction as its changes; a duplicate is acknowledged and ignored.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import stripe

from ..checkout import record_completed_checkout
from ..errors import PermanentProviderError
from ..reconcile import EventRef, already_processed, apply_subscription, record_event_only
from ..state import SeatBillingState
from .intake import WebhookRejected

log = logging.getLogger("flask_seat_billing.webhooks")

Handler = Callable[[SeatBillingState, EventRef, dict[str, Any]], None]


def verify(payload: bytes, header: str | None, secret: str, tolerance: int) -> dict[str, Any]:
    """The event, if ``Stripe-Signature`` signs ``payload`` recently enough; else reject."""
    if not header:
        raise WebhookRejected(400, "Missing Stripe-Signature header.")
    stamps = [p.split("=", 1)[1] for p in header.split(",") if p.strip().startswith("t=")]
    try:
        timestamp = int(stamps[0])
    except (IndexError, ValueError):
        raise WebhookRejected(400, "Malformed Stripe-Signature header.") from None
    if abs(time.time() - timestamp) > tolerance:  # the SDK lets future timestamps through
        raise WebhookRejected(400, "Stripe-Signature timestamp outside the tolerance.")
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(text, header, secret, tolerance)
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        raise WebhookRejected(400, "Invalid Stripe-Signature.") from None
    try:
        event = json.loads(text)
    except ValueError:
        raise WebhookRejected(400, "Webhook body is not valid JSON.") from None
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        raise WebhookRejected(400, "Webhook body is not a Stripe event.")
    return event


def _subscription_changed(state: SeatBillingState, ref: EventRef, obj: dict[str, Any]) -> None:
    apply_subscription(state, str(obj["id"]), event=ref)


def _invoice(state: SeatBillingState, ref: EventRef, obj: dict[str, Any]) -> None:
    subscription = obj.get("subscription")
    if not subscription:
        details = (obj.get("parent") or {}).get("subscription_details") or {}
        subscription = details.get("subscription")
    if isinstance(subscription, dict):
        subscription = subscription.get("id")
    if subscription:
        apply_subscription(state, str(subscription), event=ref)
    else:
        record_event_only(state, ref)


def _checkout_completed(state: SeatBillingState, ref: EventRef, obj: dict[str, Any]) -> None:
    if obj.get("mode") not in (None, "subscription"):
        record_event_only(state, ref)
        return
    session = state.provider.retrieve_checkout(str(obj["id"]))
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
    if already_processed(state, ref):
        return "duplicate"
    handler = HANDLERS.get(ref.event_type)
    if handler is None:
        return "ignored" if record_event_only(state, ref) else "duplicate"
    obj = (event.get("data") or {}).get("object") or {}
    try:
        handler(state, ref, obj)
    except PermanentProviderError as error:
        if error.status != 404:
            raise
        # The object is gone from Stripe (deleted test data, another account's id): no retry
        # can ever succeed, so acknowledge rather than have Stripe retry for three days.
        log.warning("Stripe event %s (%s) names an object Stripe no longer has: %s",
                    ref.event_id, ref.event_type, error.message)
        return "ignored" if record_event_only(state, ref) else "duplicate"
    return "processed"
