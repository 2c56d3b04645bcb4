"""State transitions of subscriptions, with Polar's refusals and the webhook events each emits.

Both the HTTP API and the Python-side test helpers call these functions, so a refusal raised here
(a :class:`~._errors.PolarAPIError`) is the same whether it reaches the SDK or a test. Each
function expects the caller to hold ``store.lock`` and leaves state untouched when it refuses.

Events per transition follow Polar: every change emits ``subscription.updated``; becoming
canceling adds ``subscription.canceled``, undoing that ``subscription.uncanceled``, ending
``subscription.revoked``, failing payment ``subscription.past_due`` and recovering
``subscription.active``; pausing ``subscription.paused`` and resuming ``subscription.resumed``.
"""

from __future__ import annotations

from datetime import datetime

from . import _errors as err
from ._models import Checkout, SeatChange, Subscription, add_interval
from ._store import PolarStore, new_id

__all__ = [
    "PRORATION_BEHAVIORS",
    "cancel",
    "change_seats",
    "complete_checkout",
    "cycle",
    "force_seats",
    "revoke",
    "set_status",
    "uncancel",
]

PRORATION_BEHAVIORS = ("invoice", "prorate", "next_period", "reset")
"""``SubscriptionProrationBehavior`` of the SDK (``reset`` restarts the billing period)."""

_ENDED = frozenset({"canceled", "unpaid", "incomplete_expired"})
_CHANGEABLE = frozenset({"active", "trialing"})


def _is_ended(sub: Subscription) -> bool:
    return sub.status in _ENDED or sub.ended_at is not None


def period_fraction(sub: Subscription, now: datetime) -> float:
    """Share of the current period still ahead (0..1): what a mid-period change is prorated by."""
    total = (sub.current_period_end - sub.current_period_start).total_seconds()
    if total <= 0:
        return 0.0
    left = (sub.current_period_end - now).total_seconds()
    return min(1.0, max(0.0, left / total))


def check_seats(store: PolarStore, sub: Subscription, seats: int) -> None:
    """Refuse a seat count the way Polar does, in Polar's order of checks.

    Schema validation (422, ``seats >= 1``) comes first, then state (403), then the product's
    limits (422) and the seats already assigned to members (400).
    """
    if isinstance(seats, bool) or not isinstance(seats, int):
        raise err.validation_error(
            ["body", "seats"], "Input should be a valid integer", "int_type", seats
        )
    if seats < 1:
        raise err.validation_error(
            ["body", "seats"],
            "Input should be greater than or equal to 1",
            "greater_than_equal",
            seats,
        )
    if _is_ended(sub):
        raise err.already_canceled(at_period_end=False)
    if sub.cancel_at_period_end:
        raise err.already_canceled(at_period_end=True)
    if sub.status not in _CHANGEABLE:
        raise err.inactive()
    product = store.products[sub.product_id]
    if not product.is_seat_based:
        raise err.bad_request("This subscription does not have seat-based pricing.")
    if seats < product.minimum_seats:
        raise err.validation_error(
            ["body", "seats"], f"Minimum seats is {product.minimum_seats}.", "value_error", seats
        )
    maximum = product.maximum_seats
    if maximum is not None and seats > maximum:
        raise err.validation_error(
            ["body", "seats"], f"Maximum seats is {maximum}.", "value_error", seats
        )
    if seats < sub.assigned_seats:
        raise err.bad_request(
            f"Cannot decrease seats to {seats}: {sub.assigned_seats} seats are assigned. "
            "Revoke seats first."
        )


