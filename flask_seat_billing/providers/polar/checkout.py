"""Polar checkouts and the customer portal: opening them, and reading a checkout back."""

from __future__ import annotations

from typing import Any

from polar.v2026_10 import Polar

from ..base import (
    NAMESPACE_KEY,
    ORGANIZATION_KEY,
    OWNER_KEY,
    PLAN_KEY,
    CheckoutRequest,
    CheckoutSession,
)
from .data import strings, timestamp
from .errors import call
from .ids import polar_id

# Polar's checkout statuses in Stripe's words, which the core reads.
CHECKOUT_STATUSES = {"succeeded": "complete", "confirmed": "open"}


def create_checkout(client: Polar, request: CheckoutRequest) -> CheckoutSession:
    """A hosted checkout for the plan's product, with the seat count already right."""
    plan = request.plan
    success = request.success_url
    if "{CHECKOUT_ID}" not in success:  # Polar fills it in, as Stripe does its session id
        success += ("&" if "?" in success else "?") + "checkout_id={CHECKOUT_ID}"
    # Polar copies checkout metadata to the subscription it creates (``CheckoutCreate``).
    metadata: dict[str, str | int | float | bool] = {
        ORGANIZATION_KEY: request.organization_key, PLAN_KEY: plan.name, **request.metadata,
    }
    # Only a customer this app recorded itself (from its own subscription) is reused. Never
    # ``external_customer_id``: Polar links a checkout to the existing customer holding that
    # id, and another app on the account (staging's organization 1 is not production's)
    # would share it, and one portal would show the other's subscriptions.
    customer: dict[str, Any] = {"customer_id": request.customer_id} if request.customer_id else {}
    if request.customer_email and not request.customer_id:
        customer["customer_email"] = request.customer_email
    trial: dict[str, Any] = {}
    if plan.trial_days:  # Stripe's trial_period_days, in Polar's terms (1..1000 days)
        trial = {"trial_interval": "day", "trial_interval_count": plan.trial_days}
    checkout = call(
        lambda: client.checkouts.create(
            products=[plan.plan_id],
            seats=max(1, request.seats),
            metadata=metadata,
            success_url=success,
            return_url=request.cancel_url,
            **customer,
            **trial,
        )
    )
    return to_checkout(checkout)

def to_checkout(checkout: Any) -> CheckoutSession:
    """Reduce a Polar checkout to a :class:`CheckoutSession` (Stripe's status names)."""
    metadata = strings(checkout.metadata)
    status = str(checkout.status)
    return CheckoutSession(
        id=str(checkout.id),
        url=checkout.url,
        status=CHECKOUT_STATUSES.get(status, status),
        subscription_id=checkout.subscription_id,
        customer_id=checkout.customer_id,
        organization_hint=metadata.get(ORGANIZATION_KEY),
        plan_name=metadata.get(PLAN_KEY),
        owner_tag=metadata.get(OWNER_KEY) or None,
        namespace=metadata.get(NAMESPACE_KEY) or None,
        expires_at=timestamp(checkout.expires_at),
    )

def retrieve_checkout(client: Polar, session_id: str) -> CheckoutSession:
    checked = polar_id(session_id, "checkout")
    return to_checkout(call(lambda: client.checkouts.get(checked)))

def create_portal(client: Polar, customer_id: str, return_url: str) -> str:
    """Polar's customer portal, opened for the customer through a customer session."""
    session = call(
        lambda: client.customer_sessions.create(
            customer_id=customer_id, return_url=return_url
        )
    )
    return str(session.customer_portal_url)
