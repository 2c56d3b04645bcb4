"""Seat-quantity changes on subscription items, shared by updates and invoice previews.

:func:`plan_changes` validates without changing anything; :func:`apply_changes` prorates, bills,
mutates and emits. Previews use only the first half, and a refused change (402, 400) leaves no
trace.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

from .catalog import merge_metadata
from .errors import StripeError, card_declined
from .invoicing import ProrationLine, create_invoice, invoice_item_from, prorate
from .lifecycle import set_status
from .state import StripeState
from .sub_common import (
    check_compatible,
    current_period,
    ensure_updatable,
    items_of,
    new_item,
    recurring_price,
)

__all__ = [
    "PAYMENT_BEHAVIORS",
    "PRORATION_BEHAVIORS",
    "ItemChange",
    "PlannedChange",
    "apply_changes",
    "plan_changes",
    "prorations_for",
]

Obj = dict[str, Any]
PRORATION_BEHAVIORS = ("create_prorations", "always_invoice", "none")
PAYMENT_BEHAVIORS = (
    "allow_incomplete",
    "error_if_incomplete",
    "pending_if_incomplete",
    "default_incomplete",
)
_NEW = "si_new"  # placeholder item id on prorations for items not created yet


@dataclass
class ItemChange:
    """A requested change: an existing item (``item_id``) or a new one (``price_id``)."""

    item_id: str | None = None
    price_id: str | None = None
    quantity: int | None = None
    deleted: bool = False
    metadata: Any = None
    param: str = "items[0]"


@dataclass
class PlannedChange:
    """A validated change: ``item`` is None for a new item; quantities are absolute."""

    item: Obj | None
    old_price: Obj | None
    new_price: Obj
    old_quantity: int
    new_quantity: int
    deleted: bool
    metadata: Any


def _plan_one(state: StripeState, by_id: dict[str, Obj], ch: ItemChange) -> PlannedChange:
    if ch.item_id is None:
        if not ch.price_id:
            raise StripeError(
                f"Missing required param: {ch.param}[price].",
                param=f"{ch.param}[price]",
                code="parameter_missing",
            )
        price = recurring_price(state, ch.price_id, f"{ch.param}[price]")
        qty = 1 if ch.quantity is None else ch.quantity
        return PlannedChange(None, None, price, 0, qty, False, ch.metadata)
    item = by_id.get(ch.item_id)
    if item is None:
        raise StripeError(
            f"No such subscription item: '{ch.item_id}'",
            status=404,
            param=f"{ch.param}[id]",
            code="resource_missing",
        )
    new_price = item["price"]
    if ch.price_id and ch.price_id != item["price"]["id"]:
        new_price = recurring_price(state, ch.price_id, f"{ch.param}[price]")
    qty = int(item["quantity"]) if ch.quantity is None else ch.quantity
    return PlannedChange(
        item,
        item["price"],
        new_price,
        int(item["quantity"]),
        0 if ch.deleted else qty,
        ch.deleted,
        ch.metadata,
    )


def plan_changes(state: StripeState, sub: Obj, changes: list[ItemChange]) -> list[PlannedChange]:
    """Validate item changes against the subscription without changing anything."""
    if not changes:
        return []
    ensure_updatable(sub)
    by_id = {i["id"]: i for i in items_of(sub)}
    planned = [_plan_one(state, by_id, ch) for ch in changes]
    kept = {i["id"]: i["price"] for i in items_of(sub)}
    added: list[Obj] = []
    for p in planned:
        if p.item is not None:
            kept.pop(p.item["id"], None)
        if not p.deleted:
            added.append(p.new_price)
    prices = list(kept.values()) + added
    if len({p["id"] for p in prices}) != len(prices):
        raise StripeError(
            "Cannot add multiple subscription items with the same price.", param="items"
        )
    if prices:
        check_compatible(prices)
    return planned


def prorations_for(
    state: StripeState, sub: Obj, planned: list[PlannedChange], at: int
) -> list[ProrationLine]:
    """Proration lines the planned changes cause at time ``at`` (none while trialing)."""
    if sub["status"] == "trialing" or not items_of(sub):
        return []
    lines: list[ProrationLine | None] = []
    for p in planned:
        if p.item is not None:
            item_id = str(p.item["id"])
            period = (int(p.item["current_period_start"]), int(p.item["current_period_end"]))
        else:
            item_id, period = _NEW, current_period(sub)
        if p.old_price is not None and p.old_price["id"] != p.new_price["id"]:
            lines.append(prorate(state, sub, item_id, p.old_price, -p.old_quantity, period, at))
            lines.append(prorate(state, sub, item_id, p.new_price, p.new_quantity, period, at))
        else:
            delta = p.new_quantity - p.old_quantity
            lines.append(prorate(state, sub, item_id, p.new_price, delta, period, at))
    return [line for line in lines if line is not None]


def _increases(planned: list[PlannedChange]) -> bool:
    """Whether the change costs more (only then would a payment be attempted and fail)."""
    return any(
        p.new_quantity * int(p.new_price["unit_amount"])
        > p.old_quantity * int((p.old_price or p.new_price)["unit_amount"])
        for p in planned
    )


def apply_changes(
    state: StripeState,
    sub: Obj,
    planned: list[PlannedChange],
    *,
    proration_behavior: str = "create_prorations",
    proration_date: int | None = None,
    payment_behavior: str = "allow_incomplete",
    updates: Obj | None = None,
) -> Obj:
    """Apply validated item changes, bill prorations and emit ``customer.subscription.updated``.

    With a customer whose payments fail (``fail_payments``) and a change that costs more,
    ``error_if_incomplete`` / ``pending_if_incomplete`` raise 402 and change nothing.
    ``updates`` are top-level fields (e.g. merged ``metadata``) set along with the items.
    """
    if proration_behavior not in PRORATION_BEHAVIORS:
        raise StripeError(
            f"Invalid proration_behavior: must be one of {', '.join(PRORATION_BEHAVIORS)}",
            param="proration_behavior",
        )
    if payment_behavior not in PAYMENT_BEHAVIORS:
        raise StripeError(
            f"Invalid payment_behavior: must be one of {', '.join(PAYMENT_BEHAVIORS)}",
            param="payment_behavior",
        )
    failing = sub["customer"] in state.failing_customers
    if failing and payment_behavior != "allow_incomplete" and _increases(planned):
        raise card_declined()
    at = state.now() if proration_date is None else proration_date
    lines = [] if proration_behavior == "none" else prorations_for(state, sub, planned, at)
    previous: Obj = {}
    for field, value in (updates or {}).items():
        if sub.get(field) != value:
            previous[field] = copy.deepcopy(sub.get(field))
            sub[field] = value
    if planned:
        previous["items"] = copy.deepcopy(sub["items"])
    period = current_period(sub) if items_of(sub) else (state.now(), state.now())
    for p in planned:
        if p.item is None:
            item = new_item(state, sub, p.new_price, p.new_quantity, p.metadata or {}, period)
            lines = [
                replace(line, subscription_item=item["id"])
                if line.subscription_item == _NEW and line.price["id"] == p.new_price["id"]
                else line
                for line in lines
            ]
        elif p.deleted:
            items_of(sub).remove(p.item)
            state.items.remove(p.item["id"])
            sub["items"]["total_count"] = len(items_of(sub))
        else:
            p.item["quantity"] = p.new_quantity
            if p.new_price["id"] != p.item["price"]["id"]:
                p.item["price"] = copy.deepcopy(p.new_price)
            if p.metadata is not None:
                p.item["metadata"] = merge_metadata(p.item["metadata"], p.metadata)
    for line in lines:
        invoice_item_from(state, line, str(sub["customer"]))
    if previous:
        state.emit("customer.subscription.updated", sub, previous)
    if lines and proration_behavior == "always_invoice":
        _, paid = create_invoice(state, sub, [], "subscription_update")
        if not paid and sub["status"] == "active":
            set_status(state, sub, "past_due")
    return sub
