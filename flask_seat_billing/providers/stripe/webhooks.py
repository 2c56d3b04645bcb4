"""Stripe webhooks: check ``Stripe-Signature``, then read the event into a :class:`WebhookEvent`.

The signature itself is checked by ``stripe.WebhookSignature``; the timestamp is checked here
first because the SDK lets future timestamps through. Only ids are read from the payload: the
dispatcher re-reads the subscription (or the checkout session) from Stripe, so an old event
arriving late cannot roll state back.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import stripe

from ..events import (
    CHECKOUT_COMPLETED,
    NOT_HANDLED,
    RECORD_ONLY,
    SUBSCRIPTION_CHANGED,
    WebhookEvent,
    WebhookRejected,
    storable,
)
from .ids import is_stripe_id

TIMESTAMP = re.compile(r"[0-9]{1,15}")
CHECKOUT_TYPE = "checkout.session.completed"
INVOICE_TYPES = ("invoice.paid", "invoice.payment_failed")
SUBSCRIPTION_TYPES = tuple(
    f"customer.subscription.{name}"
    for name in ("created", "updated", "deleted", "paused", "resumed",
                 "pending_update_applied", "pending_update_expired")
)


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
    """The event, if ``Stripe-Signature`` signs ``payload`` recently enough; else reject."""
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


def parse(body: bytes, headers: Mapping[str, str], secret: str, tolerance: int) -> WebhookEvent:
    """Verify a delivery and read it (see :class:`~..events.WebhookParser`)."""
    header = next((v for k, v in headers.items() if k.lower() == "stripe-signature"), None)
    return read(verify(body, header, secret, tolerance))


def read(event: dict[str, Any]) -> WebhookEvent:
    """What a verified Stripe event asks of the core."""
    event_id, event_type = str(event["id"]), str(event["type"])
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None

    def made(action: str, malformed: str | None = None, **ids: Any) -> WebhookEvent:
        return WebhookEvent("stripe", event_id, event_type, action, malformed=malformed, **ids)

    if event_type not in (CHECKOUT_TYPE, *INVOICE_TYPES, *SUBSCRIPTION_TYPES):
        return made(NOT_HANDLED)
    if not isinstance(obj, dict):
        return made(NOT_HANDLED, "its object is not a JSON object")
    if event_type in SUBSCRIPTION_TYPES:
        return _subscription(made, obj.get("id"), "the subscription id")
    if event_type in INVOICE_TYPES:
        subscription = _invoice_subscription(obj)
        if not subscription:
            return made(RECORD_ONLY)
        return _subscription(made, subscription, "the invoice's subscription")
    mode = obj.get("mode")
    if mode is not None and mode != "subscription":
        return made(RECORD_ONLY)  # a one-off payment: nothing of ours
    session_id = obj.get("id")
    if not is_stripe_id(session_id, "checkout session"):
        return made(CHECKOUT_COMPLETED, "the checkout session id is not an id")
    return made(CHECKOUT_COMPLETED, checkout_id=session_id)


def _subscription(made: Callable[..., WebhookEvent], value: Any, what: str) -> WebhookEvent:
    if not is_stripe_id(value, "subscription"):
        return made(SUBSCRIPTION_CHANGED, f"{what} is not an id")
    return made(SUBSCRIPTION_CHANGED, subscription_id=value)


def _invoice_subscription(invoice: dict[str, Any]) -> Any:
    """The invoice's subscription: top level on older API versions, under ``parent`` since."""
    subscription = invoice.get("subscription")
    if not subscription:
        parent = invoice.get("parent")
        details = parent.get("subscription_details") if isinstance(parent, dict) else None
        subscription = details.get("subscription") if isinstance(details, dict) else None
    if isinstance(subscription, dict):
        subscription = subscription.get("id")
    return subscription
