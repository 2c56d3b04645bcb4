"""Polar's webhook signing: Standard Webhooks, keyed with the secret's raw UTF-8 bytes.

Standard Webhooks signs ``"{webhook-id}.{webhook-timestamp}.{body}"`` with HMAC-SHA256 and sends
``webhook-signature: v1,<base64>``. Generic Standard Webhooks libraries base64-*decode* the secret
(after a ``whsec_`` prefix) to get the key; Polar instead uses the secret string's UTF-8 bytes, and
``polar.webhooks.validate_event`` tries both. Signing with the raw bytes, as Polar does, keeps a
receiver honest: one that base64-encodes the secret before handing it to a generic library (what
Polar's docs prescribe) verifies, one that passes the secret as is to such a library fails, as it
would in production.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["generate_secret", "sign", "signature_headers"]


def sign(body: bytes, secret: str, timestamp: int, event_id: str) -> str:
    """The ``webhook-signature`` value for one delivery."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(body: bytes, secret: str, timestamp: int, *, event_id: str) -> dict[str, str]:
    """Headers of one delivery; ``webhook-id`` is the event id, so it is the same on every
    redelivery of the event and receivers can deduplicate on it."""
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(body, secret, timestamp, event_id),
    }


def generate_secret() -> str:
    """A secret shaped like the ones Polar's dashboard shows (``polar_whs_...``)."""
    return "polar_whs_" + secrets.token_urlsafe(32)
