"""One function per API endpoint: parse parameters, call the domain code, return the object.

Handlers run with the state lock held (see ``routes.py``) and return stored objects; the router
copies and expands them before answering.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .catalog import create_customer, create_price, create_product, merge_metadata, update_customer
from .checkout import complete_session, create_portal_session, create_session, expire_session
from .errors import StripeError, card_declined
from .forms import as_bool, as_int
from .invoice_lines import list_lines
from .items import apply_changes, plan_changes
from .lifecycle import cancel, create_subscription, set_status
from .preview import create_preview, item_changes
from .render import list_response
from .state import StripeState
from .sub_common import current_period, ensure_updatable, items_of

__all__ = ["Api", "Handler"]

Obj = dict[str, Any]


class Api:
    """The context a handler gets: the state and the base URL the client used to reach us."""

    def __init__(self, state: StripeState, base_url: str) -> None:
        self.state = state
        self.base_url = base_url


Handler = Callable[..., Obj]


def _eq(params: dict[str, Any], name: str, obj: Obj, field: str | None = None) -> bool:
    return name not in params or obj.get(field or name) == params[name]


# -- customers, products, prices -----------------------------------------------------------------
def customers_create(api: Api, p: Obj) -> Obj:
    return create_customer(api.state, {k: v for k, v in p.items() if k != "expand"})


def customers_retrieve(api: Api, p: Obj, id: str) -> Obj:
    return api.state.customers.require(id)


def customers_update(api: Api, p: Obj, id: str) -> Obj:
    return update_customer(api.state, id, p)


def customers_list(api: Api, p: Obj) -> Obj:
    return list_response(
        api.state, api.state.customers, "/v1/customers", p, where=lambda c: _eq(p, "email", c)
    )


def products_create(api: Api, p: Obj) -> Obj:
    return create_product(api.state, p)


def products_retrieve(api: Api, p: Obj, id: str) -> Obj:
    return api.state.products.require(id)


def products_list(api: Api, p: Obj) -> Obj:
    active = as_bool(p["active"], "active") if "active" in p else None
    return list_response(
        api.state,
        api.state.products,
        "/v1/products",
        p,
        where=lambda o: active is None or o["active"] == active,
    )


def prices_create(api: Api, p: Obj) -> Obj:
    return create_price(api.state, p)


def prices_retrieve(api: Api, p: Obj, id: str) -> Obj:
    return api.state.prices.require(id)


def prices_list(api: Api, p: Obj) -> Obj:
    active = as_bool(p["active"], "active") if "active" in p else None
    lookup = p.get("lookup_keys")

    def where(o: Obj) -> bool:
        return (
            _eq(p, "product", o)
            and _eq(p, "currency", o)
            and _eq(p, "type", o)
            and (active is None or o["active"] == active)
            and (not lookup or o["lookup_key"] in lookup)
        )

    return list_response(api.state, api.state.prices, "/v1/prices", p, where=where)


# -- subscriptions --------------------------------------------------------------------------------
def subscriptions_create(api: Api, p: Obj) -> Obj:
    state = api.state
    customer = p.get("customer")
    if not customer:
        raise StripeError(
            "Missing required param: customer.", param="customer", code="parameter_missing"
        )
    state.customers.require(str(customer), "customer")
    if p.get("payment_behavior") == "error_if_incomplete" and customer in state.failing_customers:
        raise card_declined()
    items = []
    for i, it in enumerate(p.get("items") or []):
        qty = as_int(it.get("quantity", 1), f"items[{i}][quantity]", minimum=0)
        items.append((str(it.get("price") or ""), qty, merge_metadata({}, it.get("metadata"))))
    trial = p.get("trial_period_days")
    return create_subscription(
        state,
        str(customer),
        items,
        metadata=merge_metadata({}, p.get("metadata")),
        trial_days=as_int(trial, "trial_period_days", 0) if trial else None,
    )


def subscriptions_retrieve(api: Api, p: Obj, id: str) -> Obj:
    return api.state.subscriptions.require(id)


def subscriptions_list(api: Api, p: Obj) -> Obj:
    status = p.get("status")
    price = p.get("price")
    customer = p.get("customer")

    def where(s: Obj) -> bool:
        if status in (None, ""):
            ok = s["status"] not in ("canceled", "incomplete_expired")
        elif status == "ended":
            ok = s["status"] in ("canceled", "incomplete_expired")
        else:
            ok = status == "all" or s["status"] == status
        return ok and (not price or any(i["price"]["id"] == price for i in items_of(s)))

    within = None
    if customer:
        within = api.state.subs_by_customer.get(str(customer), [])
    return list_response(
        api.state, api.state.subscriptions, "/v1/subscriptions", p, where=where, within=within
    )


_METADATA_ONLY = frozenset({"metadata", "expand", "cancellation_details"})


def subscriptions_update(api: Api, p: Obj, id: str) -> Obj:
    state = api.state
    sub = state.subscriptions.require(id)
    if set(p) - _METADATA_ONLY:
        ensure_updatable(sub)
    planned = plan_changes(state, sub, item_changes(p.get("items"), "items"))
    updates: Obj = {}
    if "metadata" in p:
        updates["metadata"] = merge_metadata(sub["metadata"], p["metadata"])
    if "description" in p:
        updates["description"] = p["description"] or None
    if "cancel_at_period_end" in p:
        at_end = as_bool(p["cancel_at_period_end"], "cancel_at_period_end")
        updates["cancel_at_period_end"] = at_end
        updates["cancel_at"] = current_period(sub)[1] if at_end else None
    return apply_changes(
        state,
        sub,
        planned,
        proration_behavior=p.get("proration_behavior", "create_prorations"),
        proration_date=as_int(p["proration_date"], "proration_date")
        if "proration_date" in p
        else None,
        payment_behavior=p.get("payment_behavior", "allow_incomplete"),
        updates=updates,
    )


def subscriptions_cancel(api: Api, p: Obj, id: str) -> Obj:
    sub = api.state.subscriptions.require(id)
    return cancel(
        api.state,
        sub,
        prorate_unused=as_bool(p.get("prorate", False), "prorate"),
        invoice_now=as_bool(p.get("invoice_now", False), "invoice_now"),
    )


def subscriptions_pause(api: Api, p: Obj, id: str) -> Obj:
    sub = api.state.subscriptions.require(id)
    ensure_updatable(sub)
    return set_status(api.state, sub, "paused")


def subscriptions_resume(api: Api, p: Obj, id: str) -> Obj:
    sub = api.state.subscriptions.require(id)
    if sub["status"] != "paused":
        raise StripeError(f"Subscription {id} is not paused (status: {sub['status']}).")
    return set_status(api.state, sub, "active")


# -- subscription items ---------------------------------------------------------------------
def items_list(api: Api, p: Obj) -> Obj:
    sub_id = p.get("subscription")
    if not sub_id:
        raise StripeError(
            "Missing required param: subscription.", param="subscription", code="parameter_missing"
        )
    sub = api.state.subscriptions.require(str(sub_id), "subscription")
    ids = [i["id"] for i in items_of(sub)]
    return list_response(
        api.state,
        api.state.items,
        "/v1/subscription_items",
        p,
        within=sorted(ids, key=api.state.items.pos.__getitem__),
    )


def items_retrieve(api: Api, p: Obj, id: str) -> Obj:
    return api.state.items.require(id)


def items_update(api: Api, p: Obj, id: str) -> Obj:
    state = api.state
    item = state.items.require(id)
    sub = state.subscriptions.objects[item["subscription"]]
    raw: Obj = {k: p[k] for k in ("quantity", "price", "metadata") if k in p}
    if "quantity" in raw:  # checked here so the error names `quantity`, not `items[0][...]`
        raw["quantity"] = as_int(raw["quantity"], "quantity", minimum=0)
    raw["id"] = id
    planned = plan_changes(state, sub, item_changes([raw], "items"))
    apply_changes(
        state,
        sub,
        planned,
        proration_behavior=p.get("proration_behavior", "create_prorations"),
        proration_date=as_int(p["proration_date"], "proration_date")
        if "proration_date" in p
        else None,
        payment_behavior=p.get("payment_behavior", "allow_incomplete"),
    )
    return item


# -- invoices, invoice items ----------------------------------------------------------------------
def invoice_items_list(api: Api, p: Obj) -> Obj:
    pending = as_bool(p["pending"], "pending") if "pending" in p else None

    def where(o: Obj) -> bool:
        return (
            _eq(p, "customer", o)
            and _eq(p, "invoice", o)
            and (pending is None or (o["invoice"] is None) == pending)
        )

    return list_response(api.state, api.state.invoice_items, "/v1/invoiceitems", p, where=where)


def invoices_list(api: Api, p: Obj) -> Obj:
    def where(o: Obj) -> bool:
        sub = o["parent"]["subscription_details"]["subscription"]
        return (
            _eq(p, "customer", o)
            and _eq(p, "status", o)
            and ("subscription" not in p or sub == p["subscription"])
        )

    return list_response(api.state, api.state.invoices, "/v1/invoices", p, where=where)


def invoices_retrieve(api: Api, p: Obj, id: str) -> Obj:
    return api.state.invoices.require(id)


def invoices_preview(api: Api, p: Obj) -> Obj:
    return create_preview(api.state, p)


def invoice_lines_list(api: Api, p: Obj, id: str) -> Obj:
    return list_lines(api.state, id, p)


# -- checkout, portal, events ---------------------------------------------------------------------
def checkout_create(api: Api, p: Obj) -> Obj:
    return create_session(api.state, p, api.base_url)


def checkout_retrieve(api: Api, p: Obj, id: str) -> Obj:
    return api.state.checkout_sessions.require(id)


def checkout_list(api: Api, p: Obj) -> Obj:
    def where(o: Obj) -> bool:
        return _eq(p, "customer", o) and _eq(p, "subscription", o) and _eq(p, "status", o)

    return list_response(
        api.state, api.state.checkout_sessions, "/v1/checkout/sessions", p, where=where
    )


def checkout_expire(api: Api, p: Obj, id: str) -> Obj:
    return expire_session(api.state, id)


def checkout_complete(api: Api, p: Obj, id: str) -> Obj:
    return complete_session(api.state, id)


def portal_create(api: Api, p: Obj) -> Obj:
    return create_portal_session(api.state, p, api.base_url)


def events_list(api: Api, p: Obj) -> Obj:
    wanted = p.get("types") or ([p["type"]] if p.get("type") else None)

    def matches(event_type: str) -> bool:
        return wanted is None or any(
            event_type == w or (w.endswith("*") and event_type.startswith(w[:-1])) for w in wanted
        )

    return list_response(
        api.state, api.state.events, "/v1/events", p, where=lambda e: matches(e["type"])
    )


def events_retrieve(api: Api, p: Obj, id: str) -> Obj:
    return api.state.events.require(id)
