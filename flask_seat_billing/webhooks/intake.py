"""What the webhook endpoint does before trusting a byte: size limit, secret present."""

from __future__ import annotations

import logging

from flask import request

from ..providers.events import WebhookRejected

log = logging.getLogger("flask_seat_billing.webhooks")

__all__ = ["WebhookRejected", "read_body", "require_secret"]


def read_body(max_bytes: int) -> bytes:
    """The raw body, refusing anything larger than ``max_bytes`` before reading it whole."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise WebhookRejected(413, f"Webhook body over {max_bytes} bytes.")
    try:
        body = request.stream.read(max_bytes + 1)
    except OSError:  # a broken chunked encoding, raised by the WSGI server's input
        raise WebhookRejected(400, "Webhook body could not be read.") from None
    if len(body) > max_bytes:
        raise WebhookRejected(413, f"Webhook body over {max_bytes} bytes.")
    return body


def require_secret(secret: str | None, key: str, provider: str) -> str:
    """The webhook secret; without one every delivery is refused (never accept unsigned)."""
    if not secret:
        log.error(
            "%s webhook refused: %s is not set, so signatures cannot be verified. Set it to the "
            "endpoint's signing secret; %s will retry the delivery.", provider, key, provider,
        )
        raise WebhookRejected(503, f"{key} is not configured; webhooks are refused.")
    return secret
