"""The outbox: durable intent to sync an organization, written in the member change's transaction.

A row means "this organization's provider quantity may be wrong". It is written by the same
transaction that changed membership, so a rollback removes it and a commit makes it survive a
crash. A sync deletes it only if ``generation`` is unchanged since the sync read it; a change
committed during the sync bumps the generation and keeps the row for another pass.

Statuses: ``pending`` (due at ``next_attempt_at``), ``failed`` (a permanent refusal, parked until
membership changes or the subscription becomes billable again) and ``held`` (the subscription is
momentarily not billable: the change stays owed, and :func:`release` makes it due again when the
subscription is seen billable), and ``scheduled`` (a seat decrease that waits for the end of the
billing period, due at ``next_attempt_at``; any new membership change makes the row ``pending``
and due at once, so an addition is never held back by a waiting decrease).

A row's ``created_at`` is the time of the oldest change it holds, by the app's clock: nothing
but its insert writes it, and a sync deletes the row once every change in it is settled. The
decrease rule reads it to tell a change that a renewal came after (:func:`owed_before`).

A scheduled decrease is also kept apart from the status, in ``decrease_due_at`` (when it was
first due) and ``decrease_seats`` (what it lowers to): :func:`mark`, :func:`record_failure` and
:func:`hold` rewrite ``status``, ``next_attempt_at`` and ``target_seats`` and leave those two
alone, so a pass that schedules the same decrease again after a mark does not announce it
again, and status still shows it. They go with the row (:func:`complete`), or with
:func:`settle` when a pass settled the quantity while a newer change keeps the row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .tables import Tables, utcnow

PENDING = "pending"
FAILED = "failed"
HELD = "held"
SCHEDULED = "scheduled"
DUE_STATUSES = (PENDING, SCHEDULED)


@dataclass(frozen=True)
class OutboxEntry:
    """One organization's pending sync, as read from the table."""

    organization_key: str
    generation: int
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    target_seats: int | None
    created_at: datetime
    decrease_due_at: datetime | None = None
    """When the waiting decrease was (first) due; None: no decrease waits."""
    decrease_seats: int | None = None
    """The seats the waiting decrease lowers to, as last scheduled."""
    changed_at: datetime | None = None
    """The newest membership change the row holds (None on rows older than the column)."""


def _row_to_entry(row: sa.Row[tuple[object, ...]]) -> OutboxEntry:
    return entry_from(row._mapping)


def entry_from(values: Mapping[Any, Any], prefix: str = "") -> OutboxEntry:
    """An entry from the row's columns, named ``prefix`` + column name (a wider select that
    labels them, like the sync's first read); every column, so none is dropped on the way."""
    m = {name: values[prefix + name] for name in (
        "organization_key", "generation", "status", "attempts", "next_attempt_at", "last_error",
        "target_seats", "created_at", "decrease_due_at", "decrease_seats", "changed_at")}
    return OutboxEntry(
        organization_key=str(m["organization_key"]),
        generation=int(m["generation"]),
        status=str(m["status"]),
        attempts=int(m["attempts"]),
        next_attempt_at=m["next_attempt_at"],
        last_error=m["last_error"],
        target_seats=m["target_seats"],
        created_at=m["created_at"],
        decrease_due_at=m["decrease_due_at"],
        decrease_seats=m["decrease_seats"],
        changed_at=m["changed_at"],
    )


_UPSERTS: dict[tuple[str, int], Any] = {}


