"""Customers, products and prices: the objects subscriptions are built from."""

from __future__ import annotations

from typing import Any

from .errors import StripeError
from .forms import as_bool, as_int
from .state import StripeState

__all__ = ["create_customer", "create_price", "create_product", "merge_metadata", "update_customer"]

Obj = dict[str, Any]
_INTERVALS = ("day", "week", "month", "year")


def required(params: dict[str, Any], name: str) -> Any:
    """A required parameter, or Stripe's ``Missing required param: x.``."""
    value = params.get(name)
    if value is None or value == "":
        raise StripeError(f"Missing required param: {name}.", param=name, code="parameter_missing")
    return value


def merge_metadata(current: dict[str, str], update: Any, param: str = "metadata") -> dict[str, str]:
    """Stripe's metadata update: keys merge, an empty value unsets a key, ``""`` clears all."""
    if update is None:
        return current
    if update == "":
        return {}
    if not isinstance(update, dict):
        raise StripeError("Invalid hash", param=param, code="parameter_invalid_empty")
    merged = dict(current)
    for key, value in update.items():
        if value == "" or value is None:
            merged.pop(str(key), None)
        else:
            merged[str(key)] = str(value)
    return merged


def create_customer(state: StripeState, params: dict[str, Any], emit: bool = True) -> Obj:
    """``POST /v1/customers``; emits ``customer.created``."""
    customer: Obj = {
        "id": params.get("id") or state.new_id("cus"),
        "object": "customer",
        "balance": 0,
        "created": state.now(),
        "currency": None,
        "delinquent": False,
        "description": params.get("description"),
        "email": params.get("email"),
        "livemode": False,
        "metadata": merge_metadata({}, params.get("metadata")),
        "name": params.get("name"),
        "phone": params.get("phone"),
    }
    if customer["id"] in state.customers.objects:
        raise StripeError(f"Customer already exists: {customer['id']}", param="id")
    state.customers.add(customer)
    if emit:
        state.emit("customer.created", customer)
    return customer


def update_customer(state: StripeState, customer_id: str, params: dict[str, Any]) -> Obj:
    """``POST /v1/customers/{id}``; emits ``customer.updated`` with previous attributes."""
    customer = state.customers.require(customer_id)
    previous: Obj = {}
    for field in ("email", "name", "description", "phone"):
        if field in params and params[field] != customer[field]:
            previous[field] = customer[field]
            customer[field] = params[field] or None
    if "metadata" in params:
        new = merge_metadata(customer["metadata"], params["metadata"])
        if new != customer["metadata"]:
            previous["metadata"] = customer["metadata"]
            customer["metadata"] = new
    if previous:
        state.emit("customer.updated", customer, previous)
    return customer


def create_product(state: StripeState, params: dict[str, Any]) -> Obj:
    """``POST /v1/products``."""
    product: Obj = {
        "id": params.get("id") or state.new_id("prod"),
        "object": "product",
        "active": as_bool(params.get("active", True), "active"),
        "created": state.now(),
        "description": params.get("description"),
        "livemode": False,
        "metadata": merge_metadata({}, params.get("metadata")),
        "name": required(params, "name"),
        "type": "service",
        "updated": state.now(),
    }
    if product["id"] in state.products.objects:
        raise StripeError(f"Product already exists: {product['id']}", param="id")
    state.products.add(product)
    return product


def create_price(state: StripeState, params: dict[str, Any]) -> Obj:
    """``POST /v1/prices``: recurring per-unit prices (one-time prices are stored as such)."""
    currency = str(required(params, "currency")).lower()
    product_id = params.get("product")
    if product_id is None and isinstance(params.get("product_data"), dict):
        product_id = create_product(state, params["product_data"])["id"]
    if product_id is None:
        raise StripeError("Missing required param: product.", param="product")
    state.products.require(str(product_id), "product")
    recurring = None
    if isinstance(params.get("recurring"), dict):
        rec = params["recurring"]
        interval = rec.get("interval")
        if interval not in _INTERVALS:
            raise StripeError(
                f"Invalid recurring[interval]: must be one of {', '.join(_INTERVALS)}",
                param="recurring[interval]",
            )
        recurring = {
            "interval": interval,
            "interval_count": as_int(
                rec.get("interval_count", 1), "recurring[interval_count]", minimum=1
            ),
            "meter": None,
            "usage_type": rec.get("usage_type", "licensed"),
            "trial_period_days": None,
        }
    unit_amount = as_int(required(params, "unit_amount"), "unit_amount", minimum=0)
    price: Obj = {
        "id": params.get("id") or state.new_id("price"),
        "object": "price",
        "active": as_bool(params.get("active", True), "active"),
        "billing_scheme": "per_unit",
        "created": state.now(),
        "currency": currency,
        "livemode": False,
        "lookup_key": params.get("lookup_key"),
        "metadata": merge_metadata({}, params.get("metadata")),
        "nickname": params.get("nickname"),
        "product": product_id,
        "recurring": recurring,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }
    if price["id"] in state.prices.objects:
        raise StripeError(f"Price already exists: {price['id']}", param="id")
    state.prices.add(price)
    return price
