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

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import ledger, outbox, seat_rules, subscriptions
from .counting import SeatCounter
from .plans import Plan, PlanCatalog
from .providers.base import BillingProvider, RemoteSubscription, SeatPreview
from .settings import Settings
from .subscriptions import LocalSubscription

if TYPE_CHECKING:
    from .sync import SyncEngine, SyncResult


def targets(engine: SyncEngine, conn: sa.Connection, organization_id: Any,
            remote: RemoteSubscription) -> dict[str, int]:
    """The quantity each of the plan's seat types should have now (its members, less its
    included seats, never below its minimum)."""
    return wanted_by_type(engine.counter, engine.catalog, conn, organization_id, remote)


def wanted_by_type(counter: SeatCounter, catalog: PlanCatalog, conn: sa.Connection,
                   organization_id: Any, remote: RemoteSubscription) -> dict[str, int]:
    """:func:`targets` from the counter and the catalog (for an observation, a webhook)."""
    plan = catalog.get(remote.plan_name) if remote.plan_name else None
    kinds = plan.seat_types if plan is not None else ()
    counts = counter.billable_by_type(conn, organization_id, plan)
    return {kind: counts.get(kind, 0) for kind in kinds}


def steps(
    before: LocalSubscription | None, remote: RemoteSubscription
) -> dict[str, tuple[int, int]]:
    """The seat types an observation shows moved since the copy recorded them, (from, to)
    each; empty when either side has no quantities per type."""
    was = before.seats_by_type if before is not None else None
    now = remote.seats_by_type
    if was is None or now is None:
        return {}
    return {k: (was.get(k, 0), n) for k, n in sorted(now.items()) if was.get(k, 0) != n}


def changes(remote: RemoteSubscription, wanted: dict[str, int]) -> dict[str, int]:
    """The types whose quantity must move (a type with no item and no member needs nothing)."""
    current = remote.seats_by_type or {}
    items = remote.seat_items_by_type or {}
    return {kind: n for kind, n in wanted.items()
            if current.get(kind, 0) != n and (n > 0 or kind in items)}


