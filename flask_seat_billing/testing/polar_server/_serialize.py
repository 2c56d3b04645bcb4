"""Turn stand-in records into the JSON shapes the polar SDK (``polar.v2026_10.outputs``) loads.

The SDK deserializes with adaptix into slotted dataclasses: every field without a default must be
present, even when it is ``null``, and unions are resolved by literal discriminators
(``amount_type``, customer ``type``). So each builder below emits *all* keys of its model, and the
test suite checks each shape with ``polar.deserialize``.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from ._models import Checkout, Customer, CustomerSession, Product, SeatTier, Subscription

__all__ = [
    "ORGANIZATION_ID",
    "checkout_json",
    "customer_json",
    "iso",
    "page_json",
    "product_json",
    "session_json",
    "subscription_json",
]

ORGANIZATION_ID = "00000000-0000-4000-8000-00000000a11a"
"""The single organization every stand-in object belongs to (tokens are organization tokens)."""

JSON = dict[str, Any]


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with offset, as Polar's API prints timestamps."""
    return None if value is None else value.isoformat()


def _base(id: str, created_at: datetime, modified_at: datetime | None) -> JSON:
    return {"id": id, "created_at": iso(created_at), "modified_at": iso(modified_at)}


def _tier_json(tier: SeatTier) -> JSON:
    return {
        "min_seats": tier.min_seats,
        "max_seats": tier.max_seats,
        "price_per_seat": tier.price_per_seat,
    }


def _price_common(product: Product, price_id: str) -> JSON:
    return {
        **_base(price_id, product.created_at, product.modified_at),
        "source": "catalog",
        "price_currency": product.currency,
        "tax_behavior": None,
        "is_archived": False,
        "product_id": product.id,
    }


def prices_json(product: Product) -> list[JSON]:
    """The product's prices: the fixed one (if any) first, then the seat-based one (if any)."""
    prices: list[JSON] = []
    if product.fixed_price is not None:
        prices.append(
            {
                **_price_common(product, product.fixed_price_id),
                "amount_type": "fixed",
                "price_amount": product.fixed_price,
            }
        )
    if product.seat_tiers:
        prices.append(
            {
                **_price_common(product, product.seat_price_id),
                "amount_type": "seat_based",
                "seat_tiers": {
                    "seat_tier_type": product.seat_tier_type,
                    "tiers": [_tier_json(t) for t in product.seat_tiers],
                    "minimum_seats": product.minimum_seats,
                    "maximum_seats": product.maximum_seats,
                },
            }
        )
    return prices


def _product_common(product: Product) -> JSON:
    trial = product.trial_days
    return {
        **_base(product.id, product.created_at, product.modified_at),
        "trial_interval": "day" if trial else None,
        "trial_interval_count": trial if trial else None,
        "name": product.name,
        "description": product.description,
        "visibility": product.visibility,
        "recurring_interval": product.recurring_interval,
        "recurring_interval_count": product.recurring_interval_count,
        "meter_interval": None,
        "meter_interval_count": None,
        "is_recurring": True,
        "is_archived": product.is_archived,
        "organization_id": ORGANIZATION_ID,
        "prices": prices_json(product),
        "benefits": [],
        "medias": [],
    }


def product_json(product: Product) -> JSON:
    """``outputs.Product``."""
    return {
        **_product_common(product),
        "metadata": dict(product.metadata),
        "is_deletable": False,
        "attached_custom_fields": [],
    }


def checkout_product_json(product: Product) -> JSON:
    """``outputs.CheckoutProduct`` (a product without metadata, as embedded in a checkout)."""
    return _product_common(product)


def _customer_fields(customer: Customer) -> JSON:
    return {
        **_base(customer.id, customer.created_at, customer.modified_at),
        "metadata": dict(customer.metadata),
        "external_id": customer.external_id,
        "email": customer.email,
        "email_verified": False,
        "type": "individual",
        "name": customer.name,
        "billing_name": customer.name,
        "billing_address": None,
        "tax_id": None,
        "locale": None,
        "organization_id": ORGANIZATION_ID,
        "default_payment_method_id": None,
        "deleted_at": None,
        "first_user_event_at": None,
        "avatar_url": None,
    }


def customer_json(customer: Customer) -> JSON:
    """``outputs.CustomerIndividual`` (also valid as ``SubscriptionCustomer``)."""
    return _customer_fields(customer)


