"""``flask seats status`` and ``flask seats sync-pending``: what each organization is billed for.

Status reads only local tables (the subscription copy that webhooks and resync keep current), so
it works while the provider is down and costs a fixed number of queries for any number of
organizations.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from .. import outbox
from ..ledger import SeatChange
from ..outbox import OutboxEntry
from ..seat_rules import PendingDecrease, decrease_of
from ..state import SeatBillingState
from ..subscriptions import oldest_first, preference
from ..sync import SyncResult
from .errors import UnknownOrganization


@dataclass(frozen=True)
class OrgStatus:
    """One organization: its subscription, what it should pay for, what is waiting to sync."""

    organization: str
    plan: str | None
    status: str | None
    billable: int | None
    provider_seats: int | None
    subscription_id: str | None
    pending: OutboxEntry | None
    last_change: SeatChange | None
    decrease: PendingDecrease | None = None
    """A decrease waiting for the period's end (``"at_period_end"``): seats now, from when."""
    billable_by_type: dict[str, int] | None = None
    """A plan with seat types: the billable members of each type."""


def organization_status(
    state: SeatBillingState, organizations: Iterable[Any] | None = None
) -> list[OrgStatus]:
    """Every organization with a subscription or a pending sync (or just ``organizations``)."""
    given = state.schema.keys.key_or_given  # "--org 01" is organization 1
    wanted = None if organizations is None else sorted({given(o) for o in organizations})
    with state.sql_engine().connect() as conn:
        subs = _subscriptions(conn, state, wanted)
        pending = {e.organization_key: e for e in outbox.read_all(conn, state.tables)
                   if wanted is None or e.organization_key in wanted}
        changes = _last_changes(conn, state, wanted)
        keys = sorted(set(subs) | set(pending) | set(wanted or []), key=_sort_key)
        ids = _parsed(state, keys)
        billable = state.counter.billable_many(conn, ids.values()) if ids else {}
        typed = [ids[k] for k, sub in subs.items() if k in ids and _typed(state, sub)]
        by_type = state.counter.count_by_type_many(conn, typed)
        if wanted is not None:
            unknown = [k for k in wanted if k not in ids or (
                k not in subs and k not in pending and k not in changes
                and not _has_people(state, conn, ids[k]))]
            if unknown:
                raise UnknownOrganization(unknown)
    result = []
    for key in keys:
        sub = subs.get(key)
        plan = state.catalog.get(sub["plan_name"]) if sub and sub["plan_name"] else None
        counts = by_type.get(key)
        total = billable.get(key)
        if plan is not None and counts is not None:
            # The plan's included and minimum seats per type (what the sync writes per type).
            if total is not None:
                total = plan.billed_total(total, counts)
            counts = plan.billable_by_type(counts)
        result.append(OrgStatus(
            organization=key, plan=sub["plan_name"] if sub else None,
            status=sub["status"] if sub else None, billable=total,
            provider_seats=sub["seats"] if sub else None,
            subscription_id=sub["provider_subscription_id"] if sub else None,
            pending=pending.get(key), last_change=changes.get(key),
            decrease=decrease_of(
                key, sub["seats"], sub["current_period_start"], sub["current_period_end"],
                pending.get(key), changes.get(key)) if sub else None,
            billable_by_type=counts,
        ))
    return result


def _typed(state: SeatBillingState, sub: dict[str, Any]) -> bool:
    plan = state.catalog.get(sub["plan_name"]) if sub["plan_name"] else None
    return plan is not None and bool(plan.seat_prices)


def _subscriptions(
    conn: sa.Connection, state: SeatBillingState, wanted: list[str] | None
) -> dict[str, dict[str, Any]]:
    """Each organization's subscription by ``subscriptions.billing_subscription``'s rule."""
    t = state.tables.subscriptions
    stmt = sa.select(t).where(t.c.organization_key.is_not(None))
    if wanted is not None:
        stmt = stmt.where(t.c.organization_key.in_(wanted))
    chosen: dict[str, dict[str, Any]] = {}
    for row in conn.execute(stmt.order_by(*oldest_first(t))):
        m = dict(row._mapping)
        current = chosen.get(m["organization_key"])
        if current is None or preference(m["plan_name"], m["status"]) <= preference(
                current["plan_name"], current["status"]):
            chosen[m["organization_key"]] = m
    return chosen


def _last_changes(
    conn: sa.Connection, state: SeatBillingState, wanted: list[str] | None
) -> dict[str, SeatChange]:
    t = state.tables.ledger
    newest = sa.select(sa.func.max(t.c.id)).group_by(t.c.organization_key)
    if wanted is not None:
        newest = newest.where(t.c.organization_key.in_(wanted))
    rows = conn.execute(sa.select(t).where(t.c.id.in_(newest.scalar_subquery())))
    return {row.organization_key: SeatChange(**dict(row._mapping)) for row in rows}


def _parsed(state: SeatBillingState, keys: list[str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for key in keys:
        try:
            parsed[key] = state.schema.parse_key(key)
        except (TypeError, ValueError):
            continue
    return parsed


def _has_people(state: SeatBillingState, conn: sa.Connection, organization_id: Any) -> bool:
    count = state.counter.count(conn, organization_id)
    return count.members + count.pending_invitations > 0


def _sort_key(key: str) -> tuple[int, int, str]:
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


@dataclass
class DrainReport:
    """One drain of the outbox: what each sync did, and what is still failing afterwards."""

    results: list[SyncResult] = field(default_factory=list)
    failing: list[OutboxEntry] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failing or any(not r.ok for r in self.results) else 0


def sync_pending(state: SeatBillingState) -> DrainReport:
    """Drain the outbox once (cron in ``manual`` mode), then list rows that still carry an error."""
    results = state.engine.drain()
    with state.sql_engine().connect() as conn:
        failing = [e for e in outbox.read_all(conn, state.tables) if e.last_error]
    return DrainReport(results, failing)
