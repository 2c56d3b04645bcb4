"""Make the local copy of one subscription equal to the provider's, safely and once.

Used by webhooks, the checkout success page and resync. The subscription is always re-read from
the provider (never taken from a webhook payload), under the organization's lock, so:

- arrival order does not matter: whichever event comes last, the row ends equal to the
  provider's current state;
- our own seat writes are never mistaken for outside changes, because the sync engine holds the
  same lock while it writes the provider and then the local row;
- a webhook event id is recorded in the same transaction as the changes it caused, so a
  duplicate changes nothing and a failure leaves nothing half-written;
- a completed checkout is marked done (a ``checkout:<session id>`` row beside the events) in the
  same transaction as the subscription, so ``checkout_completed`` is sent exactly once, by
  whichever of the success page, ``checkout.session.completed`` or a replay gets there first,
  even when ``customer.subscription.created`` already stored the row.

Ownership (see :mod:`.ownership`): a row is linked to an organization only by an explicit key
the caller proved (a checkout whose owner tag this app recorded, or ``link_subscription``), by
the link the row already has, or by the subscription's own owner tag. Metadata naming an
organization proves nothing; such a subscription is recorded unlinked and never written.

Every observation of an owned subscription of a configured plan that is billable now:

- releases a change held while it was not billable (and, on a status change or a first
  sighting, one parked by a permanent refusal), so that it is sent with one write;
- under ``SEAT_BILLING_EXTERNAL_CHANGE = "correct"``, queues a sync when its quantity differs
  from the billable count, the first observation included; under ``"accept"`` the quantity
  seen is kept (a change made elsewhere is recorded in the ledger as ``external``).

A completed checkout always syncs the members who joined or left while the customer paid: at
once when the subscription is billable, else through a held outbox row that its first billable
observation releases (a delayed payment method completes a checkout ``incomplete``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from . import ledger, outbox, ownership, prebuilt, seat_rules, seat_types, signals, subscriptions
from .fresh_reads import READS
from .locks import organization_lock
from .providers.base import BILLABLE, HELD, RemoteSubscription
from .state import SeatBillingState
from .subscriptions import LocalSubscription
from .tables import Tables, utcnow

log = logging.getLogger("flask_seat_billing.reconcile")


@dataclass(frozen=True)
class EventRef:
    """A webhook event to record as processed alongside its changes."""

    provider: str
    event_id: str
    event_type: str
    lock_key: str | None = None
    """The lock of the subscription the event names, found by :func:`lookup` with the dedupe
    (one query for both); None: looked up when the event is applied."""


@dataclass(frozen=True)
class Applied:
    """What applying a subscription changed."""

    duplicate: bool
    before: LocalSubscription | None = None
    after: LocalSubscription | None = None
    external_change: bool = False
    correction_queued: bool = False
    first_completion: bool = False

    @property
    def created(self) -> bool:
        return self.after is not None and self.before is None


def already_processed(state: SeatBillingState, event: EventRef) -> bool:
    with state.sql_engine().connect() as conn:
        return _recorded(conn, state, event)


def lookup(
    state: SeatBillingState, event: EventRef, subscription_id: str | None
) -> tuple[bool, EventRef]:
    """Whether ``event`` was processed, and ``event`` with the lock of ``subscription_id``:
    the dedupe and the lock's lookup in one statement."""
    if subscription_id is None:
        return already_processed(state, event), event
    engine = state.sql_engine()
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            # One statement is the whole transaction: no BEGIN, and no ROLLBACK at check-in.
            conn.execution_options(isolation_level="AUTOCOMMIT")
        found, key = conn.execute(_lookup_statement(state.tables), {
            "provider": event.provider, "event_id": event.event_id,
            "subscription_id": subscription_id,
        }).one()
    return found is not None, replace(event, lock_key=key or f"sub:{subscription_id}")


def _lookup_statement(tables: Tables) -> Any:
    def build(tables: Tables) -> sa.Executable:
        events, subs = tables.webhook_events, tables.subscriptions
        recorded = sa.select(events.c.id).where(
            events.c.provider == sa.bindparam("provider"),
            events.c.event_id == sa.bindparam("event_id"),
        ).scalar_subquery()
        owner = sa.select(subs.c.organization_key).where(
            subs.c.provider_subscription_id == sa.bindparam("subscription_id")
        ).scalar_subquery()
        return sa.select(recorded, owner)
    return prebuilt.statement("lookup", tables, build)


