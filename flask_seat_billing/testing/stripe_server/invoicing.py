"""Money math: proration amounts, invoice items, invoices, payment attempts and previews.

Proration follows Stripe's per-unit rule: a quantity change from ``old`` to ``new`` on a price of
``unit_amount`` at time ``t`` is worth ``(new - old) * unit_amount * (end - t) / (end - start)``
for the item's current period ``[start, end)``, rounded half away from zero to the currency's
minor unit. A price swap credits the old price and charges the new one as two lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any

from .invoice_lines import embed_lines
from .state import StripeState

__all__ = [
    "ProrationLine",
    "create_invoice",
    "invoice_item_from",
    "line_for_period",
    "prorate",
    "round_half_away",
]

Obj = dict[str, Any]


@dataclass(frozen=True)
class ProrationLine:
    """One proration the change causes; becomes an invoice item (or a preview line)."""

    amount: int
    quantity: int
    description: str
    price: Obj
    subscription: str
    subscription_item: str
    period_start: int
    period_end: int


def round_half_away(value: Fraction) -> int:
    """Round to an integer, halves away from zero (so credits mirror charges exactly)."""
    magnitude = (abs(value) * 2 + 1) // 2
    return int(magnitude if value >= 0 else -magnitude)


def prorate(
    state: StripeState,
    sub: Obj,
    item_id: str,
    price: Obj,
    delta: int,
    period: tuple[int, int],
    at: int,
) -> ProrationLine | None:
    """The proration line for ``delta`` units of ``price`` from ``at`` to the period end."""
    start, end = period
    if delta == 0 or end <= start:
        return None
    at = min(max(at, start), end)
    amount = round_half_away(Fraction(delta * int(price["unit_amount"]) * (end - at), end - start))
    day = datetime.fromtimestamp(at, tz=timezone.utc).strftime("%d %b %Y")
    name = state.product_name(str(price["product"]))
    what = "Remaining time on" if delta > 0 else "Unused time on"
    return ProrationLine(
        amount=amount,
        quantity=abs(delta),
        description=f"{what} {abs(delta)} × {name} after {day}",
        price=price,
        subscription=str(sub["id"]),
        subscription_item=item_id,
        period_start=at,
        period_end=end,
    )


def _pricing(price: Obj) -> Obj:
    return {
        "price_details": {"price": price["id"], "product": price["product"]},
        "type": "price_details",
        "unit_amount_decimal": str(price["unit_amount"]),
    }


def invoice_item_from(state: StripeState, line: ProrationLine, customer: str) -> Obj:
    """Store a pending proration invoice item (billed on the subscription's next invoice)."""
    item: Obj = {
        "id": state.new_id("ii"),
        "object": "invoiceitem",
        "amount": line.amount,
        "currency": line.price["currency"],
        "customer": customer,
        "date": state.now(),
        "description": line.description,
        "discountable": False,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": {},
        "net_amount": line.amount,
        "parent": {
            "subscription_details": {
                "subscription": line.subscription,
                "subscription_item": line.subscription_item,
            },
            "type": "subscription_details",
        },
        "period": {"end": line.period_end, "start": line.period_start},
        "pricing": _pricing(line.price),
        "proration": True,
        "proration_details": {"discount_amounts": []},
        "quantity": line.quantity,
        "tax_rates": [],
        "test_clock": None,
    }
    state.invoice_items.add(item)
    state.pending_items_by_sub.setdefault(line.subscription, []).append(item["id"])
    return item


def _line(
    state: StripeState,
    *,
    amount: int,
    description: str,
    price: Obj,
    quantity: int,
    period: tuple[int, int],
    proration: bool,
    subscription: str,
    subscription_item: str,
    invoice_item: str | None,
) -> Obj:
    return {
        "id": state.new_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": price["currency"],
        "description": description,
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": {},
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": invoice_item,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": subscription,
                "subscription_item": subscription_item,
            },
            "type": "subscription_item_details",
        },
        "period": {"end": period[1], "start": period[0]},
        "pricing": _pricing(price),
        "quantity": quantity,
        "subtotal": amount,
        "taxes": [],
    }