def sync_types(
    engine: SyncEngine, conn: sa.Connection, key: str, generation: int | None, reason: str,
    local: LocalSubscription, remote: RemoteSubscription, *, read: bool = True,
) -> tuple[SyncResult, bool]:
    """One pass for a subscription with seat types; called by the engine under the lock.

    ``read``: ``remote`` is a provider read (kept as the copy before the write); else it is the
    local copy (``LocalSubscription.billing_state``, with each type's quantity and item), and
    the pass sends at most one request, as the engine's fast path does for one quantity: the
    engine reads first under the same rules (no copy of the types yet, a write in doubt, which
    is settled by that read rather than resent, a write refused on a stale copy).

    The write follows the engine's protocol (``SyncEngine._send``): the copy records it
    (``write_seq`` + 1, ``write_key``) in a commit before the request leaves, and the key is
    derived from that number and the quantities sent (``fsb:{sub}:types:{row}.{seq}:{type=n,
    ...}``), so the SDK's retries of the call share it and no later write does; the outcome
    (copy with each type's new quantity and item, ledger rows, outbox) is recorded in one
    transaction after the answer. What a read shows moved since the copy (a write whose answer
    was lost, a dashboard edit) goes in the ledger first, a row per type, so it has no gap.
    """
    from .sync import SyncResult, _key

    organization_id = engine.counter.schema.parse_key(key)
    if read:
        _observe(engine, conn, key, local, remote)
    wanted = targets(engine, conn, organization_id, remote)
    total = sum(wanted.values())
    moving = changes(remote, wanted)
    if not moving:
        return engine._finish(conn, key, generation, SyncResult(
            organization_id, "unchanged", billable=total, from_seats=remote.seats,
            to_seats=remote.seats, subscription_id=remote.id,
            seats_by_type=dict(remote.seats_by_type or {})), remote=remote if read else None)
    proration = engine.provider.proration_for(remote, engine.settings.proration_behavior)
    entry = outbox.read(conn, engine.tables, key)
    held, due, proration = _period_end(engine, remote, moving, entry, proration)
    moving = {k: n for k, n in moving.items() if k not in held}
    if not moving:  # only decreases, and they wait for the period's end
        assert due is not None
        return _schedule(engine, conn, key, generation, entry, remote, organization_id,
                         total, due, store=read), False
    if read:  # keep what the read saw before the write leaves
        subscriptions.upsert(conn, engine.tables, engine.provider.name, remote, key)
    spelled = ",".join(f"{k}={n}" for k, n in sorted(moving.items()))
    idempotency_key = _key(remote.id, "types", local, local.write_seq + 1, spelled)
    update = engine._send(conn, local, idempotency_key, lambda: engine.provider.update_seat_types(
        remote, moving, proration_behavior=proration, idempotency_key=idempotency_key))
    after = update.subscription
    result = SyncResult(
        organization_id, "updated", billable=total, from_seats=remote.seats,
        to_seats=after.seats, subscription_id=remote.id, idempotency_key=idempotency_key,
        seats_by_type=dict(after.seats_by_type or {}),
    )
    subscriptions.upsert(conn, engine.tables, engine.provider.name, after, key)
    before = remote.seats_by_type or {}
    # Written from the copy, the answer (the whole subscription) is the read: a type it shows
    # elsewhere than the copy said moved unseen (a dashboard edit whose webhook is not in):
    # its step goes in the ledger, and another pass, from the answer now kept, corrects it.
    unseen = {} if read else _observe(engine, conn, key, local, after, besides=moving)
    for kind, quantity in sorted(moving.items()):  # one row per type the write moved
        ledger.append(
            conn, engine.tables, organization_key=key, subscription_id=remote.id,
            from_seats=before.get(kind, 0), to_seats=quantity, reason=reason,
            proration_behavior=proration, idempotency_key=idempotency_key,
            currency=update.currency, seat_type=kind,
        )
    again = False
    if held and due is not None:  # additions went now; the decreases wait for the end
        # A change that arrived meanwhile keeps its row pending: its own commit asks for a
        # pass, as after the one-type path's schedule.
        outbox.schedule(conn, engine.tables, key, generation, due, total, now=engine.clock())
    else:
        again = engine._complete(conn, key, generation)
    if unseen and not again:
        outbox.mark(conn, engine.tables, [key], now=engine.clock())  # another pass, now
        again = True
    conn.commit()
    engine._signal_synced(result, reason)
    return result, again


def _observe(
    engine: SyncEngine, conn: sa.Connection, key: str, local: LocalSubscription,
    remote: RemoteSubscription, *, besides: Iterable[str] = (),
) -> dict[str, tuple[int, int]]:
    """Ledger rows for what a read shows moved since the copy, but the types ``besides``
    (those our write just set): one per seat type, or the total when the copy has no
    quantities per type (recorded before the column). The types' steps, (from, to) each."""
    skip = set(besides)
    moved = {k: step for k, step in steps(local, remote).items() if k not in skip}
    for kind, (was, now) in moved.items():
        ledger.append(conn, engine.tables, organization_key=key, subscription_id=remote.id,
                      from_seats=was, to_seats=now, reason="observed", seat_type=kind)
    if (not moved and not skip and local.seats is not None
            and remote.seats not in (None, local.seats)):
        ledger.append(conn, engine.tables, organization_key=key, subscription_id=remote.id,
                      from_seats=local.seats, to_seats=int(remote.seats or 0), reason="observed")
    return moved


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
    total: int, due: datetime, *, store: bool = True,
) -> SyncResult:
    """Keep the decreases for the period's end; ``store``: ``remote`` is a provider read."""
    from .sync import SyncResult

    if store:
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
    listing's snapshot the local copy's quantities per type are compared (``recorded``); a
    copy recorded without them is reported too, and the engine reads it and decides (nothing
    is sent if it is right).
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
        snapshot: RemoteSubscription | None = c.snapshot or c.recorded
        if snapshot is None or snapshot.seats_by_type is None or changes(snapshot, wanted):
            drifted[c.key] = wanted
    return drifted


