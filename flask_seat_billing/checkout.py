"""Starting a checkout for an organization, and recording it when it completes."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from . import locks, open_checkouts, ownership, signals, subscriptions
from .errors import SeatBillingError
from .plans import Plan
from .providers.base import (
    NAMESPACE_KEY,
    OWNER_KEY,
    SUBSCRIBED_STATUSES,
    CheckoutRequest,
    CheckoutSession,
)
from .reconcile import Applied, EventRef, apply_subscription
from .state import SeatBillingState
from .subscriptions import LocalSubscription

log = logging.getLogger("flask_seat_billing.checkout")


class UnknownPlan(SeatBillingError):
    """The plan name is not in the configured products."""


class AlreadySubscribed(SeatBillingError):
    """The organization already has a live subscription: manage it, don't buy a second one."""

    def __init__(self, subscription: LocalSubscription) -> None:
        super().__init__(
            f"Organization {subscription.organization_key} already has a {subscription.status} "
            "subscription; change it in the billing portal instead of subscribing again."
        )
        self.subscription = subscription


def plan_named(state: SeatBillingState, name: str | None) -> Plan:
    plan = state.catalog.get(name or "")
    if plan is None:
        known = ", ".join(sorted(state.catalog.by_name)) or "none configured"
        raise UnknownPlan(f"Unknown plan {name!r}; known plans: {known}.")
    return plan


def start_checkout(
    state: SeatBillingState,
    organization_id: Any,
    plan: Plan,
    *,
    success_url: str,
    cancel_url: str,
    customer_email: str | None = None,
) -> CheckoutSession:
    """Open a provider checkout with the seat count already right; refuse a second subscription.

    The metadata set server-side carries a fresh owner tag, recorded here with the organization
    and, once the provider answers, with the checkout's id and plan: it is what later proves the
    subscription is this app's (see :mod:`.ownership`), and what lets a second request reuse or
    close this checkout instead of opening a parallel one (see :mod:`.open_checkouts`, which may
    raise :class:`~.open_checkouts.CheckoutStillOpen`). The organization's lock is held
    throughout, so a double click cannot open two.
    """
    key = state.schema.key(organization_id)
    with locks.organization_lock(state.sql_engine(), key) as conn:
        live = subscriptions.billing_subscription(conn, state.tables, key)
        if live is not None and live.status in SUBSCRIBED_STATUSES:
            raise AlreadySubscribed(live)
        settled = open_checkouts.settle(state, conn, key, plan)
        if settled.reuse is not None:
            return settled.reuse
        if not settled.completed:
            return _open_checkout(state, conn, organization_id, key, plan, success_url,
                                  cancel_url, customer_email)
    # Paid, but not recorded yet (the webhook is late): record it outside the lock (its
    # follow-up sync takes the lock), then ask again, which now answers "already subscribed".
    for session in settled.completed:
        record_completed_checkout(state, session)
    return start_checkout(state, organization_id, plan, success_url=success_url,
                          cancel_url=cancel_url, customer_email=customer_email)


def _open_checkout(
    state: SeatBillingState, conn: sa.Connection, organization_id: Any, key: str, plan: Plan,
    success_url: str, cancel_url: str, customer_email: str | None,
) -> CheckoutSession:
    seats = max(1, state.counter.billable_for(conn, organization_id, plan))
    by_type = (state.counter.billable_by_type(conn, organization_id, plan)
               if plan.seat_prices else None)
    customer = subscriptions.customer_for_organization(conn, state.tables, key)
    tag = ownership.new_tag(conn, state.tables, state.provider.name, key)
    conn.commit()
    metadata = {OWNER_KEY: tag}
    if state.settings.namespace:
        metadata[NAMESPACE_KEY] = state.settings.namespace
    try:
        session = state.provider.create_checkout(
            CheckoutRequest(
                organization_key=key, plan=plan, seats=seats, success_url=success_url,
                cancel_url=cancel_url, customer_id=customer, customer_email=customer_email,
                metadata=metadata, seats_by_type=by_type,
            )
        )
    except BaseException:
        # Recorded first so that a crash after the provider answered cannot lose the proof;
        # a checkout that was never opened leaves nothing behind.
        conn.rollback()
        ownership.forget_tag(conn, state.tables, state.provider.name, tag)
        conn.commit()
        raise
    ownership.record_checkout(conn, state.tables, state.provider.name, tag, session.id, plan.name)
    conn.commit()
    return session


