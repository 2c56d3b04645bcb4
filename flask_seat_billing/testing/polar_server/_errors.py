"""Polar's error answers, in the bodies the SDK maps to its typed exceptions.

The SDK picks an exception class per (endpoint, status) and then *deserializes* the body into that
class's model, e.g. a 403 from ``PATCH /v1/subscriptions/{id}`` must be
``{"error": "AlreadyCanceledSubscription", "detail": "..."}`` to become
``SubscriptionsUpdate403Error``; a 422 must be FastAPI's ``{"detail": [{loc, msg, type}]}``
to become ``HTTPValidationError``. A body of the wrong shape would surface as
``PolarDeserializationError`` in the caller's code instead of the error Polar really produces, so
all refusals go through here.
"""

from __future__ import annotations

import json
from typing import Any

from .._standin.faults import Fault

__all__ = [
    "PolarAPIError",
    "already_canceled",
    "bad_request",
    "fault_response",
    "inactive",
    "not_found",
    "not_scheduled_to_cancel",
    "payment_failed",
    "unauthorized",
    "validation_error",
]


class PolarAPIError(Exception):
    """A refusal to answer with ``status`` and JSON ``body``.

    Raised by the stand-in's state operations; the HTTP layer turns it into a response, and the
    Python-side API (``PolarStandIn.set_seats`` ...) lets it propagate so tests see the same
    reason the SDK would.
    """

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.headers = headers or {}
        detail = body.get("detail")
        super().__init__(f"{status} {body.get('error', '')}: {detail}")

    @property
    def error(self) -> str | None:
        """Polar's error name (``"AlreadyCanceledSubscription"`` ...), ``None`` for 422s."""
        value = self.body.get("error")
        return value if isinstance(value, str) else None


def _named(status: int, error: str, detail: str) -> PolarAPIError:
    return PolarAPIError(status, {"error": error, "detail": detail})


def not_found(what: str = "Resource") -> PolarAPIError:
    """404 ``ResourceNotFound`` (SDK: ``errors.ResourceNotFound``)."""
    return _named(404, "ResourceNotFound", f"{what} not found")


def unauthorized() -> PolarAPIError:
    """401; no endpoint maps it, so the SDK raises a plain ``PolarClientError``."""
    return PolarAPIError(
        401,
        {"error": "Unauthorized", "detail": "Missing or invalid access token."},
        {"WWW-Authenticate": 'Bearer realm="polar"'},
    )


def already_canceled(at_period_end: bool) -> PolarAPIError:
    """403 ``AlreadyCanceledSubscription``, for canceled *and* canceling subscriptions."""
    detail = (
        "This subscription is scheduled to be canceled at the end of the period."
        if at_period_end
        else "This subscription is already canceled."
    )
    return _named(403, "AlreadyCanceledSubscription", detail)


def inactive() -> PolarAPIError:
    """403 ``InactiveSubscription``: e.g. a seats update on a ``past_due`` subscription."""
    return _named(403, "InactiveSubscription", "This subscription is not active.")


def not_scheduled_to_cancel() -> PolarAPIError:
    """409 ``SubscriptionNotScheduledToCancel``: uncancel of a subscription not canceling."""
    return _named(
        409, "SubscriptionNotScheduledToCancel", "This subscription is not scheduled to cancel."
    )


def payment_failed(detail: str = "The payment failed: your card was declined.") -> PolarAPIError:
    """402 ``PaymentFailed`` (SDK: ``SubscriptionsUpdate402Error``); nothing was changed."""
    return _named(402, "PaymentFailed", detail)


def bad_request(detail: str) -> PolarAPIError:
    """400 ``BadRequest``. ``subscriptions.update`` does not map 400, so the SDK raises a plain
    ``PolarClientError`` whose ``error`` is the raw body text."""
    return _named(400, "BadRequest", detail)


def validation_error(
    loc: list[str | int], msg: str, type: str = "value_error", input: Any = None
) -> PolarAPIError:
    """422 in FastAPI's shape (SDK: ``errors.HTTPValidationError``)."""
    return validation_errors([{"loc": loc, "msg": msg, "type": type, "input": input}])


def validation_errors(errors: list[dict[str, Any]]) -> PolarAPIError:
    """422 with several entries (e.g. each forbidden extra field)."""
    return PolarAPIError(422, {"detail": errors})


_FAULT_ERRORS = {
    400: "BadRequest",
    401: "Unauthorized",
    402: "PaymentFailed",
    403: "NotPermitted",
    404: "ResourceNotFound",
    409: "SubscriptionLocked",
}


def fault_response(fault: Fault) -> tuple[int, dict[str, str], bytes]:
    """Body of an injected error, so ``faults.fail_next(status=...)`` looks like Polar.

    5xx get an opaque body (the SDK keeps it as ``PolarServerError.message``), 422 the FastAPI
    shape, other 4xx the ``{"error", "detail"}`` shape of the matching Polar error.
    """
    status = fault.status
    body: dict[str, Any]
    if status == 429:
        body = {"error": "TooManyRequests", "detail": "Rate limit exceeded."}
    elif status == 422:
        body = {"detail": [{"loc": ["body"], "msg": "Injected fault", "type": "value_error"}]}
    elif status >= 500:
        body = {"error": "InternalServerError", "detail": f"Injected {fault.kind} fault."}
    else:
        body = {"error": _FAULT_ERRORS.get(status, "BadRequest"), "detail": "Injected fault."}
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()
