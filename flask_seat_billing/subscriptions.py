"""The local copy of subscriptions: read by the engine, written from what the provider says.

Which of an organization's subscriptions is *the* one (synced, capped, opened in the portal,
shown by ``subscription_for``) is decided here, by :func:`billing_subscription`, and nowhere
else. The rule, in order:

1. only rows linked to the organization whose prices match a configured plan (``plan_name`` is
   set only then; a subscription of unknown prices is recorded but never billed by us);
2. the best status: ``active``, ``trialing`` or ``past_due`` first, then the held ones
   (``paused``, ``incomplete``, ``unpaid``), then anything ended;
3. among equals, the newest: created last by the provider (``provider_created_at``), else
   recorded last here (rows pulled before that column existed, ties within the provider's
   one-second clock).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from . import prebuilt, raw_sql
from .providers.base import NAMESPACE_KEY, RemoteSubscription
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
    provider_created_at: datetime | None
    created_at: datetime
    updated_at: datetime
    write_seq: int = 0
    """Seat writes sent so far: the next one's idempotency key is new (``sync.py``)."""
    write_key: str | None = None
    """The key of a write sent whose outcome is not recorded yet: the next sync reads first
    (and resends that very key only if it got no answer at all, see :func:`answered_write`)."""
    namespace: str | None = None
    """The namespace the provider's metadata named when last recorded ("" none, None never)."""
    seat_types: dict[str, Any] | None = None
    """A plan with seat types: ``{"seats": {type: n}, "items": {type: item id}}`` as last
    recorded (None: no seat types, or never recorded: the next sync reads first)."""

    @property
    def seats_by_type(self) -> dict[str, int] | None:
        """Each seat type's quantity as last recorded (see ``seat_types``)."""
        if self.seat_types is None:
            return None
        return {str(k): int(v) for k, v in (self.seat_types.get("seats") or {}).items()}

    @property
    def seat_items_by_type(self) -> dict[str, str] | None:
        """The item of each seat type that had one when last recorded."""
        if self.seat_types is None:
            return None
        return {str(k): str(v) for k, v in (self.seat_types.get("items") or {}).items()}

    @property
    def billing_state(self) -> RemoteSubscription:
        """The copy as a :class:`RemoteSubscription`, to address a write with what is known
        locally (no metadata: ownership is the row's link, see :mod:`.ownership`)."""
        return RemoteSubscription(
            id=self.provider_subscription_id, customer_id=self.provider_customer_id,
            status=self.status, metadata={}, price_ids=frozenset(), plan_name=self.plan_name,
            seat_item_id=self.seat_item_id, seats=self.seats,
            current_period_start=self.current_period_start,
            current_period_end=self.current_period_end, trial_start=self.trial_start,
            trial_end=self.trial_end, cancel_at_period_end=self.cancel_at_period_end,
            cancel_at=self.cancel_at, canceled_at=self.canceled_at, ended_at=self.ended_at,
            organization_hint=self.organization_key, created_at=self.provider_created_at,
            seats_by_type=self.seats_by_type, seat_items_by_type=self.seat_items_by_type,
        )


def _local(row: Any) -> LocalSubscription:
    return LocalSubscription(**dict(row._mapping))


def _age(t: sa.Table) -> tuple[Any, ...]:
    return (sa.func.coalesce(t.c.provider_created_at, t.c.created_at), t.c.created_at, t.c.id)


def newest_first(t: sa.Table) -> list[Any]:
    """ORDER BY terms for rule 3: the provider's creation time, then the local row's."""
    return [term.desc() for term in _age(t)]


def oldest_first(t: sa.Table) -> list[Any]:
    """The reverse, for code that keeps the last row it sees among equals (status, resync)."""
    return [term.asc() for term in _age(t)]


def by_provider_id(
    conn: sa.Connection, tables: Tables, subscription_id: str
) -> LocalSubscription | None:
    row = conn.execute(prebuilt.statement("subscription_by_provider_id", tables, _by_provider_id),
                       {"subscription_id": subscription_id}).first()
    return _local(row) if row is not None else None


def _by_provider_id(tables: Tables) -> sa.Select[Any]:
    t = tables.subscriptions
    return sa.select(t).where(t.c.provider_subscription_id == sa.bindparam("subscription_id"))


def for_organization(
    conn: sa.Connection, tables: Tables, key: str, statuses: Sequence[str] | None = None
) -> LocalSubscription | None:
    """The organization's newest subscription, optionally only among ``statuses``."""
    t = tables.subscriptions
    stmt = sa.select(t).where(t.c.organization_key == key)
    if statuses is not None:
        stmt = stmt.where(t.c.status.in_(list(statuses)))
    row = conn.execute(stmt.order_by(*newest_first(t)).limit(1)).first()
    return _local(row) if row is not None else None


LIVE_RANK = ("active", "trialing", "past_due")
HELD_RANK = ("paused", "incomplete", "unpaid")


