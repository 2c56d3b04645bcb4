"""The local copy of subscriptions: read by the engine, written from what the provider says."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .providers.base import RemoteSubscription
from .tables import Tables, utcnow


@dataclass(frozen=True)
class LocalSubscription:
    """A row of ``seat_billing_subscriptions``."""

    id: int
    organization_key: str | None
    provider: str
    provider_subscription_id: str
    provider_customer_id: str | None
    plan_name: str | None
    seat_item_id: str | None
    seats: int | None
    status: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    trial_start: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool
    cancel_at: datetime | None
    canceled_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    updated_at: datetime


def _local(row: Any) -> LocalSubscription:
    return LocalSubscription(**dict(row._mapping))


def by_provider_id(
    conn: sa.Connection, tables: Tables, subscription_id: str
) -> LocalSubscription | None:
    t = tables.subscriptions
    row = conn.execute(sa.select(t).where(t.c.provider_subscription_id == subscription_id)).first()
    return _local(row) if row is not None else None


def for_organization(
    conn: sa.Connection, tables: Tables, key: str, statuses: Sequence[str] | None = None
) -> LocalSubscription | None:
    """The organization's newest subscription, optionally only among ``statuses``."""
    t = tables.subscriptions
    stmt = sa.select(t).where(t.c.organization_key == key)
    if statuses is not None:
        stmt = stmt.where(t.c.status.in_(list(statuses)))
    row = conn.execute(stmt.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(1)).first()
    return _local(row) if row is not None else None


def customer_for_organization(conn: sa.Connection, tables: Tables, key: str) -> str | None:
    """The provider customer the organization already has, to reuse at checkout."""
    t = tables.subscriptions
    row = conn.execute(
        sa.select(t.c.provider_customer_id)
        .where(t.c.organization_key == key, t.c.provider_customer_id.is_not(None))
        .order_by(t.c.created_at.desc(), t.c.id.desc())
        .limit(1)
    ).first()
    return str(row[0]) if row is not None else None


def upsert(
    conn: sa.Connection,
    tables: Tables,
    provider: str,
    remote: RemoteSubscription,
    organization_key: str | None,
) -> tuple[LocalSubscription | None, LocalSubscription]:
    """Make the local row equal to ``remote``; return (before, after).

    ``organization_key`` None keeps the link the row already has (or the metadata's hint).
    """
    t = tables.subscriptions
    before = by_provider_id(conn, tables, remote.id)
    key = organization_key or (before.organization_key if before else None)
    key = key or remote.organization_hint
    now = utcnow()
    values: dict[str, Any] = {
        "organization_key": key,
        "provider": provider,
        "provider_customer_id": remote.customer_id,
        "plan_name": remote.plan_name,
        "seat_item_id": remote.seat_item_id,
        "seats": remote.seats,
        "status": remote.status,
        "current_period_start": remote.current_period_start,
        "current_period_end": remote.current_period_end,
        "trial_start": remote.trial_start,
        "trial_end": remote.trial_end,
        "cancel_at_period_end": remote.cancel_at_period_end,
        "cancel_at": remote.cancel_at,
        "canceled_at": remote.canceled_at,
        "ended_at": remote.ended_at,
        "updated_at": now,
    }
    if before is None:
        conn.execute(
            t.insert().values(provider_subscription_id=remote.id, created_at=now, **values)
        )
    else:
        conn.execute(t.update().where(t.c.id == before.id).values(**values))
    after = by_provider_id(conn, tables, remote.id)
    assert after is not None
    return before, after


def set_seats(conn: sa.Connection, tables: Tables, subscription_id: str, seats: int) -> None:
    t = tables.subscriptions
    conn.execute(
        t.update()
        .where(t.c.provider_subscription_id == subscription_id)
        .values(seats=seats, updated_at=utcnow())
    )