def _recorded(conn: sa.Connection, state: SeatBillingState, event: EventRef) -> bool:
    t = state.tables.webhook_events
    row = conn.execute(
        sa.select(t.c.id).where(t.c.provider == event.provider, t.c.event_id == event.event_id)
    ).first()
    return row is not None


def _insert_event(conn: sa.Connection, state: SeatBillingState, event: EventRef) -> None:
    """Record ``event`` as processed; a unique violation means it already was."""
    insert = prebuilt.statement("insert_event", state.tables, lambda t: t.webhook_events.insert())
    conn.execute(insert, {"provider": event.provider, "event_id": event.event_id,
                          "event_type": event.event_type})


def record_event_only(state: SeatBillingState, event: EventRef) -> bool:
    """Record an event that changes nothing; False when it was a duplicate."""
    try:
        with state.sql_engine().begin() as conn:
            _insert_event(conn, state, event)
    except sa.exc.IntegrityError:
        return False
    return True


def _lock_key(state: SeatBillingState, subscription_id: str, hint: str | None) -> str:
    if hint:
        return hint
    with state.sql_engine().connect() as conn:
        local = subscriptions.by_provider_id(conn, state.tables, subscription_id)
    return local.organization_key if local and local.organization_key else f"sub:{subscription_id}"


def apply_subscription(
    state: SeatBillingState,
    subscription_id: str,
    *,
    organization_key: str | None = None,
    event: EventRef | None = None,
    follow_up_sync: bool = False,
    source: str = "webhook",
    completion: EventRef | None = None,
) -> Applied:
    """Re-read ``subscription_id`` from the provider and store it; see the module docstring.

    ``completion`` marks a checkout done in the same transaction (``first_completion`` says
    whether this call was the first to do so).
    """
    organization_key = _valid_key(state, organization_key)
    arrived = READS.now()
    scope = state.sql_engine().url.render_as_string(hide_password=True)
    lock_key = _lock_key(state, subscription_id,
                         organization_key or (event.lock_key if event is not None else None))
    with organization_lock(state.sql_engine(), lock_key) as conn:
        if (event is not None and completion is None and not follow_up_sync
                and READS.read_since(scope, subscription_id, arrived)):
            # A read that started after this event arrived is stored: it saw this change.
            return _record_event_locked(conn, state, event)
        started = READS.now()
        remote = state.provider.retrieve_subscription(subscription_id)
        # Two attempts: a first-seen subscription can be inserted concurrently under another
        # lock key (its ``sub:`` key vs. the organization's); the second attempt then updates
        # it. A second unique violation means the event itself was recorded meanwhile.
        for attempt in (1, 2):
            try:
                before = subscriptions.by_provider_id(conn, state.tables, remote.id)
                key = organization_key or _existing_key(conn, state, remote, before)
                applied = _store(conn, state, remote, key, event, follow_up_sync, completion,
                                 before)
                conn.commit()
                break
            except sa.exc.IntegrityError:
                conn.rollback()
                duplicate = attempt == 2 or (event is not None and _recorded(conn, state, event))
                conn.rollback()
                if duplicate:
                    return Applied(duplicate=True)
        READS.stored(scope, subscription_id, started)
    _announce(state, applied, source)
    if applied.correction_queued and applied.after and applied.after.organization_key:
        state.after_commit({applied.after.organization_key})
    return applied


def _valid_key(state: SeatBillingState, key: str | None) -> str | None:
    """``key`` if it parses as one of the app's organization ids; else None, logged.

    Metadata typed in a dashboard can hold anything; linking a row to a key the app cannot read
    would make every later signal and sync for it fail.
    """
    if not key:
        return None
    if not state.schema.valid_key(key):
        log.warning("organization id %r in provider metadata is not valid here; not linked", key)
        return None
    return key


