"""Several seat types on one subscription (``Plan.seat_prices``): one pass, one provider write.

A plan may price seats by role ("editor" seats and cheaper "viewer" seats). Members are sorted
into types by the app's ``seat_type`` expression and counted in one grouped query
(:meth:`~.counting.SeatCounter.count_by_type`). A sync compares every type's count with its item
on the subscription and sends every type that changed in **one** request (one subscription
update with several items), so one membership change is one proration, and a member changing
type (viewer promoted to editor) moves both quantities in the same write.

A type with no member has no item until it gets one (Checkout refuses quantity 0, so a checkout
only carries the types that have members); a type whose members all left keeps its item at
quantity 0. The ledger has one row per type a write moved (``seat_type``, from, to, sharing the
write's idempotency key); the quantities per type after the write are also in the
:class:`~.sync.SyncResult` (``seats_by_type``) that the ``seats_synced`` signal carries.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import ledger, outbox, seat_rules, subscriptions
from .counting import SeatCounter
from .plans import PlanCatalog
from .providers.base import RemoteSubscription
from .subscriptions import LocalSubscription

if TYPE_CHECKING:
    from .sync import SyncEngine, SyncResult


def targets(engine: SyncEngine, conn: sa.Connection, organization_id: Any,
            remote: RemoteSubscription) -> dict[str, int]:
    """The quantity each of the plan's seat types should have now (its members, less its
    included seats, never below its minimum)."""
    plan = engine.catalog.get(remote.plan_name) if remote.plan_name else None
    kinds = plan.seat_types if plan is not None else ()
    counts = engine.counter.billable_by_type(conn, organization_id, plan)
    return {kind: counts.get(kind, 0) for kind in kinds}


def changes(remote: RemoteSubscription, wanted: dict[str, int]) -> dict[str, int]:
    """The types whose quantity must move (a type with no item and no member needs nothing)."""
    current = remote.seats_by_type or {}
    items = remote.seat_items_by_type or {}
    return {kind: n for kind, n in wanted.items()
            if current.get(kind, 0) != n and (n > 0 or kind in items)}


def sync_types(
    engine: SyncEngine, conn: sa.Connection, key: str, generation: int | None, reason: str,
    local: LocalSubscription, remote: RemoteSubscription, observed_from: int | None,
) -> tuple[SyncResult, bool]:
    """One pass for a subscription with seat types; called by the engine under the lock, with
    ``remote`` a provider read (the local copy has no quantities per type, so these passes
    always read first: that read is also what settles a write in doubt, as on Polar).

    The write follows the engine's protocol: the copy records it (``write_seq`` + 1,
    ``write_key``) in a commit before the request leaves, and the key is derived from that
    number and the quantities sent (``fsb:{sub}:types:{row}.{seq}:{type=n,...}``), so the
    SDK's retries of the call share it and no later write does; the outcome (copy, ledger rows,
    outbox) is recorded in one transaction after the answer.
    """
    from .sync import SyncResult, _Replayed

    organization_id = engine.counter.schema.parse_key(key)
    wanted = targets(engine, conn, organization_id, remote)
    total = sum(wanted.values())
    moving = changes(remote, wanted)
    if not moving:
        return engine._finish(conn, key, generation, SyncResult(
            organization_id, "unchanged", billable=total, from_seats=remote.seats,
            to_seats=remote.seats, subscription_id=remote.id,
            seats_by_type=dict(remote.seats_by_type or {})), remote=remote,
            observed_from=observed_from)
    proration = engine.provider.proration_for(remote, engine.settings.proration_behavior)
    entry = outbox.read(conn, engine.tables, key)
    held, due, proration = _period_end(engine, remote, moving, entry, proration)
    moving = {k: n for k, n in moving.items() if k not in held}
    if not moving:  # only decreases, and they wait for the period's end
        assert due is not None
        return _schedule(engine, conn, key, generation, entry, remote, organization_id,
                         total, due), False
    # Keep what the read saw (and the step it shows) before the write leaves.
    subscriptions.upsert(conn, engine.tables, engine.provider.name, remote, key)
    if observed_from is not None and remote.seats is not None:
        ledger.append(conn, engine.tables, organization_key=key, subscription_id=remote.id,
                      from_seats=observed_from, to_seats=remote.seats, reason="observed")
    spelled = ",".join(f"{k}={n}" for k, n in sorted(moving.items()))
    idempotency_key = f"fsb:{remote.id}:types:{local.id}.{local.write_seq + 1}:{spelled}"[:255]
    subscriptions.begin_write(conn, engine.tables, local, idempotency_key)
    conn.commit()
    update = engine.provider.update_seat_types(
        remote, moving, proration_behavior=proration, idempotency_key=idempotency_key
    )
    if update.replayed:  # the key's number is new: an earlier write cannot have used it
        raise _Replayed(f"the provider replayed the answer to {idempotency_key}")
    after = update.subscription
    result = SyncResult(
        organization_id, "updated", billable=total, from_seats=remote.seats,
        to_seats=after.seats, subscription_id=remote.id, idempotency_key=idempotency_key,
        seats_by_type=dict(after.seats_by_type or {}),
    )
    subscriptions.upsert(conn, engine.tables, engine.provider.name, after, key)
    before = remote.seats_by_type or {}
    for kind, quantity in sorted(moving.items()):  # one row per type the write moved
        ledger.append(
            conn, engine.tables, organization_key=key, subscription_id=remote.id,
            from_seats=before.get(kind, 0), to_seats=quantity, reason=reason,
            proration_behavior=proration, idempotency_key=idempotency_key,
            currency=update.currency, seat_type=kind,
        )
    again = False
    if held and due is not None:  # additions went now; the decreases wait for the end
        outbox.schedule(conn, engine.tables, key, generation, due, total, now=engine.clock())
    else:
        again = engine._complete(conn, key, generation)
    conn.commit()
    engine._signal_synced(result, reason)
    return result, again


def _period_end(
    engine: SyncEngine, remote: RemoteSubscription, moving: dict[str, int],
    entry: outbox.OutboxEntry | None, proration: str,
) -> tuple[dict[str, int], datetime | None, str]:
    """``"at_period_end"`` per type: (types whose decrease waits, when it is due, proration).

    The rule of :mod:`.seat_rules` for each type: a type going down keeps its quantity until
    the period's end minus the margin; additions of other types in the same pass go now. Inside
    the margin the whole write is sent without proration; a missed boundary is credited.
    """
    rule = seat_rules.rule_for(engine.catalog, remote.plan_name, engine.settings.seat_decrease)
    end = remote.current_period_end
    current = remote.seats_by_type or {}
    lowering = {k: n for k, n in moving.items() if n < current.get(k, 0)}
    if rule != seat_rules.AT_PERIOD_END or not lowering or end is None or (
            remote.status == "trialing"):
        return {}, None, proration
    if seat_rules.missed_renewal(entry, remote):
        return {}, None, proration  # the renewal came first: credit its excess
    due = end - timedelta(seconds=engine.settings.seat_decrease_margin_seconds)
    if engine.clock() >= due:
        return {}, None, seat_rules.NO_PRORATION
    return lowering, due, proration


def _schedule(
    engine: SyncEngine, conn: sa.Connection, key: str, generation: int | None,
    entry: outbox.OutboxEntry | None, remote: RemoteSubscription, organization_id: Any,
    total: int, due: datetime,
) -> SyncResult:
    from .sync import SyncResult

    subscriptions.upsert(conn, engine.tables, engine.provider.name, remote, key)
    outbox.schedule(conn, engine.tables, key, generation, due, total, now=engine.clock())
    conn.commit()
    decision = seat_rules.Decision(seat_rules.SCHEDULE, int(remote.seats or 0), "", due, total,
                                   remote.current_period_end)
    seat_rules.announce(engine.app, organization_id, remote, decision, entry)
    return SyncResult(organization_id, "scheduled", billable=total, from_seats=remote.seats,
                      to_seats=total, subscription_id=remote.id, retry_at=due,
                      seats_by_type=dict(remote.seats_by_type or {}))


def drifted_types(
    conn: sa.Connection, counter: SeatCounter, catalog: PlanCatalog, candidates: Iterable[Any]
) -> dict[str, dict[str, int]]:
    """For resync: billable subscriptions with seat types whose quantities per type differ
    from the counts per type (one grouped query for all), by key, with those counts.

    A promotion leaves the total unchanged, so comparing totals would miss it. Without the
    listing's snapshot the quantities per type are not known locally: such a subscription is
    reported too, and the engine reads it and decides (nothing is sent if it is right).
    """
    typed = [c for c in candidates if c.billable and c.plan is not None
             and (plan := catalog.get(c.plan)) is not None and plan.seat_prices]
    if not typed:
        return {}
    counts = counter.count_by_type_many(
        conn, [counter.schema.parse_key(c.key) for c in typed])
    drifted: dict[str, dict[str, int]] = {}
    for c in typed:
        plan = catalog.get(c.plan)
        assert plan is not None
        billed = plan.billable_by_type(counts.get(c.key, {}))
        wanted = {k: billed.get(k, 0) for k in plan.seat_types}
        snapshot: RemoteSubscription | None = c.snapshot
        if snapshot is None or snapshot.seats_by_type is None or changes(snapshot, wanted):
            drifted[c.key] = wanted
    return drifted
