"""Subscription lifecycle: creation with its first invoice, status changes, cancel, renewal."""

from __future__ import annotations

import copy
from typing import Any

from .errors import StripeError
from .invoicing import create_invoice, invoice_item_from, line_for_period, prorate
from .state import StripeState
from .sub_common import add_interval, check_compatible, items_of, new_item, recurring_price

__all__ = ["cancel", "create_subscription", "renew_due", "set_status"]

Obj = dict[str, Any]


def create_subscription(
    state: StripeState,
    customer_id: str,
    items: list[tuple[str, int, dict[str, str]]],
    *,
    metadata: dict[str, str] | None = None,
    trial_days: int | None = None,
    status: str | None = None,
    emit: bool = True,
) -> Obj:
    """Create a subscription with one item per (price, quantity, metadata) and its first invoice.

    Emits ``customer.subscription.created`` and ``invoice.paid`` (or ``payment_failed``, which
    leaves the subscription ``incomplete``). ``emit=False`` skips events and the invoice, for
    fast bulk set-up.
    """
    state.customers.require(customer_id, "customer")
    if not items:
        raise StripeError("Missing required param: items.", param="items", code="parameter_missing")
    prices = [recurring_price(state, p, f"items[{i}][price]") for i, (p, _, _) in enumerate(items)]
    check_compatible(prices)
    if len({p["id"] for p in prices}) != len(prices):
        raise StripeError(
            "Cannot add multiple subscription items with the same price.", param="items"
        )
    now = state.now()
    recurring = prices[0]["recurring"]
    trial_end = now + 86400 * trial_days if trial_days else None
    period_end = trial_end or add_interval(now, recurring["interval"], recurring["interval_count"])
    sub_id = state.new_id("sub")
    sub: Obj = {
        "id": sub_id,
        "object": "subscription",
        "billing_cycle_anchor": period_end if trial_end else now,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": now,
        "currency": prices[0]["currency"],
        "customer": customer_id,
        "default_payment_method": None,
        "description": None,
        "discounts": [],
        "ended_at": None,
        "items": {
            "object": "list",
            "data": [],
            "has_more": False,
            "total_count": 0,
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        "latest_invoice": None,
        "livemode": False,
        "metadata": dict(metadata or {}),
        "pause_collection": None,
        "pending_update": None,
        "schedule": None,
        "start_date": now,
        "status": "trialing" if trial_end else "active",
        "test_clock": None,
        "trial_end": trial_end,
        "trial_start": now if trial_end else None,
    }
    for (_, quantity, item_meta), price in zip(items, prices, strict=True):
        new_item(state, sub, price, quantity, item_meta, (now, period_end))
    state.subscriptions.add(sub)
    state.subs_by_customer.setdefault(customer_id, []).append(sub_id)
    if emit:
        state.emit("customer.subscription.created", sub)
        period = (now, period_end)
        lines = [line_for_period(state, i, period, bool(trial_end)) for i in items_of(sub)]
        _, paid = create_invoice(state, sub, lines, "subscription_create")
        if not paid:
            set_status(state, sub, "incomplete")
    if status and status != sub["status"]:
        set_status(state, sub, status, emit=emit)
    return sub


def set_status(state: StripeState, sub: Obj, status: str, emit: bool = True) -> Obj:
    """Change ``status`` and emit the matching events (updated, plus paused/resumed/deleted)."""
    old = sub["status"]
    if old == status:
        return sub
    if status == "canceled":
        return cancel(state, sub, emit=emit)
    sub["status"] = status
    if emit:
        state.emit("customer.subscription.updated", sub, {"status": old})
        if status == "paused":
            state.emit("customer.subscription.paused", sub)
        elif old == "paused" and status == "active":
            state.emit("customer.subscription.resumed", sub)
    return sub


def cancel(
    state: StripeState,
    sub: Obj,
    *,
    prorate_unused: bool = False,
    invoice_now: bool = False,
    emit: bool = True,
) -> Obj:
    """Cancel now (``DELETE /v1/subscriptions/{id}``); emits ``customer.subscription.deleted``.

    ``prorate_unused`` credits the unused time of every item; ``invoice_now`` bills pending
    invoice items on a final invoice.
    """
    if sub["status"] == "canceled":
        raise StripeError(f"This subscription ({sub['id']}) has already been canceled.")
    now = state.now()
    if prorate_unused and sub["status"] != "trialing":
        for item in items_of(sub):
            period = (int(item["current_period_start"]), int(item["current_period_end"]))
            line = prorate(state, sub, item["id"], item["price"], -item["quantity"], period, now)
            if line is not None:
                invoice_item_from(state, line, str(sub["customer"]))
    if invoice_now and state.pending_items_by_sub.get(sub["id"]):
        create_invoice(state, sub, [], "subscription_cycle")
    sub["status"] = "canceled"
    sub["canceled_at"] = now
    sub["ended_at"] = now
    if emit:
        state.emit("customer.subscription.deleted", sub)
    return sub


def renew_due(state: StripeState) -> list[str]:
    """Roll every live subscription whose period ended into its next period; returns their ids.

    Mirrors what Stripe does at a period boundary: cancel if ``cancel_at_period_end``,
    otherwise start the next period, invoice it together with pending prorations, and emit
    ``customer.subscription.updated`` plus ``invoice.paid``/``invoice.payment_failed``.
    """
    now = state.now()
    renewed: list[str] = []
    for sub in list(state.subscriptions.objects.values()):
        if sub["status"] not in ("active", "trialing", "past_due") or not items_of(sub):
            continue
        while sub["status"] != "canceled" and int(items_of(sub)[0]["current_period_end"]) <= now:
            _renew_once(state, sub)
            renewed.append(sub["id"])
    return renewed


def _renew_once(state: StripeState, sub: Obj) -> None:
    if sub["cancel_at_period_end"]:
        cancel(state, sub)
        return
    previous: Obj = {"items": copy.deepcopy(sub["items"])}
    for item in items_of(sub):
        start = int(item["current_period_end"])
        rec = item["price"]["recurring"]
        item["current_period_start"] = start
        item["current_period_end"] = add_interval(start, rec["interval"], rec["interval_count"])
    if sub["status"] == "trialing":
        previous["status"] = "trialing"
        sub["status"] = "active"
    state.emit("customer.subscription.updated", sub, previous)
    period = (
        int(items_of(sub)[0]["current_period_start"]),
        int(items_of(sub)[0]["current_period_end"]),
    )
    lines = [line_for_period(state, item, period) for item in items_of(sub)]
    _, paid = create_invoice(state, sub, lines, "subscription_cycle")
    if not paid and sub["status"] == "active":
        set_status(state, sub, "past_due")
