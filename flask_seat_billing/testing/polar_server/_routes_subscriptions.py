"""``/v1/subscriptions/`` endpoints.

``PATCH /v1/subscriptions/{id}`` takes one of several body shapes (the SDK's ``SubscriptionUpdate*``
TypedDicts), each of which Polar validates with extra fields forbidden. So ``seats`` may only come
with ``proration_behavior``: ``{"seats": 7, "metadata": {...}}`` is a 422, which is how Polar
refuses combining a seats change with a product or metadata change.
"""

from __future__ import annotations

from typing import Any

from . import _errors as err
from . import _lifecycle as life
from ._http import Call, Route
from ._listing import subscription_page
from ._models import Subscription

__all__ = ["ROUTES", "check_metadata"]

JSON = dict[str, Any]

_SEATS_KEYS = frozenset({"seats", "proration_behavior"})
_BASE_KEYS = frozenset({"metadata", "product_id", "proration_behavior", "discount_id", "trial_end"})
_REASON_KEYS = frozenset({"customer_cancellation_reason", "customer_cancellation_comment"})
_CANCEL_KEYS = _REASON_KEYS | {"cancel_at_period_end"}
_REVOKE_KEYS = _REASON_KEYS | {"revoke"}
_REASONS = frozenset(
    {
        "customer_service",
        "low_quality",
        "missing_features",
        "switched_service",
        "too_complex",
        "too_expensive",
        "unused",
        "other",
    }
)
_UNSUPPORTED = ("units", "current_billing_period_end", "pause_at_period_end", "resume")


def _forbid_extra(body: JSON, allowed: frozenset[str], model: str) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise err.validation_errors(
            [
                {
                    "loc": ["body", model, key],
                    "msg": "Extra inputs are not permitted",
                    "type": "extra_forbidden",
                    "input": body[key],
                }
                for key in extra
            ]
        )


def check_metadata(value: Any, loc: str = "metadata") -> dict[str, Any]:
    """Polar's metadata rules: at most 50 keys of <= 40 chars, values str (<= 500) / number /
    bool."""
    if not isinstance(value, dict):
        raise err.validation_error(["body", loc], "Input should be a valid dictionary", "dict_type")
    if len(value) > 50:
        raise err.validation_error(["body", loc], "At most 50 keys are allowed", "too_long")
    for key, item in value.items():
        if len(key) > 40:
            raise err.validation_error(["body", loc, key], "Key is too long", "string_too_long")
        if not isinstance(item, (str, int, float, bool)) or (
            isinstance(item, str) and len(item) > 500
        ):
            raise err.validation_error(
                ["body", loc, key],
                "Value should be a string, a number or a boolean",
                "value_error",
                item,
            )
    return dict(value)


def _reason(body: JSON) -> tuple[str | None, str | None]:
    reason = body.get("customer_cancellation_reason")
    if reason is not None and reason not in _REASONS:
        raise err.validation_error(
            ["body", "customer_cancellation_reason"],
            "Input should be a cancellation reason",
            "enum",
            reason,
        )
    comment = body.get("customer_cancellation_comment")
    return reason, comment if isinstance(comment, str) else None


def _list(call: Call) -> tuple[int, Any]:
    return 200, subscription_page(call.store, call.args)


def _get(call: Call) -> tuple[int, Any]:
    store = call.store
    with store.lock:
        return 200, store.subscription_json(store.subscription(call.path_params["id"]))


def _revoke(call: Call) -> tuple[int, Any]:
    store = call.store
    with store.lock:
        sub = store.subscription(call.path_params["id"])
        life.revoke(store, sub)
        call.changed = True
        return 200, store.subscription_json(sub)