def _record_event_locked(conn: sa.Connection, state: SeatBillingState, event: EventRef) -> Applied:
    """Record ``event`` alone (its change is already stored); a duplicate if it already was."""
    try:
        _insert_event(conn, state, event)
        conn.commit()
    except sa.exc.IntegrityError:
        conn.rollback()
        return Applied(duplicate=True)
    return Applied(duplicate=False)


def _existing_key(
    conn: sa.Connection, state: SeatBillingState, remote: RemoteSubscription,
    local: LocalSubscription | None,
) -> str | None:
    if local is not None and local.organization_key:
        return local.organization_key
    claimed = ownership.owner_of(
        conn, state.tables, state.provider.name, remote, state.settings.namespace)
    return _valid_key(state, claimed)


def _store(
    conn: sa.Connection,
    state: SeatBillingState,
    remote: RemoteSubscription,
    key: str | None,
    event: EventRef | None,
    follow_up_sync: bool,
    completion: EventRef | None,
    local: LocalSubscription | None,
) -> Applied:
    """Store ``remote`` over ``local`` (its row as read in this transaction, or None)."""
    # On PostgreSQL the event's row travels with the UPDATE of the copy (one statement, a
    # data-modifying WITH); a unique violation fails both, as two statements would.
    along = None
    if event is not None and local is not None and conn.dialect.name == "postgresql":
        along = subscriptions.RowInsert(state.tables.webhook_events, {
            "provider": event.provider, "event_id": event.event_id,
            "event_type": event.event_type, "processed_at": utcnow(),
        })
    elif event is not None:
        _insert_event(conn, state, event)
    first_completion = completion is not None and not _recorded(conn, state, completion)
    if completion is not None and first_completion:
        _insert_event(conn, state, completion)
    before, after = subscriptions.upsert(conn, state.tables, state.provider.name, remote, key,
                                         before=local, along=along)
    billable_now = state.provider.sync_state(remote) == BILLABLE
    external = (
        before is not None
        and before.seats is not None
        and remote.seats is not None
        and before.seats != remote.seats
        and billable_now
    )
    owner = after.organization_key
    # The renewal applying a decrease the engine sent for the period's end (already in the
    # ledger, as a ``next_period`` write) is not a change made elsewhere.
    external = external and not seat_rules.applied_at_renewal(
        conn, state.tables, before.seats if before else None, remote)
    # Seat types: one row per type that moved (a promotion in the dashboard keeps the total).
    moved = seat_types.steps(before, remote) if billable_now and owner else {}
    for kind, (was, now) in moved.items():
        assert owner is not None
        ledger.append(conn, state.tables, organization_key=owner, subscription_id=remote.id,
                      from_seats=was, to_seats=now, reason="external", seat_type=kind)
    if external and owner and not moved:
        ledger.append(
            conn, state.tables, organization_key=owner,
            subscription_id=remote.id, from_seats=before.seats if before else None,
            to_seats=int(remote.seats or 0), reason="external",
        )
    queue = False
    if owner and billable_now and after.plan_name is not None and remote.seats is not None:
        queue = _owed_or_drifted(conn, state, before, remote, owner) or follow_up_sync
    if queue and owner:
        outbox.mark(conn, state.tables, [owner], delay=state.mark_delay,
                    now=state.engine.clock())
    elif owner and follow_up_sync and after.plan_name is not None and remote.seats is not None:
        _hold_follow_up(conn, state, remote, owner)
    return Applied(False, before, after, external, queue, first_completion)


def _hold_follow_up(
    conn: sa.Connection, state: SeatBillingState, remote: RemoteSubscription, key: str
) -> None:
    """A completed checkout whose subscription is not billable yet (a delayed payment method
    completes it ``incomplete``): the members who joined while the customer paid are owed.
    A held row keeps that, so the change to a billable status releases it and one write brings
    the quantity to the billable count, as for any change held while not billable."""
    if state.provider.sync_state(remote) != HELD or outbox.read(conn, state.tables, key):
        return  # ended: nothing is owed; a row already there carries the change itself
    plan = state.catalog.get(remote.plan_name) if remote.plan_name else None
    billable = state.counter.billable_for(conn, state.schema.parse_key(key), plan)
    if remote.seats == billable:
        return
    reason = (f"subscription {remote.id} is {remote.status}: seat change held until it is "
              "billable")
    outbox.hold(conn, state.tables, key, None, reason, billable, now=state.engine.clock())


