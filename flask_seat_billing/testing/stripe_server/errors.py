"""Stripe's error envelope, so the real SDK raises the exception classes it would in production.

The SDK picks the exception from the HTTP status and ``error.type``/``error.code``
(``InvalidRequestError``, ``CardError``, ``RateLimitError``, ``AuthenticationError``,
``IdempotencyError``), so both must match what Stripe sends.
"""

from __future__ import annotations

import json
from typing import Any

from .._standin import Fault

__all__ = ["StripeError", "card_declined", "fault_response", "no_such"]


class StripeError(Exception):
    """An API error; raised anywhere in request handling and rendered by the router."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param
        self.code = code
        self.extra = extra or {}

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        """The JSON body: ``{"error": {"type", "message", "param"?, "code"?, ...}}``."""
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if request_id:
            error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        error.update(self.extra)
        return {"error": error}


def no_such(kind: str, object_id: str, param: str = "id") -> StripeError:
    """The 404 Stripe answers for an unknown id: ``No such subscription: 'sub_x'``."""
    return StripeError(
        f"No such {kind}: '{object_id}'", status=404, param=param, code="resource_missing"
    )


def card_declined() -> StripeError:
    """The 402 a failed charge produces (``stripe.CardError`` in the SDK)."""
    return StripeError(
        "Your card was declined.",
        status=402,
        type="card_error",
        code="card_declined",
        extra={"decline_code": "generic_decline"},
    )


def fault_response(fault: Fault) -> tuple[int, dict[str, str], bytes]:
    """Injected faults in Stripe's format: 429 is a ``rate_limit_error``, others ``api_error``."""
    if fault.status == 429:
        error = StripeError(
            "Request rate limit exceeded. You can make up to 25 requests per second in test "
            "mode. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
            status=429,
            type="rate_limit_error",
            code="rate_limit",
        )
    else:
        error = StripeError(
            "An unknown error occurred (injected fault).", status=fault.status, type="api_error"
        )
    headers = {"Content-Type": "application/json", "Request-Id": "req_fault"}
    return fault.status, headers, json.dumps(error.body()).encode()