def record_completed_checkout(
    state: SeatBillingState,
    session: CheckoutSession,
    *,
    event: EventRef | None = None,
    source: str = "checkout",
) -> Applied | None:
    """Store the subscription a completed checkout created and sync seats that moved since.

    Called by the success page and by ``checkout.session.completed``, in either order and any
    number of times; ``checkout_completed`` goes out once, for whichever call first marks the
    session done (the subscription row itself may already exist, from
    ``customer.subscription.created``). The follow-up sync brings the quantity in line with
    members who joined or left while the customer was paying.
    """
    if session.subscription_id is None or session.status != "complete":
        return None
    with state.sql_engine().connect() as conn:
        # Only the owner tag this app recorded names the organization; a checkout the app did
        # not create (a Payment Link with a buyer-set client_reference_id) links nothing.
        owner = ownership.claimed_key(
            conn, state.tables, state.provider.name, session.owner_tag,
            {NAMESPACE_KEY: session.namespace} if session.namespace else {},
            state.settings.namespace,
        )
    completion = EventRef(state.provider.name, f"checkout:{session.id}", "checkout.completed")
    applied = apply_subscription(
        state, session.subscription_id, organization_key=owner,
        event=event, follow_up_sync=True, source=source, completion=completion,
    )
    with state.sql_engine().begin() as conn:
        ownership.close_checkout(conn, state.tables, state.provider.name, session.id, "complete")
    if applied.first_completion and applied.after is not None and (
        applied.after.organization_key is not None
    ):
        key = applied.after.organization_key
        organization_id = state.schema.parse_key(key) if key else None
        _warn_if_second(state, organization_id, applied.after, session.id)
        signals.checkout_completed.send(
            state.app, organization_id=organization_id,
            subscription_id=applied.after.provider_subscription_id,
            plan=applied.after.plan_name or session.plan_name, session_id=session.id,
        )
        state.hooks.policies.run_after(
            state.app, "after_checkout_completed", organization_id=organization_id,
            subscription_id=applied.after.provider_subscription_id,
            plan=applied.after.plan_name,
        )
    return applied


def _warn_if_second(
    state: SeatBillingState, organization_id: Any, new: LocalSubscription, session_id: str
) -> None:
    """Second line of defence: the checkout just paid gave the organization another billable
    subscription of a configured plan (a checkout opened elsewhere, or before this app closed
    its open checkouts). Only the newest follows membership from now on; the others keep
    billing their last seat count. Logged as an error and signalled; nothing is canceled."""
    with state.sql_engine().connect() as conn:
        others = [s for s in subscriptions.billable_of_organization(
            conn, state.tables, new.organization_key or "") if s.id != new.id]
    if not others or new.plan_name is None or new.status not in SUBSCRIBED_STATUSES:
        return
    ids = [s.provider_subscription_id for s in others]
    log.error(
        "organization %s now has %d billable subscriptions: checkout %s created %s, besides %s; "
        "only the newest follows its members, cancel the others in the provider's dashboard",
        new.organization_key, len(others) + 1, session_id, new.provider_subscription_id,
        ", ".join(ids),
    )
    signals.duplicate_subscription.send(
        state.app, organization_id=organization_id, subscription_id=new.provider_subscription_id,
        other_subscription_ids=ids, session_id=session_id,
    )


def complete_checkout(state: SeatBillingState, session_id: str) -> LocalSubscription | None:
    """For the app's success page: record the subscription now, before the webhook arrives."""
    session = state.provider.retrieve_checkout(session_id)
    applied = record_completed_checkout(state, session, source="success_page")
    if applied is None:
        return None
    if applied.after is not None:
        return applied.after
    with state.sql_engine().connect() as conn:
        return subscriptions.by_provider_id(conn, state.tables, session.subscription_id or "")