def preference(plan_name: str | None, status: str) -> tuple[int, int]:
    """Rules 1 and 2 of the module docstring as a sort key (lower is better), for code that
    chooses among rows already in memory (status, resync); ties go to the newest."""
    rank = 0 if status in LIVE_RANK else 1 if status in HELD_RANK else 2
    return (0 if plan_name is not None else 1, rank)


def _billing_rule(t: sa.Table) -> tuple[sa.ColumnElement[bool], list[Any]]:
    """The module rule in SQL: which rows may be chosen, and in which order (best first)."""
    rank = sa.case(
        (t.c.status.in_(LIVE_RANK), 0), (t.c.status.in_(HELD_RANK), 1), else_=2
    )
    return t.c.plan_name.is_not(None), [rank, *newest_first(t)]


def billing_subscription(
    conn: sa.Connection, tables: Tables, key: str
) -> LocalSubscription | None:
    """The organization's subscription for syncs, the seat cap and the portal (module rule)."""
    row = conn.execute(billing_subscription_statement(tables, key)).first()
    return _local(row) if row is not None else None


def billing_subscription_statement(
    tables: Tables, key: str | sa.BindParameter[str]
) -> sa.Select[Any]:
    """The SELECT of :func:`billing_subscription` (the sync sends it inside a larger one)."""
    t = tables.subscriptions
    allowed, order = _billing_rule(t)
    return sa.select(t).where(t.c.organization_key == key, allowed).order_by(*order).limit(1)


def from_mapping(values: dict[str, Any]) -> LocalSubscription:
    """A :class:`LocalSubscription` from a row's values by column name."""
    return LocalSubscription(**values)


def billing_subscriptions(conn: sa.Connection, tables: Tables) -> dict[str, LocalSubscription]:
    """:func:`billing_subscription` of every organization at once, in one query (resync)."""
    t = tables.subscriptions
    allowed, order = _billing_rule(t)
    rows = conn.execute(sa.select(t).where(t.c.organization_key.is_not(None), allowed)
                        .order_by(t.c.organization_key, *order))
    chosen: dict[str, LocalSubscription] = {}
    for row in rows:
        chosen.setdefault(str(row.organization_key), _local(row))
    return chosen


def billable_of_organization(
    conn: sa.Connection, tables: Tables, key: str
) -> list[LocalSubscription]:
    """The organization's subscriptions of a configured plan in a live status, newest first."""
    t = tables.subscriptions
    rows = conn.execute(
        sa.select(t)
        .where(t.c.organization_key == key, t.c.plan_name.is_not(None),
               t.c.status.in_(LIVE_RANK))
        .order_by(*newest_first(t))
    )
    return [_local(row) for row in rows]


def customer_for_organization(conn: sa.Connection, tables: Tables, key: str) -> str | None:
    """The provider customer of the organization's billing subscription (portal, checkout).

    Never the customer of a subscription of unknown prices: that may be someone else's.
    """
    chosen = billing_subscription(conn, tables, key)
    return chosen.provider_customer_id if chosen is not None else None


_UNREAD: Any = object()


@dataclass(frozen=True)
class RowInsert:
    """A row of another table to insert in the same statement as :func:`upsert`'s UPDATE."""

    table: sa.Table
    values: dict[str, Any]


def upsert(
    conn: sa.Connection,
    tables: Tables,
    provider: str,
    remote: RemoteSubscription,
    organization_key: str | None,
    *,
    before: LocalSubscription | None = _UNREAD,
    along: RowInsert | None = None,
) -> tuple[LocalSubscription | None, LocalSubscription]:
    """Make the local row equal to ``remote``; return (before, after).

    ``organization_key`` None keeps the link the row already has. Metadata never links a row
    by itself: the caller decides ownership (see :mod:`.ownership`). ``before``: the row as the
    caller read it in this transaction (None: there is none), which saves reading it again.
    ``along``: a row inserted with the UPDATE in one statement (PostgreSQL's data-modifying
    ``WITH``; executed even though the UPDATE does not read it), else on its own first.
    """
    if before is _UNREAD:
        before = by_provider_id(conn, tables, remote.id)
    key = organization_key or (before.organization_key if before else None)
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
        "write_key": None,  # what the provider said is known now: no write is in doubt
        "namespace": remote.metadata.get(NAMESPACE_KEY) or "",
        "seat_types": seat_types_of(remote),
        "updated_at": now,
    }
    if remote.created_at is not None:  # never erase it with a reply that lacks it
        values["provider_created_at"] = remote.created_at
    if along is not None and before is None:
        conn.execute(along.table.insert(), along.values)
        along = None
    if before is None:
        insert = prebuilt.statement("subscription_insert", tables,
                                    lambda tables: tables.subscriptions.insert())
        inserted = conn.execute(
            insert, {"provider_subscription_id": remote.id, "created_at": now, **values})
        primary_key = inserted.inserted_primary_key
        assert primary_key is not None
        after = LocalSubscription(
            id=int(primary_key[0]), provider_subscription_id=remote.id,
            created_at=now, **{"provider_created_at": None, **values},
        )
        return None, after
    # The row's id under a name no column has: the SET clause is every key of ``values``.
    params = {"row_id_": before.id, **values}
    if along is None:
        conn.execute(prebuilt.statement("subscription_update", tables, _update_by_row_id), params)
    else:
        table, columns = along.table, tuple(sorted(along.values))

        def with_insert(tables: Tables) -> sa.Update:
            inserted = table.insert().values(
                {name: sa.bindparam(f"along_{name}_") for name in columns})
            return _update_by_row_id(tables).add_cte(inserted.cte(f"along_{table.name}"))

        statement = prebuilt.statement(
            f"subscription_update_along:{table.name}:{','.join(columns)}", tables, with_insert)
        conn.execute(statement, {**params, **{f"along_{name}_": value
                                              for name, value in along.values.items()}})
    return before, replace(before, **values)


