"""Products, customers, checkouts and customer sessions endpoints.

Only what a per-seat billing integration touches is implemented, but each implemented endpoint
validates like Polar (422 in FastAPI's shape) so a wrong call fails here the way it would in
production rather than passing silently.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from . import _errors as err
from ._http import Call, Route
from ._listing import page_params, paginate, parse_bool
from ._models import Checkout, Product, SeatTier
from ._routes_subscriptions import check_metadata
from ._serialize import checkout_json, page_json, session_json
from ._store import ACTIVE_STATUSES, new_id

TRIAL_INTERVALS = ("day", "week", "month", "year")
MAX_TRIAL_INTERVAL_COUNT = 1000

__all__ = ["ROUTES", "portal_url"]

JSON = dict[str, Any]
MAX_CHECKOUT_SEATS = 10_000


def portal_url(base_url: str, token: str) -> str:
    """Where a customer session's portal lives on the stand-in."""
    return f"{base_url}/portal?customer_session_token={token}"


def _int_field(body: JSON, name: str, low: int, high: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise err.validation_error(["body", name], "Input should be a valid integer", "int_type")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" + (f" and <= {high}" if high is not None else "")
        raise err.validation_error(
            ["body", name], f"Input should be {bounds}", "value_error", value
        )
    return value


def _optional_str(body: JSON, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise err.validation_error(["body", name], "Input should be a valid string", "string_type")
    return value


# -- products ---------------------------------------------------------------------------------
def _list_products(call: Call) -> tuple[int, Any]:
    page, limit = page_params(call.args)
    ids = set(call.args.getlist("id"))
    query = (call.args.get("query") or "").lower()
    archived = parse_bool(call.args, "is_archived")
    store = call.store
    with store.lock:
        found = [
            p
            for p in store.products.values()
            if (not ids or p.id in ids)
            and query in p.name.lower()
            and (archived is None or p.is_archived is archived)
        ]
        found.reverse()  # -created_at
        start, stop, total = paginate(found, page, limit)
        items = [store.product_json(p) for p in found[start:stop]]
    return 200, page_json(items, total, limit)


def _get_product(call: Call) -> tuple[int, Any]:
    with call.store.lock:
        return 200, call.store.product_json(call.store.product(call.path_params["id"]))


def _create_product(call: Call) -> tuple[int, Any]:
    body = call.body()
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise err.validation_error(["body", "name"], "Field required", "missing")
    interval = body.get("recurring_interval")
    if interval not in ("day", "week", "month", "year"):
        raise err.validation_error(
            ["body", "recurring_interval"],
            "Only recurring products are supported",
            "enum",
            interval,
        )
    fixed: int | None = None
    tiers: tuple[SeatTier, ...] = ()
    tier_type = "volume"
    for index, price in enumerate(body.get("prices") or []):
        kind = price.get("amount_type") if isinstance(price, dict) else None
        if kind == "fixed":
            fixed = int(price.get("price_amount", 0))
        elif kind == "seat_based":
            raw = price.get("seat_tiers") or {}
            tier_type = raw.get("seat_tier_type", "volume")
            tiers = tuple(
                SeatTier(int(t["min_seats"]), t.get("max_seats"), int(t["price_per_seat"]))
                for t in raw.get("tiers", [])
            )
        else:
            raise err.validation_error(
                ["body", "prices", index],
                "The stand-in supports fixed and seat_based prices",
                "value_error",
                kind,
            )
    try:
        product = call.store.add_product(
            name,
            tiers,
            seat_tier_type=tier_type,
            fixed_price=fixed,
            recurring_interval=interval,
            recurring_interval_count=int(body.get("recurring_interval_count") or 1),
            description=_optional_str(body, "description"),
            metadata=check_metadata(body.get("metadata", {})),
        )
    except ValueError as exc:
        raise err.validation_error(["body", "prices"], str(exc)) from None
    call.changed = True
    return 201, call.store.product_json(product)


# -- customers --------------------------------------------------------------------------------
def _list_customers(call: Call) -> tuple[int, Any]:
    page, limit = page_params(call.args)
    email = call.args.get("email")
    query = (call.args.get("query") or "").lower()
    active = parse_bool(call.args, "active")
    store = call.store
    with store.lock:
        found = []
        for c in reversed(list(store.customers.values())):
            if email is not None and c.email != email:
                continue
            text = f"{c.email} {c.name or ''} {c.external_id or ''}".lower()
            if query and query not in text:
                continue
            if active is not None:
                subs = store.subs_by_customer.get(c.id, [])
                has = any(store.subscriptions[s].status in ACTIVE_STATUSES for s in subs)
                if has is not active:
                    continue
            found.append(c)
        start, stop, total = paginate(found, page, limit)
        items = [store.customer_json(c) for c in found[start:stop]]
    return 200, page_json(items, total, limit)


def _create_customer(call: Call) -> tuple[int, Any]:
    body = call.body()
    email = body.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise err.validation_error(["body", "email"], "A valid email address is required")
    store = call.store
    with store.lock:
        if any(c.email == email for c in store.customers.values()):
            raise err.validation_error(
                ["body", "email"],
                "A customer with this email address already exists.",
                input=email,
            )
        customer = store.add_customer(
            external_id=_optional_str(body, "external_id"),
            email=email,
            name=_optional_str(body, "name"),
            metadata=check_metadata(body.get("metadata", {})),
        )
        call.changed = True
        return 201, store.customer_json(customer)


def _get_customer(call: Call) -> tuple[int, Any]:
    with call.store.lock:
        return 200, call.store.customer_json(call.store.customer(call.path_params["id"]))


def _get_customer_external(call: Call) -> tuple[int, Any]:
    store = call.store
    with store.lock:
        return 200, store.customer_json(store.customer_by_external(call.path_params["id"]))


# -- checkouts --------------------------------------------------------------------------------
def _checkout_products(call: Call, body: JSON) -> list[Product]:
    ids = body.get("products")
    if not isinstance(ids, list) or not ids:
        raise err.validation_error(["body", "products"], "Field required", "missing")
    products = []
    for index, product_id in enumerate(ids):
        product = call.store.products.get(str(product_id))
        if product is None or product.is_archived:
            raise err.validation_error(
                ["body", "products", index], "Product does not exist.", "value_error", product_id
            )
        products.append(product)
    return products


def _trial_fields(body: JSON) -> tuple[str | None, int | None]:
    """``trial_interval`` and ``trial_interval_count``, checked as Polar's
    ``TrialConfigurationInputMixin`` does: a known unit, 1..1000 of them, both or neither."""
    interval = body.get("trial_interval")
    if interval is not None and interval not in TRIAL_INTERVALS:
        raise err.validation_error(
            ["body", "trial_interval"],
            "Input should be 'day', 'week', 'month' or 'year'",
            "enum",
            interval,
        )
    count = _int_field(body, "trial_interval_count", 1, MAX_TRIAL_INTERVAL_COUNT)
    if (interval is None) != (count is None):
        raise err.validation_error(
            ["body"],
            "Both trial_interval and trial_interval_count must be set together.",
            "missing",
        )
    return interval, count


def _create_checkout(call: Call) -> tuple[int, Any]:
    body = call.body()
    store = call.store
    with store.lock:
        products = _checkout_products(call, body)
        product = products[0]
        seats = _int_field(body, "seats", 1, MAX_CHECKOUT_SEATS)
        min_seats = _int_field(body, "min_seats", 1, MAX_CHECKOUT_SEATS)
        max_seats = _int_field(body, "max_seats", 1, MAX_CHECKOUT_SEATS)
        if product.is_seat_based:
            seats = seats or min_seats or product.minimum_seats
            low = max(product.minimum_seats, min_seats or 1)
            high = min(x for x in (product.maximum_seats, max_seats, MAX_CHECKOUT_SEATS) if x)
            if not low <= seats <= high:
                raise err.validation_error(
                    ["body", "seats"],
                    f"Seats must be between {low} and {high}.",
                    "value_error",
                    seats,
                )
        else:
            seats = None
        trial_interval, trial_count = _trial_fields(body)
        customer_id = _optional_str(body, "customer_id")
        if customer_id is not None and customer_id not in store.customers:
            raise err.validation_error(
                ["body", "customer_id"], "Customer does not exist.", "value_error", customer_id
            )
        now = store.clock()
        checkout_id = new_id()
        checkout = Checkout(
            id=checkout_id,
            client_secret="polar_c_" + secrets.token_urlsafe(24),
            product_id=product.id,
            product_ids=[p.id for p in products],
            created_at=now,
            expires_at=now + timedelta(hours=1),
            seats=seats,
            min_seats=min_seats,
            max_seats=max_seats,
            success_url=_optional_str(body, "success_url")
            or f"{call.base_url}/checkout/{checkout_id}/confirmation",
            return_url=_optional_str(body, "return_url"),
            metadata=check_metadata(body.get("metadata", {})),
            customer_metadata=check_metadata(
                body.get("customer_metadata", {}), "customer_metadata"
            ),
            external_customer_id=_optional_str(body, "external_customer_id"),
            customer_id=customer_id,
            customer_email=_optional_str(body, "customer_email"),
            customer_name=_optional_str(body, "customer_name"),
            trial_interval=trial_interval,
            trial_interval_count=trial_count,
        )
        store.add_checkout(checkout)
        call.changed = True
        return 201, checkout_json(checkout, products, call.base_url)


def _get_checkout(call: Call) -> tuple[int, Any]:
    store = call.store
    with store.lock:
        checkout = store.checkout(call.path_params["id"])
        products = [store.products[p] for p in checkout.product_ids]
        return 200, checkout_json(checkout, products, call.base_url)


def _list_checkouts(call: Call) -> tuple[int, Any]:
    page, limit = page_params(call.args)
    statuses = set(call.args.getlist("status"))
    externals = set(call.args.getlist("external_customer_id"))
    store = call.store
    with store.lock:
        found = [
            c
            for c in reversed(list(store.checkouts.values()))
            if (not statuses or c.status in statuses)
            and (not externals or c.external_customer_id in externals)
        ]
        start, stop, total = paginate(found, page, limit)
        items = [
            checkout_json(c, [store.products[p] for p in c.product_ids], call.base_url)
            for c in found[start:stop]
        ]
    return 200, page_json(items, total, limit)


# -- customer sessions ------------------------------------------------------------------------
def _create_session(call: Call) -> tuple[int, Any]:
    body = call.body()
    store = call.store
    with store.lock:
        if "customer_id" in body:
            customer = store.customers.get(str(body["customer_id"]))
            loc = "customer_id"
        else:
            external = body.get("external_customer_id")
            found = store.customers_by_external.get(str(external))
            customer = store.customers.get(found) if found else None
            loc = "external_customer_id"
        if customer is None:
            raise err.validation_error(["body", loc], "Customer does not exist.", "value_error")
        session = store.add_session(customer, _optional_str(body, "return_url"))
        call.changed = True
        url = portal_url(call.base_url, session.token)
        return 201, session_json(session, customer, url)


ROUTES = [
    Route("GET", "/v1/products/", _list_products),
    Route("POST", "/v1/products/", _create_product),
    Route("GET", "/v1/products/{id}", _get_product),
    Route("GET", "/v1/customers/", _list_customers),
    Route("POST", "/v1/customers/", _create_customer),
    Route("GET", "/v1/customers/external/{id}", _get_customer_external),
    Route("GET", "/v1/customers/{id}", _get_customer),
    Route("GET", "/v1/checkouts/", _list_checkouts),
    Route("POST", "/v1/checkouts/", _create_checkout),
    Route("GET", "/v1/checkouts/{id}", _get_checkout),
    Route("POST", "/v1/customer-sessions/", _create_session),
]
