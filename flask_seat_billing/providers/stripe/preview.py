"""What a seat change would cost now, read from Stripe's invoice preview."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import stripe

from ..base import RemoteSubscription, SeatPreview
from .data import plain
from .errors import call
from .ids import stripe_id


def preview_seat_change(
    client: stripe.StripeClient, subscription: RemoteSubscription, quantity: int, *,
    proration_behavior: str,
) -> SeatPreview:
    """The cost of this change alone: what it adds to the invoice, read from every page.

    A preview invoice holds every pending invoice item, so prorations left by earlier
    changes in the period are in it too; summing its proration lines overstates the price.
    Stripe's rule for telling the change's own lines apart (their period starts at the
    ``proration_date`` sent) fails when an earlier change was applied in that same second,
    which is common (a member joins, and the page that follows previews the next seat). So
    two previews at one ``proration_date`` are compared, one with the quantity unchanged:
    the proration lines only the second holds are this change's, whatever else is pending.
    Two requests (plus one per further 100 lines), against one for the inexact rule.
    """
    item_id = subscription.seat_item_id
    if item_id is None:
        raise ValueError(f"Subscription {subscription.id} has no seat item to preview.")
    now = subscription.seats if subscription.seats is not None else quantity
    return preview_items(
        client, subscription, [{"id": item_id, "quantity": now}],
        [{"id": item_id, "quantity": quantity}], to_seats=quantity,
        proration_behavior=proration_behavior)


def preview_items(
    client: stripe.StripeClient, subscription: RemoteSubscription,
    unchanged_items: list[dict[str, Any]], changed_items: list[dict[str, Any]], *,
    to_seats: int, proration_behavior: str,
) -> SeatPreview:
    """The proration lines that ``changed_items`` (``subscription_details[items]`` entries:
    one seat item, or several seat types, a new type by its price) adds to a preview that
    sends ``unchanged_items`` (the same items at their quantities now) at the same
    ``proration_date``: see :func:`preview_seat_change`."""
    proration_date = int(time.time())
    behavior = proration_behavior if proration_behavior != "none" else "create_prorations"

    def preview(items: list[dict[str, Any]]) -> dict[str, Any]:
        details: dict[str, Any] = {
            "proration_behavior": behavior, "proration_date": proration_date}
        if items:  # a change that only adds items: the preview of the subscription as it is
            details["items"] = items
        params: dict[str, Any] = {
            "customer": subscription.customer_id,
            "subscription": subscription.id,
            "subscription_details": details,
        }
        return plain(call(lambda: client.v1.invoices.create_preview(params=params)))  # type: ignore[arg-type]

    unchanged = preview(unchanged_items)
    invoice = preview(changed_items)
    already = Counter(_line_key(line) for line in _proration_lines(client, unchanged))
    change_lines = []
    for line in _proration_lines(client, invoice):
        key = _line_key(line)
        if already[key]:
            already[key] -= 1
        else:
            change_lines.append(line)
    prorated = sum(int(line.get("amount") or 0) for line in change_lines)
    if proration_behavior == "none":
        prorated = 0
    return SeatPreview(
        organization_id=None,
        from_seats=subscription.seats or 0,
        to_seats=to_seats,
        amount_due_now=prorated if proration_behavior == "always_invoice" else 0,
        prorated_amount=prorated,
        currency=str(invoice.get("currency") or subscription.currency or "usd"),
        lines=change_lines,
    )

def _proration_lines(client: stripe.StripeClient, invoice: dict[str, Any]) -> list[dict[str, Any]]:
    return [line for line in _preview_lines(client, invoice) if _is_proration(line)]

def _preview_lines(client: stripe.StripeClient, invoice: dict[str, Any]) -> list[dict[str, Any]]:
    """Every line of a (preview) invoice: the embedded first page, then the rest in 100s."""
    embedded = invoice.get("lines") or {}
    lines = [plain(line) for line in embedded.get("data") or []]
    more = bool(embedded.get("has_more"))
    while more and lines:
        invoice_id = stripe_id(invoice.get("id"), "invoice")
        page_params = {"limit": 100, "starting_after": str(lines[-1]["id"])}
        page = call(
            lambda: client.v1.invoices.line_items.list(invoice_id, params=page_params)  # type: ignore[arg-type]  # noqa: B023
        )
        lines += [plain(line) for line in page.data]
        more = bool(page.has_more) and bool(page.data)
    return lines


def _line_key(line: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two preview lines the same charge (line ids differ from preview to preview)."""
    period = line.get("period") or {}
    parent = line.get("parent") or {}
    details = parent.get("subscription_item_details") if isinstance(parent, dict) else None
    item = details.get("subscription_item") if isinstance(details, dict) else None
    return (
        line.get("amount"), line.get("quantity"), period.get("start"), period.get("end"),
        item, line.get("description"),
    )


def _is_proration(line: dict[str, Any]) -> bool:
    if line.get("proration"):
        return True
    parent = line.get("parent") or {}
    for detail in parent.values() if isinstance(parent, dict) else []:
        if isinstance(detail, dict) and detail.get("proration"):
            return True
    return False