def checked_quantities(plan: Plan, seats: object) -> dict[str, int]:
    """``seats`` of a preview for a plan with seat types: a mapping of some of its types to
    quantities (types not named keep theirs); refused, naming the plan's types, otherwise."""
    known = ", ".join(repr(k) for k in plan.seat_types)
    if not isinstance(seats, Mapping):
        raise TypeError(
            f"Plan {plan.name!r} has seat types ({known}): pass seats as a mapping of types to "
            f"quantities, e.g. seats={{{plan.seat_types[0]!r}: 3}}, not {seats!r}.")
    unknown = [k for k in seats if k not in plan.seat_types]
    if unknown:
        raise ValueError(f"Plan {plan.name!r} has no seat type {unknown[0]!r}; its types are "
                         f"{known}.")
    wanted: dict[str, int] = {}
    for kind, quantity in seats.items():
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise ValueError(f"Seats of type {kind!r} must be a whole number >= 0, not "
                             f"{quantity!r}.")
        wanted[str(kind)] = quantity
    return wanted


def preview(
    provider: BillingProvider, catalog: PlanCatalog, settings: Settings, organization_id: Any,
    local: LocalSubscription, wanted: dict[str, int],
) -> SeatPreview:
    """What moving these seat types to ``wanted`` would cost now, as one write would send it.

    The rule per type, as a sync applies it: an increase (and, under ``"immediately"``, a
    decrease) is priced by the provider in one preview of all of them; under
    ``"at_period_end"`` a decrease costs nothing now (``to_seats_by_type`` keeps the type's
    quantity) and shows in ``seats_from_next_period_by_type`` from ``takes_effect_at``. The
    quantities now are the local copy's; the provider is read when a change must be priced
    (or the copy has no quantities per type yet), and the preview is made from that read.
    """
    current = local.seats_by_type
    remote: RemoteSubscription | None = None
    if current is None:
        remote = provider.retrieve_subscription(local.provider_subscription_id)
        current = remote.seats_by_type or {}

    def split(now: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
        moving = {k: n for k, n in wanted.items() if n != now.get(k, 0)}
        waiting = {k: n for k, n in moving.items()
                   if seat_rules.decrease_waits(catalog, settings, local, now.get(k, 0), n)}
        return {k: n for k, n in moving.items() if k not in waiting}, waiting

    billed, waiting = split(current)
    if billed and remote is None:  # priced by the provider: from what it holds now
        remote = provider.retrieve_subscription(local.provider_subscription_id)
        current = remote.seats_by_type or {}
        billed, waiting = split(current)
    plan = catalog.get(local.plan_name) if local.plan_name else None
    before = {k: current.get(k, 0) for k in (plan.seat_types if plan else current)}
    if billed:
        assert remote is not None
        if not provider.capabilities.invoice_preview:
            raise NotImplementedError(f"{provider.name} cannot preview a seat change.")
        proration = provider.proration_for(remote, settings.proration_behavior)
        priced = provider.preview_seat_types(remote, billed, proration_behavior=proration)
    else:
        priced = SeatPreview(
            organization_id=None, from_seats=sum(before.values()),
            to_seats=sum(before.values()), amount_due_now=0, prorated_amount=0,
            currency=seat_rules.plan_currency(catalog, local.plan_name))
    now = {**before, **billed}
    later = {**now, **waiting} if waiting else None
    end = remote.current_period_end if remote is not None else local.current_period_end
    return replace(
        priced, organization_id=organization_id, from_seats=sum(before.values()),
        to_seats=sum(now.values()), from_seats_by_type=before, to_seats_by_type=now,
        seats_from_next_period=sum(later.values()) if later else None,
        seats_from_next_period_by_type=later, takes_effect_at=end if later else None)