def _update_base(call: Call, sub: Subscription, body: JSON) -> bool:
    store = call.store
    _forbid_extra(body, _BASE_KEYS, "SubscriptionUpdateBase")
    if body.get("discount_id") is not None or body.get("trial_end") is not None:
        raise err.bad_request("The stand-in does not support discounts or trial changes.")
    changed = False
    if "metadata" in body:
        sub.metadata = check_metadata(body["metadata"])
        changed = True
    product_id = body.get("product_id")
    if product_id is not None and product_id != sub.product_id:
        product = store.products.get(product_id)
        if product is None:
            raise err.validation_error(
                ["body", "product_id"], "Product does not exist.", "value_error", product_id
            )
        if sub.status in ("canceled", "unpaid") or sub.ended_at is not None:
            raise err.already_canceled(at_period_end=False)
        if sub.cancel_at_period_end:
            raise err.already_canceled(at_period_end=True)
        sub.product_id = product.id
        if not product.is_seat_based:
            sub.seats = None
        elif sub.seats is None:
            sub.seats = product.minimum_seats
        changed = True
    return changed


def _update(call: Call) -> tuple[int, Any]:
    store = call.store
    body = call.body()
    with store.lock:
        sub = store.subscription(call.path_params["id"])
        if "seats" in body:
            _forbid_extra(body, _SEATS_KEYS, "SubscriptionUpdateSeats")
            change = life.change_seats(store, sub, body["seats"], body.get("proration_behavior"))
            call.changed = change is not None
        elif any(key in body for key in _UNSUPPORTED):
            raise err.bad_request("The stand-in only supports seats, cancel and metadata updates.")
        elif "revoke" in body:
            _forbid_extra(body, _REVOKE_KEYS, "SubscriptionRevoke")
            if body["revoke"] is not True:
                raise err.validation_error(
                    ["body", "SubscriptionRevoke", "revoke"],
                    "Input should be True",
                    "literal_error",
                    body["revoke"],
                )
            life.revoke(store, sub, *_reason(body))
            call.changed = True
        elif "cancel_at_period_end" in body:
            _forbid_extra(body, _CANCEL_KEYS, "SubscriptionCancel")
            flag = body["cancel_at_period_end"]
            if not isinstance(flag, bool):
                raise err.validation_error(
                    ["body", "SubscriptionCancel", "cancel_at_period_end"],
                    "Input should be a valid boolean",
                    "bool_type",
                    flag,
                )
            if flag:
                life.cancel(store, sub, *_reason(body))
            else:
                life.uncancel(store, sub)
            call.changed = True
        elif "pending_update" in body:
            _forbid_extra(body, frozenset({"pending_update"}), "SubscriptionUpdateClear")
            if sub.pending_update_id is not None:
                sub.pending_update_id = sub.pending_seats = sub.pending_created_at = None
                call.changed = True
        else:
            call.changed = _update_base(call, sub, body)
        if (
            call.changed
            and "seats" not in body
            and "revoke" not in body
            and ("cancel_at_period_end" not in body)
        ):
            sub.modified_at = store.clock()
            store.touch()
            store.emit("subscription.updated", sub)
        return 200, store.subscription_json(sub)


def _create(call: Call) -> tuple[int, Any]:
    """Polar only creates subscriptions on free products through the API (paid ones go through
    checkout), so a paid product is refused."""
    store = call.store
    body = call.body()
    with store.lock:
        product = store.products.get(str(body.get("product_id")))
        if product is None:
            raise err.validation_error(["body", "product_id"], "Product does not exist.")
        if product.amount(product.minimum_seats) > 0:
            raise err.validation_error(
                ["body", "product_id"],
                "Only free products can be subscribed to through the API.",
            )
        if "customer_id" in body:
            customer = store.customer(str(body["customer_id"]))
        else:
            customer = store.customer_by_external(str(body.get("external_customer_id")))
        sub = store.add_subscription(
            product,
            customer,
            product.minimum_seats,
            metadata=check_metadata(body.get("metadata", {})),
        )
        call.changed = True
        return 201, store.subscription_json(sub)


ROUTES = [
    Route("GET", "/v1/subscriptions/", _list),
    Route("POST", "/v1/subscriptions/", _create),
    Route("GET", "/v1/subscriptions/{id}", _get),
    Route("PATCH", "/v1/subscriptions/{id}", _update),
    Route("DELETE", "/v1/subscriptions/{id}", _revoke),
]