def _build_upsert(dialect: str, table: sa.Table, key: Any, due: Any, now: Any) -> Any:
    """The one definition of a mark: bound parameters for :func:`mark`, slots for the template."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # inline(): the key is given, so no RETURNING is needed to learn the primary key.
    stmt = insert(table).inline().values(
        organization_key=key, generation=1, status=PENDING, attempts=0,
        next_attempt_at=due, created_at=now, updated_at=now, changed_at=now,
    )
    return stmt.on_conflict_do_update(
        index_elements=["organization_key"],
        set_={
            "generation": table.c.generation + 1,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": sa.case(
                (sa.and_(table.c.status == PENDING, table.c.attempts == 0),
                 table.c.next_attempt_at),
                else_=due,
            ),
            "target_seats": None,
            "updated_at": now,
            "changed_at": now,
        },
    )


def _upsert_statement(dialect: str, table: sa.Table) -> Any:
    """The upsert for ``mark``, built once per table so SQLAlchemy's compiled cache can hit.

    It runs on the request path inside the member change's transaction, so it must cost one
    cheap statement, not a compile.
    """
    cache_key = (dialect, id(table))
    stmt = _UPSERTS.get(cache_key)
    if stmt is None:
        due: sa.BindParameter[datetime] = sa.bindparam("due", type_=sa.DateTime)
        now: sa.BindParameter[datetime] = sa.bindparam("now", type_=sa.DateTime)
        stmt = _build_upsert(dialect, table, sa.bindparam("key"), due, now)
        _UPSERTS[cache_key] = stmt
    return stmt


_SLOTS = ("key", "due", "now")
_TEMPLATES: dict[tuple[str, str, str], tuple[str, ...] | None] = {}


def mark_template(dialect: sa.Dialect, table: sa.Table) -> tuple[str, ...] | None:
    """The PostgreSQL upsert of :func:`mark` as SQL text split around its three values.

    For :mod:`.marks_at_commit`, which sends the text without parameters: the constants are
    inlined by SQLAlchemy, and the even-numbered parts are SQL while the odd ones name the
    slot (``key``, ``due``, ``now``) that takes an escaped string literal. None when the text
    holds a ``%`` (a table or schema name with one): the caller then binds parameters instead.
    """
    cache_key = (dialect.name, dialect.driver, table.fullname)  # what the text depends on
    if cache_key in _TEMPLATES:
        return _TEMPLATES[cache_key]
    markers = {name: f"__seat_billing_{name}_slot__" for name in _SLOTS}
    key = sa.cast(sa.literal_column(markers["key"]), table.c.organization_key.type)
    due = sa.cast(sa.literal_column(markers["due"]), table.c.next_attempt_at.type)
    now = sa.cast(sa.literal_column(markers["now"]), table.c.updated_at.type)
    stmt = _build_upsert("postgresql", table, key, due, now)
    text = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    template: tuple[str, ...] | None = None
    if "%" not in text and all(text.count(m) >= 1 for m in markers.values()):
        pattern = "(" + "|".join(re.escape(m) for m in markers.values()) + ")"
        by_marker = {m: name for name, m in markers.items()}
        parts = re.split(pattern, text)
        template = tuple(by_marker.get(part, part) if i % 2 else part
                         for i, part in enumerate(parts))
    _TEMPLATES[cache_key] = template
    return template


def mark_times(delay: float, now: datetime | None = None) -> tuple[datetime, datetime]:
    """(now, due): when a mark is written, and when its sync becomes due.

    ``now`` is the app's clock (``init_app(clock=...)``) when given: a row's ``created_at`` is
    compared with the provider's period (:func:`owed_before`), so both must read one clock.
    """
    now = utcnow() if now is None else now
    return now, now + timedelta(seconds=delay)


def _mark_params(keys: Iterable[str], delay: float, now: datetime | None) -> list[dict[str, Any]]:
    now, due = mark_times(delay, now)
    # A fixed order: concurrent transactions lock the rows alike and cannot deadlock.
    return [{"key": key, "due": due, "now": now} for key in sorted(set(keys))]


def mark(
    conn: sa.Connection, tables: Tables, keys: Iterable[str], delay: float = 0.0,
    now: datetime | None = None,
) -> None:
    """Record that these organizations need a sync: one row each, however often called.

    ``delay`` is the debounce window of deferred mode: the row becomes due that much later. A
    row already waiting for its first attempt keeps its due time, so a steady stream of changes
    still syncs once per window instead of being pushed back forever. A row already there keeps
    its ``created_at``: the time of the oldest change it holds (see :func:`owed_before`).
    """
    params = _mark_params(keys, delay, now)
    if not params:
        return
    table = tables.outbox
    dialect = conn.dialect.name
    if dialect in ("postgresql", "sqlite"):
        # One row is the common case: a single parameter set avoids executemany, which psycopg
        # runs as a pipeline with a round trip of its own.
        conn.execute(_upsert_statement(dialect, table), params[0] if len(params) == 1 else params)
        return
    for row in params:  # other databases: update, then insert what was not there
        key, due, now = row["key"], row["due"], row["now"]
        bump = {"generation": table.c.generation + 1, "status": PENDING, "attempts": 0,
                "next_attempt_at": due, "target_seats": None, "updated_at": now,
                "changed_at": now}
        updated = conn.execute(
            table.update().where(table.c.organization_key == key).values(bump)
        )
        if updated.rowcount == 0:
            conn.execute(table.insert().values(
                organization_key=key, generation=1, status=PENDING, attempts=0,
                next_attempt_at=due, created_at=now, updated_at=now, changed_at=now))


def owed_before(entry: OutboxEntry | None, moment: datetime | None) -> bool:
    """True when the row holds a change made before ``moment`` (a period's start).

    A row lives from the first change a sync has not settled until a sync settles every change
    it holds (it is deleted then), so its ``created_at`` is the time of the oldest change still
    owed, whatever marks, failures, holds or schedules came since.
    """
    return entry is not None and moment is not None and entry.created_at < moment


def read(conn: sa.Connection, tables: Tables, key: str) -> OutboxEntry | None:
    row = conn.execute(
        sa.select(tables.outbox).where(tables.outbox.c.organization_key == key)
    ).first()
    return _row_to_entry(row) if row is not None else None


def read_all(conn: sa.Connection, tables: Tables) -> list[OutboxEntry]:
    rows = conn.execute(sa.select(tables.outbox).order_by(tables.outbox.c.next_attempt_at))
    return [_row_to_entry(row) for row in rows]


def complete(conn: sa.Connection, tables: Tables, key: str, generation: int | None) -> bool:
    """Remove the row if no change arrived since ``generation`` was read; True when removed.

    ``None`` means the sync found no row when it started: any row there now was written by a
    change the sync did not count, so it stays for the next pass.
    """
    if generation is None:
        return False
    return bool(conn.execute(complete_statement(tables, key, generation)).rowcount)


def complete_statement(tables: Tables, key: str, generation: int) -> sa.Delete:
    """The DELETE of :func:`complete` (the sync engine may send it with the write's record)."""
    table = tables.outbox
    return table.delete().where(
        table.c.organization_key == key, table.c.generation == generation
    )


def record_failure(
    conn: sa.Connection,
    tables: Tables,
    key: str,
    *,
    generation: int | None,
    error: str,
    next_attempt_at: datetime,
    permanent: bool,
    target_seats: int | None,
    now: datetime | None = None,
) -> int:
    """Keep the row with the failure; return the attempt count. Creates the row if it was absent.

    A permanent failure parks the row (status ``failed``) until membership changes again; a
    transient one is retried at ``next_attempt_at``.
    """
    table = tables.outbox
    now = utcnow() if now is None else now
    values = {
        "status": FAILED if permanent else PENDING,
        "attempts": table.c.attempts + 1,
        "next_attempt_at": next_attempt_at,
        "last_error": error[:2000],
        "target_seats": target_seats,
        "updated_at": now,
    }
    if generation is None:
        # The failed sync started with no row: a row there now belongs to a change it never
        # counted, which must stay pending for its own sync, not inherit this failure.
        newer = read(conn, tables, key)
        if newer is not None:
            return newer.attempts
        mark(conn, tables, [key], now=now)
        conn.execute(table.update().where(table.c.organization_key == key).values(values))
        entry = read(conn, tables, key)
        return entry.attempts if entry else 1
    stmt = table.update().where(
        table.c.organization_key == key, table.c.generation == generation
    )
    if conn.execute(stmt.values(values)).rowcount == 0:
        newer = read(conn, tables, key)
        if newer is not None:
            # A newer change arrived meanwhile: its fresh row already asks for a sync.
            return newer.attempts
        mark(conn, tables, [key], now=now)  # an explicit sync had no row: keep the failure durable
        conn.execute(table.update().where(table.c.organization_key == key).values(values))
    entry = read(conn, tables, key)
    return entry.attempts if entry else 1


def hold(
    conn: sa.Connection, tables: Tables, key: str, generation: int | None, reason: str,
    target_seats: int | None, now: datetime | None = None,
) -> None:
    """Keep the row, not due, while the subscription cannot be billed; ``reason`` says why.

    With no row (an explicit sync) one is created, so that the owed change is not forgotten.
    """
    table = tables.outbox
    values = {"status": HELD, "last_error": reason[:2000], "target_seats": target_seats,
              "updated_at": utcnow()}
    stmt = table.update().where(table.c.organization_key == key)
    if generation is not None:
        stmt = stmt.where(table.c.generation == generation)
    elif read(conn, tables, key) is None:
        mark(conn, tables, [key], now=now)
    conn.execute(stmt.values(values))


def defer(conn: sa.Connection, tables: Tables, key: str, until: datetime) -> None:
    """Start a new debounce window for a row that changes arrived on while it was being synced."""
    table = tables.outbox
    conn.execute(
        table.update()
        .where(table.c.organization_key == key, table.c.status == PENDING, table.c.attempts == 0)
        .values(next_attempt_at=until)
    )


def schedule(
    conn: sa.Connection, tables: Tables, key: str, generation: int | None, due: datetime,
    target_seats: int, now: datetime | None = None,
) -> None:
    """Keep the row as a decrease due at ``due`` (the end of the billing period, less a margin).

    With no row (an explicit sync) one is created, so the decrease is not forgotten. A change
    that arrived since ``generation`` was read is left pending: it is synced first.
    ``decrease_due_at`` keeps the earliest due time of a decrease not yet written (a row
    scheduled again after a mark keeps the time its decrease was first due).
    """
    table = tables.outbox
    values = {"status": SCHEDULED, "attempts": 0, "next_attempt_at": due, "last_error": None,
              "target_seats": target_seats, "updated_at": utcnow(),
              "decrease_due_at": sa.func.coalesce(table.c.decrease_due_at, due),
              "decrease_seats": target_seats}
    stmt = table.update().where(table.c.organization_key == key)
    if generation is not None:
        stmt = stmt.where(table.c.generation == generation)
    elif read(conn, tables, key) is None:
        mark(conn, tables, [key], now=now)
    conn.execute(stmt.values(values))


def settle(conn: sa.Connection, tables: Tables, key: str) -> None:
    """Forget a waiting decrease: a pass wrote the quantity (or found it right) while a newer
    change kept the row, which now only asks for a sync of that change."""
    table = tables.outbox
    conn.execute(
        table.update()
        .where(table.c.organization_key == key, table.c.decrease_due_at.is_not(None))
        .values(decrease_due_at=None, decrease_seats=None)
    )


def due_keys(conn: sa.Connection, tables: Tables, now: datetime, limit: int = 500) -> list[str]:
    """Organizations whose pending (or scheduled) sync is due now, oldest first."""
    table = tables.outbox
    rows = conn.execute(
        sa.select(table.c.organization_key)
        .where(table.c.status.in_(DUE_STATUSES), table.c.next_attempt_at <= now)
        .order_by(table.c.next_attempt_at)
        .limit(limit)
    )
    return [str(r[0]) for r in rows]


def next_due_at(conn: sa.Connection, tables: Tables) -> datetime | None:
    table = tables.outbox
    value = conn.execute(
        sa.select(sa.func.min(table.c.next_attempt_at)).where(
            table.c.status.in_(DUE_STATUSES)
        )
    ).scalar()
    return value if isinstance(value, datetime) else None