def subscription_json(sub: Subscription, product: JSON, customer: JSON, amount: int) -> JSON:
    """``outputs.Subscription``; ``product``/``customer`` are pre-serialized (and cached by the
    caller) because a listing page embeds the same product a hundred times."""
    pending = None
    if sub.pending_update_id is not None and sub.pending_created_at is not None:
        pending = {
            **_base(sub.pending_update_id, sub.pending_created_at, None),
            "applies_at": iso(sub.current_period_end),
            "product_id": None,
            "seats": sub.pending_seats,
            "units": None,
        }
    return {
        **_base(sub.id, sub.created_at, sub.modified_at),
        "amount": amount,
        "currency": product["prices"][0]["price_currency"] if product["prices"] else "usd",
        "recurring_interval": product["recurring_interval"],
        "recurring_interval_count": product["recurring_interval_count"],
        "status": sub.status,
        "current_period_start": iso(sub.current_period_start),
        "current_period_end": iso(sub.current_period_end),
        "current_meter_period_start": None,
        "current_meter_period_end": None,
        "trial_start": iso(sub.trial_start),
        "trial_end": iso(sub.trial_end),
        "cancel_at_period_end": sub.cancel_at_period_end,
        "canceled_at": iso(sub.canceled_at),
        "started_at": iso(sub.started_at),
        "ends_at": iso(sub.ends_at),
        "ended_at": iso(sub.ended_at),
        "past_due_at": iso(sub.past_due_at),
        "pause_at_period_end": False,
        "paused_at": iso(sub.paused_at),
        "resumes_at": None,
        "customer_id": sub.customer_id,
        "product_id": sub.product_id,
        "discount_id": None,
        "checkout_id": sub.checkout_id,
        "seats": sub.seats,
        "units": None,
        "customer_cancellation_reason": sub.customer_cancellation_reason,
        "customer_cancellation_comment": sub.customer_cancellation_comment,
        "metadata": dict(sub.metadata),
        "custom_field_data": {},
        "customer": customer,
        "product": product,
        "discount": None,
        "prices": product["prices"],
        "meters": [],
        "pending_update": pending,
    }


_ADDRESS_FIELDS = ("country", "state", "city", "postal_code", "line1", "line2")


def checkout_json(checkout: Checkout, products: list[Product], base_url: str) -> JSON:
    """``outputs.Checkout``; ``products`` are the checkout's products, the selected one first."""
    product = products[0]
    amount = product.amount(checkout.seats)
    prices = prices_json(product)
    seat_price = [p for p in prices if p["amount_type"] == "seat_based"]
    selected_price = seat_price[0] if seat_price else (prices[0] if prices else None)
    trial = checkout.trial(product)
    return {
        **_base(checkout.id, checkout.created_at, checkout.modified_at),
        "custom_field_data": {},
        "payment_processor": "stripe",
        "status": checkout.status,
        "client_secret": checkout.client_secret,
        "url": f"{base_url}/checkout/{checkout.id}",
        "expires_at": iso(checkout.expires_at),
        "success_url": checkout.success_url,
        "return_url": checkout.return_url,
        "embed_origin": None,
        "amount": amount,
        "seats": checkout.seats,
        "min_seats": checkout.min_seats,
        "max_seats": checkout.max_seats,
        "units": None,
        "min_units": None,
        "max_units": None,
        "discount_amount": 0,
        "net_amount": amount,
        "tax_amount": None,
        "tax_behavior": None,
        "total_amount": amount,
        "currency": product.currency,
        "allow_trial": trial is not None,
        "active_trial_interval": trial[0] if trial else None,
        "active_trial_interval_count": trial[1] if trial else None,
        "trial_end": None,
        "organization_id": ORGANIZATION_ID,
        "product_id": product.id,
        "product_price_id": selected_price["id"] if selected_price else None,
        "discount_id": None,
        "allow_discount_codes": True,
        "require_billing_address": False,
        "is_discount_applicable": True,
        "is_free_product_price": amount == 0,
        "is_payment_required": amount > 0,
        "is_payment_setup_required": True,
        "is_payment_form_required": amount > 0,
        "customer_id": checkout.customer_id,
        "is_business_customer": False,
        "customer_name": checkout.customer_name,
        "customer_email": checkout.customer_email,
        "customer_ip_address": None,
        "customer_billing_name": None,
        "customer_billing_address": None,
        "customer_tax_id": None,
        "locale": None,
        "payment_method_type": None,
        "payment_processor_metadata": {},
        "billing_address_fields": {f: "optional" for f in _ADDRESS_FIELDS},
        "trial_interval": checkout.trial_interval,
        "trial_interval_count": checkout.trial_interval_count,
        "metadata": dict(checkout.metadata),
        "external_customer_id": checkout.external_customer_id,
        "products": [checkout_product_json(p) for p in products],
        "product": checkout_product_json(product),
        "product_price": selected_price,
        "prices": {p.id: prices_json(p) for p in products},
        "discount": None,
        "subscription_id": checkout.subscription_id,
        "attached_custom_fields": [],
        "customer_metadata": dict(checkout.customer_metadata),
    }


def session_json(session: CustomerSession, customer: Customer, portal_url: str) -> JSON:
    """``outputs.CustomerSession``."""
    return {
        **_base(session.id, session.created_at, None),
        "token": session.token,
        "expires_at": iso(session.expires_at),
        "return_url": session.return_url,
        "customer_portal_url": portal_url,
        "customer_id": customer.id,
        "customer": customer_json(customer),
    }


def page_json(items: list[JSON], total: int, limit: int) -> JSON:
    """Polar's ``ListResource``: ``max_page`` is ``ceil(total / limit)`` (0 when empty)."""
    return {
        "items": items,
        "pagination": {"total_count": total, "max_page": math.ceil(total / limit)},
    }
