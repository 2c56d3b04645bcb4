"""Stripe Checkout and the Billing Portal: opening them, and reading a session back."""

from __future__ import annotations

from typing import Any

import stripe

from ..base import (
    NAMESPACE_KEY,
    ORGANIZATION_KEY,
    OWNER_KEY,
    PLAN_KEY,
    CheckoutRequest,
    CheckoutSession,
)
from .data import plain, timestamp
from .errors import call
from .ids import stripe_id


def create_checkout(client: stripe.StripeClient, request: CheckoutRequest) -> CheckoutSession:
    """A hosted Checkout Session in subscription mode, metadata set server-side on the session
    and on the subscription it will create (the proof of ownership read back later)."""
    plan = request.plan
    seats = max(1, request.seats)
    success_url = request.success_url
    if "{CHECKOUT_SESSION_ID}" not in success_url:  # Stripe fills it in for the success page
        success_url += ("&" if "?" in success_url else "?") + "session_id={CHECKOUT_SESSION_ID}"
    if plan.seat_prices:
        # One line item per seat type with members (Checkout refuses quantity 0); a type with
        # none gets its item at the first sync that has a member of it.
        by_type = request.seats_by_type or {}
        line_items = [{"price": plan.plan_id, "quantity": 1}] + [
            {"price": plan.seat_prices[kind], "quantity": by_type[kind]}
            for kind in sorted(plan.seat_prices) if by_type.get(kind, 0) > 0
        ]
    elif plan.seat_only:
        line_items = [{"price": plan.seat_price_id, "quantity": seats}]
    elif plan.seat_price_id:
        line_items = [
            {"price": plan.plan_id, "quantity": 1},
            {"price": plan.seat_price_id, "quantity": seats},
        ]
    else:
        line_items = [{"price": plan.plan_id, "quantity": 1}]
    metadata = {ORGANIZATION_KEY: request.organization_key, PLAN_KEY: plan.name,
                **request.metadata}
    subscription_data: dict[str, Any] = {"metadata": metadata}
    if plan.trial_days:
        subscription_data["trial_period_days"] = plan.trial_days
    params: dict[str, Any] = {
        "mode": "subscription",
        "line_items": line_items,
        "client_reference_id": request.organization_key,
        "metadata": metadata,
        "subscription_data": subscription_data,
        "success_url": success_url,
        "cancel_url": request.cancel_url,
    }
    if request.customer_id:
        params["customer"] = request.customer_id
    elif request.customer_email:
        params["customer_email"] = request.customer_email
    session = call(lambda: client.v1.checkout.sessions.create(params=params))  # type: ignore[arg-type]
    return to_checkout(session)

def to_checkout(session: Any) -> CheckoutSession:
    """Reduce a Checkout Session to a :class:`CheckoutSession`."""
    data = plain(session)
    subscription = data.get("subscription")
    if isinstance(subscription, dict):
        subscription = subscription.get("id")
    customer = data.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    metadata = data.get("metadata") or {}
    # Never client_reference_id: a Payment Link or the pricing table lets the buyer set it.
    return CheckoutSession(
        id=str(data["id"]),
        url=data.get("url"),
        status=str(data.get("status")),
        subscription_id=subscription,
        customer_id=customer,
        organization_hint=metadata.get(ORGANIZATION_KEY),
        plan_name=metadata.get(PLAN_KEY),
        owner_tag=metadata.get(OWNER_KEY) or None,
        namespace=metadata.get(NAMESPACE_KEY) or None,
        expires_at=timestamp(data.get("expires_at")),
    )

def retrieve_checkout(client: stripe.StripeClient, session_id: str) -> CheckoutSession:
    checked = stripe_id(session_id, "checkout session")
    return to_checkout(call(lambda: client.v1.checkout.sessions.retrieve(checked)))


def expire_checkout(client: stripe.StripeClient, session_id: str) -> CheckoutSession:
    """``POST /v1/checkout/sessions/{id}/expire``: the session can no longer be paid."""
    checked = stripe_id(session_id, "checkout session")
    return to_checkout(call(lambda: client.v1.checkout.sessions.expire(checked)))

def create_portal(client: stripe.StripeClient, customer_id: str, return_url: str) -> str:
    """A Billing Portal session URL for the customer."""
    params = {"customer": customer_id, "return_url": return_url}
    session = call(lambda: client.v1.billing_portal.sessions.create(params=params))  # type: ignore[arg-type]
    return str(session.url)
