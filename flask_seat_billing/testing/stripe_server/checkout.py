"""Checkout sessions (subscription mode) and billing portal sessions.

Completing a session does what Stripe does after a successful payment: create the customer if
needed, create the subscription from the line items with ``subscription_data.metadata`` (the only
metadata that reaches the subscription), and emit the events in Stripe's order.
"""

from __future__ import annotations

import copy
from typing import Any

from .catalog import create_customer, merge_metadata
from .errors import StripeError, card_declined
from .forms import as_int
from .lifecycle import create_subscription
from .state import StripeState

__all__ = ["complete_session", "create_portal_session", "create_session", "expire_session"]

Obj = dict[str, Any]


def _line_items(state: StripeState, raw: Any) -> list[tuple[Obj, int]]:
    if not isinstance(raw, list) or not raw:
        raise StripeError(
            "Missing required param: line_items.", param="line_items", code="parameter_missing"
        )
    lines: list[tuple[Obj, int]] = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or not entry.get("price"):
            raise StripeError(
                f"Missing required param: line_items[{i}][price].",
                param=f"line_items[{i}][price]",
                code="parameter_missing",
            )
        price = state.prices.require(str(entry["price"]), f"line_items[{i}][price]")
        quantity = as_int(entry.get("quantity", 1), f"line_items[{i}][quantity]", minimum=1)
        lines.append((price, quantity))
    prices = [p for p, _ in lines]
    if not any(p["recurring"] for p in prices):
        raise StripeError(
            "You must provide at least one recurring price in `subscription` mode when using "
            "prices.",
            param="line_items",
        )
    if len({p["currency"] for p in prices}) > 1:
        raise StripeError(
            "All prices on a Checkout Session must have the same currency.", param="line_items"
        )
    intervals = {
        (p["recurring"]["interval"], p["recurring"]["interval_count"])
        for p in prices
        if p["recurring"]
    }
    if len(intervals) > 1:
        raise StripeError(
            "Checkout does not support multiple prices with different billing intervals. "
            "All recurring prices must share the same `recurring.interval` and "
            "`recurring.interval_count`.",
            param="line_items",
        )
    return lines


def create_session(state: StripeState, params: dict[str, Any], base_url: str) -> Obj:
    """``POST /v1/checkout/sessions`` (``mode=subscription`` only)."""
    mode = params.get("mode")
    if not mode:
        raise StripeError("Missing required param: mode.", param="mode", code="parameter_missing")
    if mode != "subscription":
        raise StripeError("The stand-in supports only `mode=subscription`.", param="mode")
    lines = _line_items(state, params.get("line_items"))
    customer = params.get("customer")
    if customer and params.get("customer_email"):
        raise StripeError(
            "You may only specify one of these parameters: customer, customer_email.",
            param="customer_email",
        )
    if customer:
        state.customers.require(str(customer), "customer")
    sub_data = params.get("subscription_data") or {}
    trial = sub_data.get("trial_period_days")
    trial_days = as_int(trial, "subscription_data[trial_period_days]", 1) if trial else None
    reference = params.get("client_reference_id")
    if reference is not None and len(str(reference)) > 200:
        raise StripeError(
            "Invalid string: must be at most 200 characters", param="client_reference_id"
        )
    session_id = state.new_id("cs_test")
    total = sum(int(p["unit_amount"]) * q for p, q in lines)
    session: Obj = {
        "id": session_id,
        "object": "checkout.session",
        "amount_subtotal": total,
        "amount_total": total,
        "cancel_url": params.get("cancel_url"),
        "client_reference_id": reference,
        "created": state.now(),
        "currency": lines[0][0]["currency"],
        "customer": customer,
        "customer_details": None,
        "customer_email": params.get("customer_email"),
        "expires_at": state.now() + 86400,
        "invoice": None,
        "livemode": False,
        "metadata": merge_metadata({}, params.get("metadata")),
        "mode": "subscription",
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "status": "open",
        "subscription": None,
        "success_url": params.get("success_url"),
        "ui_mode": "hosted",
        "url": f"{base_url}/checkout/{session_id}",
    }
    rendered = [
        {
            "id": state.new_id("li"),
            "object": "item",
            "amount_subtotal": int(p["unit_amount"]) * q,
            "amount_total": int(p["unit_amount"]) * q,
            "currency": p["currency"],
            "description": state.product_name(str(p["product"])),
            "price": copy.deepcopy(p),
            "quantity": q,
        }
        for p, q in lines
    ]
    state.checkout_sessions.add(session)
    state.checkout_private[session_id] = {
        "lines": [(p["id"], q) for p, q in lines],
        "line_items_rendered": rendered,
        "metadata": merge_metadata({}, sub_data.get("metadata")),
        "trial_days": trial_days,
    }
    return session


def _require_open(session: Obj) -> None:
    if session["status"] != "open":
        raise StripeError(
            f"This Checkout Session is no longer active (status: {session['status']}).",
            param="session",
        )


def complete_session(state: StripeState, session_id: str) -> Obj:
    """Pay the session: customer, subscription, invoice, then ``checkout.session.completed``.

    A customer flagged with ``fail_payments`` gets a 402 card error and the session stays open.
    """
    session = state.checkout_sessions.require(session_id)
    _require_open(session)
    private = state.checkout_private[session_id]
    customer_id = session["customer"]
    if customer_id and customer_id in state.failing_customers:
        raise card_declined()
    if not customer_id:
        customer_id = create_customer(state, {"email": session["customer_email"]})["id"]
    sub = create_subscription(
        state,
        customer_id,
        [(price_id, quantity, {}) for price_id, quantity in private["lines"]],
        metadata=private["metadata"],
        trial_days=private["trial_days"],
    )
    customer = state.customers.require(customer_id)
    session.update(
        {
            "customer": customer_id,
            "customer_details": {"email": customer["email"], "name": customer["name"]},
            "invoice": sub["latest_invoice"],
            "payment_status": "no_payment_required" if private["trial_days"] else "paid",
            "status": "complete",
            "subscription": sub["id"],
        }
    )
    state.emit("checkout.session.completed", session)
    return session


def expire_session(state: StripeState, session_id: str) -> Obj:
    """``POST /v1/checkout/sessions/{id}/expire``; emits ``checkout.session.expired``."""
    session = state.checkout_sessions.require(session_id)
    _require_open(session)
    session["status"] = "expired"
    session["url"] = None
    state.emit("checkout.session.expired", session)
    return session


def create_portal_session(state: StripeState, params: dict[str, Any], base_url: str) -> Obj:
    """``POST /v1/billing_portal/sessions``: a link to the stand-in's portal page."""
    customer = params.get("customer")
    if not customer:
        raise StripeError(
            "Missing required param: customer.", param="customer", code="parameter_missing"
        )
    state.customers.require(str(customer), "customer")
    session_id = state.new_id("bps")
    session: Obj = {
        "id": session_id,
        "object": "billing_portal.session",
        "configuration": "bpc_standin",
        "created": state.now(),
        "customer": customer,
        "flow": None,
        "livemode": False,
        "locale": params.get("locale"),
        "on_behalf_of": None,
        "return_url": params.get("return_url"),
        "url": f"{base_url}/portal/{session_id}",
    }
    return state.portal_sessions.add(session)
