"""Polar webhooks: Standard Webhooks signature first, then the event as a :class:`WebhookEvent`.

The signature is checked here with ``hmac`` rather than ``polar.v2026_10.webhooks.validate_event``:
the SDK builds a payload loader for every event type on first use (seconds, on a request thread),
its tolerance is fixed where ours is ``SEAT_BILLING_WEBHOOK_TOLERANCE_SECONDS``, and only the
subscription id is needed, because the dispatcher never trusts the payload's copy of an object:
it re-reads the subscription from Polar, so an old event arriving late cannot roll state back.
The ``webhook-id`` (stable across Polar's retries) is the event's id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from ..events import (
    CHECKOUT_COMPLETED,
    NOT_HANDLED,
    SUBSCRIPTION_CHANGED,
    WebhookEvent,
    WebhookRejected,
    storable,
)
from .ids import is_polar_id

TIMESTAMP = re.compile(r"[0-9]{1,15}")
SUBSCRIPTION_TYPES = tuple(
    f"subscription.{name}"
    for name in ("created", "active", "updated", "canceled", "uncanceled", "revoked", "past_due")
)


def _keys(secret: str) -> list[bytes]:
    """Polar keys the HMAC with the secret's UTF-8 bytes; a ``whsec_`` secret is base64."""
    keys = [secret.encode("utf-8")]
    if secret.startswith("whsec_"):
        try:
            keys.append(base64.b64decode(secret[len("whsec_"):], validate=True))
        except (binascii.Error, ValueError):
            pass
    return keys


def _signed(keys: list[bytes], content: bytes, header: str) -> bool:
    expected = [
        base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()) for key in keys
    ]
    for part in header.split():
        version, _, signature = part.partition(",")
        if version != "v1":
            continue
        given = signature.encode("ascii", "replace")
        if any(hmac.compare_digest(given, e) for e in expected):
            return True
    return False


def verify(
    payload: bytes, headers: Mapping[str, str], secret: str, tolerance: int
) -> tuple[str, dict[str, Any]]:
    """``(webhook-id, event)`` if the ``webhook-*`` headers sign ``payload`` recently, else reject.

    ``headers`` may spell names in any case (a plain ``dict`` of the request's headers).
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    event_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signature = lowered.get("webhook-signature")
    if not event_id or not stamp or not signature:
        raise WebhookRejected(403, "Missing webhook-id, webhook-timestamp or webhook-signature.")
    # Plain ASCII digits only: int() takes "1_7" and Unicode digits, and hundreds of digits
    # overflow a float subtraction from time.time().
    if not TIMESTAMP.fullmatch(stamp):
        raise WebhookRejected(403, "Malformed webhook-timestamp.")
    timestamp, now = int(stamp), int(time.time())
    if not now - tolerance <= timestamp <= now + tolerance:  # too old (replay) or too far ahead
        raise WebhookRejected(403, "webhook-timestamp outside the tolerance.")
    content = f"{event_id}.{timestamp}.".encode() + payload
    if not _signed(_keys(secret), content, signature):
        raise WebhookRejected(403, "Invalid webhook-signature.")
    try:
        event = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise WebhookRejected(400, "Webhook body is not valid JSON.") from None
    if not isinstance(event, dict) or not storable(event_id, event.get("type")):
        raise WebhookRejected(400, "Webhook body is not a Polar event.")
    return event_id, event


def parse(body: bytes, headers: Mapping[str, str], secret: str, tolerance: int) -> WebhookEvent:
    """Verify a delivery and read it (see :class:`~..events.WebhookParser`)."""
    event_id, event = verify(body, headers, secret, tolerance)
    return read(event_id, event)


def read(event_id: str, event: dict[str, Any]) -> WebhookEvent:
    """What a verified Polar event asks of the core.

    A ``subscription.created`` born from a checkout is a completed checkout (signals,
    after-checkout hooks, a follow-up sync for members who joined meanwhile), as Stripe's
    ``checkout.session.completed`` is: Polar sends no checkout event of its own for that.
    """
    event_type = str(event["type"])
    obj = event.get("data")
    if event_type not in SUBSCRIPTION_TYPES:
        return WebhookEvent("polar", event_id, event_type, NOT_HANDLED)
    if not isinstance(obj, dict):
        return WebhookEvent("polar", event_id, event_type, NOT_HANDLED,
                            malformed="its object is not a JSON object")
    subscription_id = obj.get("id")
    if not is_polar_id(subscription_id):
        return WebhookEvent("polar", event_id, event_type, SUBSCRIPTION_CHANGED,
                            malformed="the subscription id is not an id")
    checkout_id = obj.get("checkout_id") if event_type == "subscription.created" else None
    if not checkout_id:
        return WebhookEvent("polar", event_id, event_type, SUBSCRIPTION_CHANGED,
                            subscription_id=subscription_id)
    if not is_polar_id(checkout_id):
        return WebhookEvent("polar", event_id, event_type, CHECKOUT_COMPLETED,
                            malformed="checkout_id is not an id")
    return WebhookEvent("polar", event_id, event_type, CHECKOUT_COMPLETED,
                        subscription_id=subscription_id, checkout_id=checkout_id)