def seat_types_of(remote: RemoteSubscription) -> dict[str, Any] | None:
    """What the copy keeps of a subscription's seat types (the ``seat_types`` column)."""
    if remote.seats_by_type is None:
        return None
    return {"seats": dict(remote.seats_by_type), "items": dict(remote.seat_items_by_type or {})}


def _update_by_row_id(tables: Tables) -> sa.Update:
    t = tables.subscriptions
    return t.update().where(t.c.id == sa.bindparam("row_id_"))


def set_seats(conn: sa.Connection, tables: Tables, subscription_id: str, seats: int) -> None:
    t = tables.subscriptions
    conn.execute(
        t.update()
        .where(t.c.provider_subscription_id == subscription_id)
        .values(seats=seats, updated_at=utcnow())
    )


_TEMPLATES: dict[tuple[sa.Table, str], sa.Update] = {}


def _update_template(tables: Tables, name: str, columns: Sequence[str]) -> sa.Update:
    """``UPDATE ... SET <columns> WHERE id = :fsb_id``, bound parameters ``fsb_<column>``:
    built once and sent with new values (the sync's per-write statements)."""
    t = tables.subscriptions
    template = _TEMPLATES.get((t, name))
    if template is None:
        template = _TEMPLATES[(t, name)] = t.update().where(
            t.c.id == sa.bindparam("fsb_id", type_=t.c.id.type)).values(
            {c: sa.bindparam(f"fsb_{c}", type_=t.c[c].type) for c in columns})
    return template


def begin_write(conn: sa.Connection, tables: Tables, local: LocalSubscription, key: str) -> None:
    """Record, before it is sent, that a write with ``key`` is about to leave (caller commits).

    If its outcome is never recorded (a timeout, a dropped connection, a crash), the next sync
    finds ``write_key`` set and reads the provider before writing again.
    """
    template = _update_template(tables, "begin_write", ("write_seq", "write_key"))
    values = {"fsb_id": local.id, "fsb_write_seq": local.write_seq + 1, "fsb_write_key": key}
    if not raw_sql.execute_alone(conn, template, values):  # on psycopg in autocommit: faster
        conn.execute(template, values)


ANSWERED = "answered:"
"""Prefix of ``write_key`` once the write got an HTTP error answer (see :func:`answered_write`)."""


def answered_write(
    conn: sa.Connection, tables: Tables, local: LocalSubscription, key: str
) -> None:
    """The write with ``key`` got an HTTP error answer (a 5xx, a 4xx): mark it (caller commits).

    Its outcome is still not recorded, so the next sync reads first; but it must not send
    that key again: Stripe stores the answer of a request whose endpoint began executing,
    errors included, and replays it to the key for a day. Only a write that got no answer at
    all (a timeout, a dropped connection) is resent with its own key.
    """
    t = tables.subscriptions
    conn.execute(t.update().where(t.c.id == local.id, t.c.write_key == key)
                 .values(write_key=ANSWERED + key))


def _record_write_values(seats: int) -> dict[str, Any]:
    return {"seats": seats, "write_key": None, "updated_at": utcnow()}


def record_write_statement(tables: Tables, local: LocalSubscription, seats: int) -> sa.Update:
    """A write the provider acknowledged: the copy's quantity, and no write in doubt."""
    t = tables.subscriptions
    return t.update().where(t.c.id == local.id).values(_record_write_values(seats))


def record_write_template(tables: Tables) -> sa.Update:
    """:func:`record_write_statement` with bound parameters (``fsb_id``, ``fsb_<column>``),
    built once; :func:`record_write_params` gives the values."""
    return _update_template(tables, "record_write", tuple(_record_write_values(0)))


def record_write_params(local: LocalSubscription, seats: int) -> dict[str, Any]:
    return {"fsb_id": local.id,
            **{f"fsb_{c}": value for c, value in _record_write_values(seats).items()}}


def record_write(
    conn: sa.Connection, tables: Tables, local: LocalSubscription, seats: int
) -> None:
    conn.execute(record_write_statement(tables, local, seats))