def line_for_invoice_item(state: StripeState, ii: Obj) -> Obj:
    """The invoice line a pending invoice item becomes."""
    details = ii["parent"]["subscription_details"]
    price = state.prices.get(ii["pricing"]["price_details"]["price"]) or {
        "id": ii["pricing"]["price_details"]["price"],
        "currency": ii["currency"],
        "product": ii["pricing"]["price_details"]["product"],
        "unit_amount": 0,
    }
    return _line(
        state,
        amount=int(ii["amount"]),
        description=str(ii["description"]),
        price=price,
        quantity=int(ii["quantity"]),
        period=(ii["period"]["start"], ii["period"]["end"]),
        proration=bool(ii["proration"]),
        subscription=details["subscription"],
        subscription_item=details["subscription_item"],
        invoice_item=ii["id"],
    )


def line_for_proration(state: StripeState, line: ProrationLine) -> Obj:
    """A preview line for a proration that has not been stored as an invoice item."""
    return _line(
        state,
        amount=line.amount,
        description=line.description,
        price=line.price,
        quantity=line.quantity,
        period=(line.period_start, line.period_end),
        proration=True,
        subscription=line.subscription,
        subscription_item=line.subscription_item,
        invoice_item=None,
    )


def line_for_period(
    state: StripeState, item: Obj, period: tuple[int, int], trial: bool = False
) -> Obj:
    """The regular (non-proration) line billing ``item`` for a whole period."""
    price = item["price"]
    quantity = int(item["quantity"])
    name = state.product_name(str(price["product"]))
    if trial:
        description = f"Trial period for {name}"
    else:
        description = f"{quantity} × {name}"
    return _line(
        state,
        amount=0 if trial else quantity * int(price["unit_amount"]),
        description=description,
        price=price,
        quantity=quantity,
        period=period,
        proration=False,
        subscription=str(item["subscription"]),
        subscription_item=str(item["id"]),
        invoice_item=None,
    )


def build_invoice(
    state: StripeState,
    sub: Obj,
    lines: list[Obj],
    billing_reason: str,
    invoice_id: str,
) -> Obj:
    """An invoice object around ``lines`` (not stored, not paid; its lines can be listed)."""
    total = sum(int(line["amount"]) for line in lines)
    starts = [line["period"]["start"] for line in lines] or [state.now()]
    ends = [line["period"]["end"] for line in lines] or [state.now()]
    for line in lines:
        line["invoice"] = invoice_id
    return {
        "id": invoice_id,
        "object": "invoice",
        "amount_due": max(total, 0),
        "amount_paid": 0,
        "amount_remaining": max(total, 0),
        "attempt_count": 0,
        "attempted": False,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": state.now(),
        "currency": sub["currency"],
        "customer": sub["customer"],
        "description": None,
        "ending_balance": 0,
        "hosted_invoice_url": None,
        "lines": embed_lines(state, invoice_id, lines),
        "livemode": False,
        "metadata": {},
        "number": None,
        "parent": {
            "quote_details": None,
            "subscription_details": {"metadata": dict(sub["metadata"]), "subscription": sub["id"]},
            "type": "subscription_details",
        },
        "period_end": max(ends),
        "period_start": min(starts),
        "starting_balance": 0,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": total,
        "total": total,
    }


def create_invoice(
    state: StripeState,
    sub: Obj,
    lines: list[Obj],
    billing_reason: str,
    include_pending: bool = True,
) -> tuple[Obj, bool]:
    """Create, finalize and try to pay an invoice; returns (invoice, paid).

    Pending invoice items of the subscription are swept onto it (as Stripe does), so each
    proration is billed exactly once. Emits ``invoice.paid`` or ``invoice.payment_failed``.
    """
    invoice_id = state.new_id("in")
    all_lines = list(lines)
    if include_pending:
        for ii_id in state.pending_items_by_sub.pop(str(sub["id"]), []):
            ii = state.invoice_items.get(ii_id)
            if ii is not None:
                ii["invoice"] = invoice_id
                all_lines.append(line_for_invoice_item(state, ii))
    invoice = build_invoice(state, sub, all_lines, billing_reason, invoice_id)
    invoice["number"] = f"STANDIN-{len(state.invoices.order) + 1:06d}"
    invoice["status"] = "open"
    invoice["status_transitions"]["finalized_at"] = state.now()
    state.invoices.add(invoice)
    sub["latest_invoice"] = invoice_id
    paid = invoice["amount_due"] == 0 or sub["customer"] not in state.failing_customers
    invoice["attempted"] = True
    invoice["attempt_count"] = 1
    if paid:
        invoice["status"] = "paid"
        invoice["amount_paid"] = invoice["amount_due"]
        invoice["amount_remaining"] = 0
        invoice["status_transitions"]["paid_at"] = state.now()
        state.emit("invoice.paid", invoice)
    else:
        state.emit("invoice.payment_failed", invoice)
    return invoice, paid
