"""An invoice's ``lines``: the first page embedded in the invoice, the rest behind a list endpoint.

Stripe embeds only the first handful of lines in an invoice (10, the default page of every list)
and sets ``lines.has_more`` when there are more; ``GET /v1/invoices/{invoice}/lines`` pages
through all of them, preview invoices (``upcoming_in_...``) included. A client that reads only
the embedded list misses lines, and the stand-in makes that visible.

Lines keep the invoice's own order. For a preview that is Stripe's: pending invoice items
(prorations included) newest first, then the subscription's regular lines.
"""

from __future__ import annotations

from typing import Any

from .errors import StripeError
from .render import list_object, page_params
from .state import StripeState

__all__ = ["EMBEDDED_LINES", "KEPT_PREVIEWS", "embed_lines", "list_lines"]

Obj = dict[str, Any]
EMBEDDED_LINES = 10  # Stripe's default page size, and what an invoice embeds
KEPT_PREVIEWS = 500  # preview invoices whose lines stay listable (oldest forgotten first)


def embed_lines(state: StripeState, invoice_id: str, lines: list[Obj]) -> Obj:
    """Remember all of ``lines`` for paging and return the list object the invoice embeds."""
    state.invoice_lines[invoice_id] = lines
    if invoice_id.startswith("upcoming_in"):
        previews = [k for k in state.invoice_lines if k.startswith("upcoming_in")]
        for old in previews[: max(0, len(previews) - KEPT_PREVIEWS)]:
            del state.invoice_lines[old]
    url = f"/v1/invoices/{invoice_id}/lines"
    return list_object(url, lines[:EMBEDDED_LINES], len(lines) > EMBEDDED_LINES)


def _index(invoice_id: str, lines: list[Obj], line_id: str, param: str) -> int:
    for i, line in enumerate(lines):
        if line["id"] == line_id:
            return i
    raise StripeError(
        f"Invoice {invoice_id} does not have a line item {line_id}",
        status=404,
        param=param,
        code="resource_missing",
    )


def list_lines(state: StripeState, invoice_id: str, params: dict[str, Any]) -> Obj:
    """``GET /v1/invoices/{invoice}/lines``: one page (``limit`` 1..100, default 10)."""
    lines = state.invoice_lines.get(invoice_id)
    if lines is None:
        raise StripeError(
            f"No such invoice: '{invoice_id}'", status=404, param="invoice", code="resource_missing"
        )
    limit, after, before = page_params(params)
    if before is not None:
        end = _index(invoice_id, lines, before, "ending_before")
        page = lines[max(0, end - limit) : end]
        has_more = end - limit > 0
    else:
        start = 0 if after is None else _index(invoice_id, lines, after, "starting_after") + 1
        page = lines[start : start + limit]
        has_more = start + limit < len(lines)
    return list_object(f"/v1/invoices/{invoice_id}/lines", page, has_more)
