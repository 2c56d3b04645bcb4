"""``POST /v1/invoices/create_preview``: the invoice a subscription change would produce.

Uses the same planning and proration code as real updates, but stores nothing and emits nothing,
so a preview always matches what the update will bill.
"""

from __future__ import annotations

from typing import Any

from .errors import StripeError
from .forms import as_bool, as_int
from .invoicing import build_invoice, line_for_invoice_item, line_for_period, line_for_proration
from .items import PRORATION_BEHAVIORS, ItemChange, PlannedChange, plan_changes, prorations_for
from .state import StripeState
from .sub_common import add_interval, items_of

__all__ = ["create_preview", "item_changes"]

Obj = dict[str, Any]


def item_changes(raw: Any, prefix: str) -> list[ItemChange]:
    """Parse ``items[i][id|price|quantity|deleted|metadata]`` into :class:`ItemChange`."""
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise StripeError("Invalid array", param=prefix, code="parameter_invalid_empty")
    changes = []
    for i, entry in enumerate(raw):
        param = f"{prefix}[{i}]"
        if not isinstance(entry, dict):
            raise StripeError("Invalid object", param=param)
        quantity = entry.get("quantity")
        changes.append(
            ItemChange(
                item_id=entry.get("id") or None,
                price_id=entry.get("price") or None,
                quantity=None if quantity is None else as_int(quantity, f"{param}[quantity]", 0),
                deleted=as_bool(entry.get("deleted", False), f"{param}[deleted]"),
                metadata=entry.get("metadata"),
                param=param,
            )
        )
    return changes


def _subscription(state: StripeState, params: dict[str, Any]) -> Obj:
    customer = params.get("customer")
    sub_id = params.get("subscription")
    if sub_id:
        sub = state.subscriptions.require(str(sub_id), "subscription")
        if customer and customer != sub["customer"]:
            raise StripeError(
                f"The subscription {sub_id} does not belong to customer {customer}.",
                param="subscription",
            )
        return sub
    if not customer:
        raise StripeError("Missing required param: customer or subscription.", param="customer")
    state.customers.require(str(customer), "customer")
    for candidate in reversed(state.subs_by_customer.get(str(customer), [])):
        sub = state.subscriptions.objects[candidate]
        if sub["status"] != "canceled":
            return sub
    raise StripeError(
        f"No upcoming invoices for customer: {customer}", code="invoice_upcoming_none"
    )


def _next_period_lines(state: StripeState, sub: Obj, planned: list[PlannedChange]) -> list[Obj]:
    changed = {p.item["id"]: (p.item, p) for p in planned if p.item is not None}
    result: list[Obj] = []
    items = [i for i in items_of(sub) if i["id"] not in changed]
    items += [
        {**item, "price": p.new_price, "quantity": p.new_quantity}
        for item, p in changed.values()
        if not p.deleted
    ]
    items += [
        {
            "id": "si_new",
            "subscription": sub["id"],
            "price": p.new_price,
            "quantity": p.new_quantity,
        }
        for p in planned
        if p.item is None
    ]
    for item in items:
        start = int(items_of(sub)[0]["current_period_end"])
        rec = item["price"]["recurring"]
        end = add_interval(start, rec["interval"], rec["interval_count"])
        result.append(line_for_period(state, item, (start, end)))
    return result


def create_preview(state: StripeState, params: dict[str, Any]) -> Obj:
    """The invoice the change in ``subscription_details`` would produce, without applying it.

    ``create_prorations``: pending prorations + this change's prorations + next period.
    ``always_invoice``: the invoice created immediately (pending + new prorations).
    ``none``: the next period's invoice at the new quantities.
    """
    sub = _subscription(state, params)
    if sub["status"] == "canceled":
        raise StripeError(
            f"No upcoming invoices for customer: {sub['customer']}", code="invoice_upcoming_none"
        )
    details = params.get("subscription_details") or {}
    planned = plan_changes(
        state, sub, item_changes(details.get("items"), "subscription_details[items]")
    )
    behavior = details.get("proration_behavior", "create_prorations")
    if behavior not in PRORATION_BEHAVIORS:
        raise StripeError(
            f"Invalid subscription_details[proration_behavior]: must be one of "
            f"{', '.join(PRORATION_BEHAVIORS)}",
            param="subscription_details[proration_behavior]",
        )
    raw_date = details.get("proration_date")
    at = (
        state.now()
        if raw_date is None
        else as_int(raw_date, "subscription_details[proration_date]")
    )
    pending = [
        line_for_invoice_item(state, state.invoice_items.objects[ii])
        for ii in state.pending_items_by_sub.get(sub["id"], [])
        if ii in state.invoice_items.objects
    ]
    new = [] if behavior == "none" else prorations_for(state, sub, planned, at)
    # Stripe's order: pending invoice items newest first (this change's prorations are the
    # newest), then the regular lines; only the first 10 are embedded (see invoice_lines).
    lines = list(reversed(pending + [line_for_proration(state, line) for line in new]))
    reason = "subscription_update"
    if behavior != "always_invoice":
        lines += _next_period_lines(state, sub, planned)
        reason = "upcoming"
    invoice = build_invoice(state, sub, lines, reason, state.new_id("upcoming_in"))
    invoice["parent"]["subscription_details"]["subscription_proration_date"] = at
    return invoice
