"""Turning stored objects into API responses: list envelopes, pagination params and ``expand``.

Responses are deep copies, so a response (or an event snapshot) never changes after the fact.
"""

from __future__ import annotations

import copy
from typing import Any

from .forms import as_int
from .state import Collection, StripeState

__all__ = ["expand", "list_object", "list_response", "page_params"]

Obj = dict[str, Any]

# Which collection an expandable id field points into.
_EXPANDABLE = {
    "customer": "customers",
    "subscription": "subscriptions",
    "latest_invoice": "invoices",
    "invoice": "invoices",
    "product": "products",
    "price": "prices",
}


def list_object(url: str, data: list[Obj], has_more: bool) -> Obj:
    """Stripe's list envelope."""
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def page_params(params: dict[str, Any]) -> tuple[int, str | None, str | None]:
    """Pagination parameters: ``limit`` (default 10, 1..100) and the two cursors."""
    limit = as_int(params.get("limit", 10), "limit", minimum=1)
    if limit > 100:
        from .errors import StripeError

        raise StripeError(
            "This value must be less than or equal to 100.",
            param="limit",
            code="parameter_invalid_integer",
        )
    after = params.get("starting_after") or None
    before = params.get("ending_before") or None
    return limit, after, before


def list_response(
    state: StripeState,
    collection: Collection,
    url: str,
    params: dict[str, Any],
    **kwargs: Any,
) -> Obj:
    """A page of ``collection`` (``kwargs`` go to :meth:`Collection.page`).

    Holds the stored objects themselves: the router copies the answer before expanding it.
    """
    limit, after, before = page_params(params)
    data, has_more = collection.page(
        limit=limit, starting_after=after, ending_before=before, **kwargs
    )
    return list_object(url, data, has_more)


def expand(state: StripeState, obj: Obj, paths: Any) -> Obj:
    """Apply ``expand`` paths (``customer``, ``data.subscription``, ``items.data.price.product``).

    Works on an already copied object. Unknown paths are ignored rather than rejected.
    """
    if not paths:
        return obj
    for path in paths if isinstance(paths, list) else [paths]:
        if isinstance(path, str):
            _expand(state, obj, path.split("."))
    return obj


def _expand(state: StripeState, node: Any, parts: list[str]) -> None:
    if not parts or not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    if head == "data" and isinstance(node.get("data"), list):
        for child in node["data"]:
            _expand(state, child, rest)
        return
    if head == "line_items" and node.get("object") == "checkout.session":
        private = state.checkout_private.get(node["id"], {})
        lines = copy.deepcopy(private.get("line_items_rendered", []))
        node["line_items"] = list_object(
            f"/v1/checkout/sessions/{node['id']}/line_items", lines, False
        )
        return
    value = node.get(head)
    if isinstance(value, str) and head in _EXPANDABLE:
        target = getattr(state, _EXPANDABLE[head]).get(value)
        if target is not None:
            node[head] = value = copy.deepcopy(target)
    _expand(state, value, rest)