def _owed_or_drifted(
    conn: sa.Connection, state: SeatBillingState, before: LocalSubscription | None,
    remote: RemoteSubscription, key: str,
) -> bool:
    """Whether this observation of an owned, billable subscription needs a sync (see above)."""
    first = before is None or before.organization_key != key
    moved = before is not None and (
        before.status != remote.status or before.cancel_at_period_end != remote.cancel_at_period_end
    )
    parked = (outbox.HELD, outbox.FAILED) if first or moved else (outbox.HELD,)
    entry = outbox.read(conn, state.tables, key)
    if entry is not None and entry.status in parked:
        return True
    if state.settings.external_change != "correct":
        return False
    organization_id = state.schema.parse_key(key)
    plan = state.catalog.get(remote.plan_name) if remote.plan_name else None
    if remote.seats_by_type is not None:  # seat types: a move between types is drift too
        wanted = seat_types.wanted_by_type(state.counter, state.catalog, conn, organization_id,
                                           remote)
        moving = seat_types.changes(remote, wanted)
        if not moving:
            return False
        # As below, per type: decreases waiting for the renewal, the types as the copy had them.
        lowering = all(n < (remote.seats_by_type or {}).get(k, 0) for k, n in moving.items())
        unmoved = before is not None and before.seats_by_type == remote.seats_by_type
        return not (unmoved and lowering
                    and _decrease_waits(state, remote, entry, sum(wanted.values())))
    billable = state.counter.billable_for(conn, organization_id, plan)
    if remote.seats == billable:
        return False
    # Under "at_period_end" a decrease waiting for the renewal leaves more seats billed than
    # are billable, as the rule wants: that is not drift, and re-marking on every event would
    # re-read and re-announce it. A quantity the event shows moved (a dashboard edit), or one
    # below the billable count, still is.
    unmoved = before is not None and before.seats == remote.seats
    return not (unmoved and remote.seats is not None and remote.seats > billable
                and _decrease_waits(state, remote, entry, billable))


def _decrease_waits(
    state: SeatBillingState, remote: RemoteSubscription, entry: outbox.OutboxEntry | None,
    billable: int,
) -> bool:
    """Whether a decrease to ``billable`` legitimately waits for this period's end: Polar
    holds it (``pending_seats``), or (Stripe) the outbox row keeps one not yet due, whose
    renewal has not come (an overdue one is owed now: a sync credits it)."""
    rule = seat_rules.rule_for(state.catalog, remote.plan_name, state.settings.seat_decrease)
    if rule != seat_rules.AT_PERIOD_END:
        return False
    if remote.pending_seats is not None:
        return remote.pending_seats == billable
    return (entry is not None and entry.decrease_seats == billable
            and not seat_rules.missed_renewal(entry, remote))


def _announce(state: SeatBillingState, applied: Applied, source: str) -> None:
    after, before = applied.after, applied.before
    if after is None:
        return
    organization_id = (
        state.schema.parse_key(after.organization_key) if after.organization_key else None
    )
    if before is None or _visible(before) != _visible(after):
        signals.subscription_updated.send(
            state.app, organization_id=organization_id,
            subscription_id=after.provider_subscription_id, status=after.status,
            seats=after.seats, source=source,
        )
    if applied.external_change and before is not None and organization_id is not None:
        plan = state.catalog.get(after.plan_name) if after.plan_name else None
        with state.sql_engine().connect() as conn:
            billable = state.counter.billable_for(conn, organization_id, plan)
        signals.seats_changed_externally.send(
            state.app, organization_id=organization_id,
            subscription_id=after.provider_subscription_id, from_seats=before.seats,
            to_seats=after.seats, billable=billable, action=state.settings.external_change,
        )


def _visible(row: LocalSubscription) -> tuple[object, ...]:
    return (row.status, row.seats, row.plan_name, row.cancel_at_period_end,
            row.current_period_end, row.organization_key)