def change_seats(
    store: PolarStore,
    sub: Subscription,
    seats: int,
    proration_behavior: str | None = None,
    *,
    source: str = "api",
) -> SeatChange | None:
    """Apply a seats update (``PATCH /v1/subscriptions/{id}`` with ``seats``).

    ``invoice`` charges the prorated difference now, ``prorate`` puts it on the next invoice
    (both only if a charge for an increase succeeds, else 402 and nothing changes),
    ``next_period`` records a pending update applied at renewal, ``reset`` restarts the period.
    Returns the recorded :class:`SeatChange`, or ``None`` when nothing changed.
    """
    check_seats(store, sub, seats)
    behavior = proration_behavior or store.default_proration_behavior
    if behavior not in PRORATION_BEHAVIORS:
        raise err.validation_error(
            ["body", "proration_behavior"],
            "Input should be 'invoice', 'prorate', 'next_period' or 'reset'",
            "literal_error",
            behavior,
        )
    old = sub.seats or 0
    if seats == old and sub.pending_update_id is None:
        return None
    now = store.clock()
    product = store.products[sub.product_id]
    customer = store.customers[sub.customer_id]
    if behavior == "next_period":
        change = SeatChange(
            new_id(), sub.id, sub.customer_id, old, seats, behavior, 0, 0.0, "pending", now, source
        )
        sub.pending_update_id, sub.pending_seats, sub.pending_created_at = new_id(), seats, now
    else:
        fraction = period_fraction(sub, now)
        if sub.status == "trialing":
            amount = 0
        elif behavior == "reset":
            amount = product.seat_cost(seats) - round(product.seat_cost(old) * fraction)
            amount += round((product.fixed_price or 0) * (1 - fraction))
        else:
            amount = round((product.seat_cost(seats) - product.seat_cost(old)) * fraction)
        if amount > 0 and store.payments_fail(customer):
            raise err.payment_failed()
        billed = "next_invoice" if behavior == "prorate" else "invoiced"
        change = SeatChange(
            new_id(),
            sub.id,
            sub.customer_id,
            old,
            seats,
            behavior,
            amount,
            fraction,
            billed,
            now,
            source,
        )
        sub.seats = seats
        sub.pending_update_id = sub.pending_seats = sub.pending_created_at = None
        if behavior == "reset" and sub.status == "active":
            sub.current_period_start = now
            sub.current_period_end = add_interval(
                now, product.recurring_interval, product.recurring_interval_count
            )
    sub.modified_at = now
    store.seat_changes.append(change)
    store.touch()
    store.emit("subscription.updated", sub)
    return change


def force_seats(store: PolarStore, sub: Subscription, seats: int) -> SeatChange:
    """A change made in Polar's dashboard: no refusals, no charge attempt, prorated on the next
    invoice. Lets tests simulate seats changing behind the application's back."""
    now = store.clock()
    product = store.products[sub.product_id]
    old = sub.seats or 0
    fraction = period_fraction(sub, now)
    amount = round((product.seat_cost(seats) - product.seat_cost(old)) * fraction)
    change = SeatChange(
        new_id(),
        sub.id,
        sub.customer_id,
        old,
        seats,
        "prorate",
        amount,
        fraction,
        "next_invoice",
        now,
        "dashboard",
    )
    sub.seats = seats
    sub.modified_at = now
    store.seat_changes.append(change)
    store.touch()
    store.emit("subscription.updated", sub)
    return change


def cancel(
    store: PolarStore, sub: Subscription, reason: str | None = None, comment: str | None = None
) -> None:
    """Cancel at period end: stays active until ``current_period_end``, then ends."""
    if _is_ended(sub):
        raise err.already_canceled(at_period_end=False)
    if sub.cancel_at_period_end:
        raise err.already_canceled(at_period_end=True)
    now = store.clock()
    sub.cancel_at_period_end = True
    sub.canceled_at = now
    sub.ends_at = sub.current_period_end
    sub.customer_cancellation_reason = reason
    sub.customer_cancellation_comment = comment
    sub.modified_at = now
    store.touch()
    store.emit("subscription.updated", sub)
    store.emit("subscription.canceled", sub)


def uncancel(store: PolarStore, sub: Subscription) -> None:
    """Undo a cancellation at period end (409 if none is scheduled, 403 if already ended)."""
    if _is_ended(sub):
        raise err.already_canceled(at_period_end=False)
    if not sub.cancel_at_period_end:
        raise err.not_scheduled_to_cancel()
    sub.cancel_at_period_end = False
    sub.canceled_at = sub.ends_at = None
    sub.customer_cancellation_reason = sub.customer_cancellation_comment = None
    sub.modified_at = store.clock()
    store.touch()
    store.emit("subscription.updated", sub)
    store.emit("subscription.uncanceled", sub)


def revoke(
    store: PolarStore, sub: Subscription, reason: str | None = None, comment: str | None = None
) -> None:
    """End the subscription now (``DELETE /v1/subscriptions/{id}`` or ``revoke=True``)."""
    if _is_ended(sub):
        raise err.already_canceled(at_period_end=False)
    now = store.clock()
    was_canceling = sub.cancel_at_period_end
    sub.status = "canceled"
    sub.cancel_at_period_end = False
    sub.canceled_at = sub.canceled_at or now
    sub.ends_at = sub.ended_at = now
    sub.pending_update_id = sub.pending_seats = sub.pending_created_at = None
    if reason is not None:
        sub.customer_cancellation_reason = reason
    if comment is not None:
        sub.customer_cancellation_comment = comment
    sub.modified_at = now
    store.touch()
    store.emit("subscription.updated", sub)
    if not was_canceling:
        store.emit("subscription.canceled", sub)
    store.emit("subscription.revoked", sub)


def set_status(store: PolarStore, sub: Subscription, status: str) -> None:
    """Move to ``status`` as a payment outcome would (``past_due``, back to ``active`` ...), or
    as the dashboard pauses (``paused``) and resumes (``active`` again, in a new period)."""
    if status == "canceled":
        revoke(store, sub)
        return
    if status == sub.status:
        return
    now = store.clock()
    previous, sub.status = sub.status, status
    sub.past_due_at = now if status == "past_due" else None
    sub.paused_at = now if status == "paused" else None
    resumed = previous == "paused" and status == "active"
    if resumed:  # Polar: resuming starts a new billing period and charges the customer
        product = store.products[sub.product_id]
        sub.current_period_start = now
        sub.current_period_end = add_interval(
            now, product.recurring_interval, product.recurring_interval_count
        )
    if status in _ENDED:
        sub.ended_at = sub.ends_at = now
    sub.modified_at = now
    store.touch()
    store.emit("subscription.updated", sub)
    if status == "past_due":
        store.emit("subscription.past_due", sub)
    elif status == "paused":
        store.emit("subscription.paused", sub)
    elif resumed:
        store.emit("subscription.resumed", sub)
    elif status == "active" and previous != "active":
        store.emit("subscription.active", sub)
    elif status in _ENDED:
        store.emit("subscription.revoked", sub)


def cycle(store: PolarStore, sub: Subscription) -> None:
    """Renew: start the next period, apply a pending ``next_period`` update, end a canceling
    subscription, and convert a trial. Emits ``subscription.cycled`` and ``updated``."""
    if _is_ended(sub):
        raise err.already_canceled(at_period_end=False)
    if sub.cancel_at_period_end:
        revoke(store, sub)
        return
    product = store.products[sub.product_id]
    start = sub.current_period_end
    sub.current_period_start = start
    sub.current_period_end = add_interval(
        start, product.recurring_interval, product.recurring_interval_count
    )
    if sub.pending_seats is not None:
        sub.seats = sub.pending_seats
    sub.pending_update_id = sub.pending_seats = sub.pending_created_at = None
    was_trialing = sub.status == "trialing"
    if was_trialing:
        sub.status = "active"
    sub.modified_at = store.clock()
    store.touch()
    store.emit("subscription.cycled", sub)
    store.emit("subscription.updated", sub)
    if was_trialing:
        store.emit("subscription.active", sub)


def complete_checkout(store: PolarStore, checkout: Checkout) -> Subscription:
    """Pay a checkout: find or create the customer (by id, then external id), create the
    subscription with the checkout's seats and metadata, mark the checkout ``succeeded``."""
    if checkout.status != "open":
        raise err.PolarAPIError(
            403, {"error": "NotOpenCheckout", "detail": "This checkout is not open."}
        )
    if checkout.expires_at <= store.clock():
        raise err.PolarAPIError(
            410, {"error": "ExpiredCheckoutError", "detail": "This checkout session has expired."}
        )
    product = store.product(checkout.product_id)
    customer = None
    if checkout.customer_id is not None:
        customer = store.customers.get(checkout.customer_id)
    if customer is None and checkout.external_customer_id is not None:
        found = store.customers_by_external.get(checkout.external_customer_id)
        customer = store.customers.get(found) if found else None
    if customer is not None and store.payments_fail(customer):
        raise err.payment_failed()
    if customer is None:
        key = checkout.external_customer_id
        if key is not None and key in store.failing_payments:
            raise err.payment_failed()
        customer = store.add_customer(
            external_id=key,
            email=checkout.customer_email,
            name=checkout.customer_name,
            metadata=checkout.customer_metadata,
        )
    trial = checkout.trial(product)
    sub = store.add_subscription(
        product,
        customer,
        checkout.seats,
        status="trialing" if trial else "active",
        metadata=checkout.metadata,
        checkout_id=checkout.id,
        trial=trial,
    )
    checkout.status = "succeeded"
    checkout.customer_id = customer.id
    checkout.subscription_id = sub.id
    checkout.modified_at = store.clock()
    store.touch()
    return sub
