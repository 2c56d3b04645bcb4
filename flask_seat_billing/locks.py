"""One sync per organization at a time, across threads and, on PostgreSQL, across processes.

Two syncs of one organization racing to the provider could land in the wrong order and leave a
stale quantity. On PostgreSQL a session-level advisory lock, held on the connection the sync then
uses, serialises them across every process; it is released by the server if the process dies.
Elsewhere (SQLite, for development) a per-process lock does the same within one process.

On psycopg the lock travels with the holder's first read (one query, ``first``) and its release
with the holder's last write (:func:`commit_and_release`): a round trip each saved, and no
change in what the lock guarantees (the read sees what the previous holder committed; the
release follows the commit).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from .raw_sql import may_send_raw, rendered

log = logging.getLogger("flask_seat_billing.locks")
_LOCAL_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCAL_GUARD = threading.Lock()
_NAMESPACE = b"flask-seat-billing:org:"


def advisory_key(organization_key: str) -> int:
    """A stable signed 64-bit number for the organization (PostgreSQL's lock key type)."""
    digest = hashlib.blake2b(_NAMESPACE + organization_key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _local_lock(engine: sa.Engine, organization_key: str) -> threading.Lock:
    with _LOCAL_GUARD:
        key = (str(engine.url), organization_key)
        lock = _LOCAL_LOCKS.get(key)
        if lock is None:
            lock = _LOCAL_LOCKS[key] = threading.Lock()
        return lock


_AUTOCOMMIT_DRIVERS = ("psycopg", "psycopg2")


def _lock_call(conn: sa.Connection, function: str, key: int) -> None:
    """``SELECT pg_advisory_[un]lock(key)`` outside any transaction, in one round trip.

    Through SQLAlchemy the statement would cost three (BEGIN, SELECT, COMMIT); a session-level
    lock needs no transaction, so on psycopg the statement is sent in autocommit on the idle
    driver connection (no SQLAlchemy event fires for it: it changes no data).
    """
    if conn.dialect.driver in _AUTOCOMMIT_DRIVERS:
        conn.rollback()  # SQLAlchemy's side idle too (no round trip when nothing is open)
        raw: Any = conn.connection.dbapi_connection
        raw.autocommit = True
        try:
            with raw.cursor() as cursor:
                cursor.execute(f"SELECT {function}(%s)", (key,))
        finally:
            raw.autocommit = False
        return
    conn.execute(sa.text(f"SELECT {function}(:k)"), {"k": key})
    conn.commit()


_FIRST_READ = "flask_seat_billing.first_read"
_LOCK_KEY = "flask_seat_billing.lock_key"  # the advisory lock this connection holds
_RELEASED = "flask_seat_billing.lock_released"  # released early, by commit_and_release


# Weak: an app's statements (built once per sync engine) die with it, names and all.
_NAMES: weakref.WeakKeyDictionary[sa.Select[Any], list[str]] = weakref.WeakKeyDictionary()


def _lock_and_read(
    conn: sa.Connection, key: int, first: tuple[sa.Select[Any], dict[str, Any]]
) -> bool:
    """``SELECT pg_advisory_lock(key); <first>`` in one round trip; False when the driver
    cannot (the caller then locks alone, and the statement is sent later by its owner).

    Safe to fuse: the two run in one simple query, and under READ COMMITTED (PostgreSQL's
    default, which this needs) each statement of it takes its own snapshot, so ``first`` sees
    everything committed before the lock was granted, as a separate statement would. A
    session-level lock survives the implicit transaction's rollback if ``first`` fails.
    """
    if conn.dialect.driver != "psycopg":
        return False
    import psycopg

    if not may_send_raw(conn) or not _reads_committed(conn):
        return False  # the session's own level runs the pair: it must snapshot per statement
    statement, values = first
    sql, params = rendered(conn, statement, values)
    if "fsb_lock_key" in params:
        return False
    conn.rollback()  # SQLAlchemy's side idle (no round trip when nothing is open)
    raw: Any = conn.connection.dbapi_connection
    was_autocommit = raw.autocommit
    raw.autocommit = True
    try:
        with psycopg.ClientCursor(raw) as cursor:
            cursor.execute(f"SELECT pg_advisory_lock(%(fsb_lock_key)s); {sql}",
                           {**params, "fsb_lock_key": key}, prepare=False)
            cursor.nextset()
            row = cursor.fetchone()
    finally:
        raw.autocommit = was_autocommit
    names = _column_names(statement)  # not cursor.description: an object per column, per call
    conn.info[_FIRST_READ] = dict(zip(names, row, strict=True)) if row is not None else None
    return True


def _column_names(statement: sa.Select[Any]) -> list[str]:
    """The names of ``statement``'s result columns (its labels), in order; computed once."""
    names = _NAMES.get(statement)
    if names is None:
        names = _NAMES[statement] = [str(c.key) for c in statement.selected_columns]
    return names


_ISOLATION = "flask_seat_billing.session_isolation"


def _reads_committed(conn: sa.Connection) -> bool:
    """Whether the session's own isolation level is READ COMMITTED: asked of the server once
    per database connection (the app's ``connect`` listeners may have changed it after the
    engine read its default), kept with the connection in the pool."""
    info = conn.connection.info
    level = info.get(_ISOLATION)
    if level is None:
        level = info[_ISOLATION] = str(
            conn.exec_driver_sql("SHOW transaction_isolation").scalar()).lower()
        conn.rollback()
    return bool(level == "read committed")


def commit_and_release(
    conn: sa.Connection, statement: Any, values: dict[str, Any], owed: Any, *,
    flush: bool = True,
) -> tuple[list[Any], bool] | None:
    """Run ``statement`` (a write, its RETURNING rows wanted) in a transaction of its own and,
    in the same round trip once it is committed, release the organization's lock unless
    ``owed`` (a SELECT of one boolean, of the same parameters) says work remains for the
    holder. (rows, released), or None when this connection cannot (then nothing was sent).

    ``BEGIN; <statement>; COMMIT; SELECT pg_advisory_unlock(...) WHERE NOT <owed>`` in one
    simple query: the release follows the commit, so the next holder sees the write.

    ``flush=False`` commits without waiting for the WAL to reach the disk
    (``SET LOCAL synchronous_commit TO OFF``): visible to everyone at once, and made durable
    by the next synchronous commit of any session (or the WAL writer, within three
    ``wal_writer_delay``); only a crash of the database server before that loses it, and
    with it everything committed after the last durable commit, never a later commit alone.
    For callers whose loss of the write a later pass recovers from by design.
    """
    key = conn.info.get(_LOCK_KEY)
    if key is None or conn.dialect.driver != "psycopg" or not may_send_raw(conn):
        return None
    import psycopg

    sql, params = rendered(conn, statement, values)
    owed_sql, owed_params = rendered(conn, owed, values)
    if "fsb_lock_key" in params or any(params.get(k, v) != v for k, v in owed_params.items()):
        return None
    conn.commit()  # nothing of SQLAlchemy's open (no round trip in autocommit)
    raw: Any = conn.connection.dbapi_connection
    was_autocommit = raw.autocommit
    raw.autocommit = True
    try:
        with psycopg.ClientCursor(raw) as cursor:
            lazy = "" if flush else "SET LOCAL synchronous_commit TO OFF; "
            cursor.execute(
                f"BEGIN; {lazy}{sql}; COMMIT; SELECT pg_advisory_unlock(%(fsb_lock_key)s) "
                f"FROM ({owed_sql}) AS fsb_owed(owed) WHERE NOT fsb_owed.owed",
                {**params, **owed_params, "fsb_lock_key": key}, prepare=False)
            cursor.nextset()
            if not flush:
                cursor.nextset()
            rows = cursor.fetchall()
            cursor.nextset()
            cursor.nextset()
            released = cursor.fetchone() is not None
    except BaseException:
        # A failed statement leaves the BEGIN's transaction aborted: end it, so the connection
        # (and the lock it still holds) is usable again and the caller's failure handling runs.
        if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raw.rollback()
        raise
    finally:
        raw.autocommit = was_autocommit
    if released:
        conn.info[_RELEASED] = True
    return rows, released


def take_first_read(conn: sa.Connection) -> dict[str, Any] | None:
    """The row of the statement :func:`organization_lock` sent with the lock (once), if it did."""
    return conn.info.pop(_FIRST_READ, None)  # type: ignore[no-any-return]


@contextmanager
def organization_lock(
    engine: sa.Engine, organization_key: str, *,
    first: tuple[sa.Select[Any], dict[str, Any]] | None = None,
) -> Iterator[sa.Connection]:
    """Hold the organization's lock; yield a connection to do the sync's reads and writes on.

    The connection is returned with no transaction open; callers commit their own short
    transactions on it and never hold one across a provider call. ``first``: a SELECT of one
    row the caller reads first under the lock, with its parameters; on PostgreSQL (psycopg)
    it travels with the lock in one round trip and its row waits in :func:`take_first_read`.
    """
    if engine.dialect.name == "postgresql":
        key = advisory_key(organization_key)
        with engine.connect() as conn:
            try:
                if first is None or not _lock_and_read(conn, key, first):
                    _lock_call(conn, "pg_advisory_lock", key)
            except Exception:
                # The lock may be held (granted, then the read failed): closing the connection
                # makes the server release it.
                conn.invalidate()
                raise
            conn.info[_LOCK_KEY] = key
            try:
                yield conn
            finally:
                try:
                    conn.info.pop(_FIRST_READ, None)
                    conn.info.pop(_LOCK_KEY, None)
                    conn.rollback()
                    if not conn.info.pop(_RELEASED, False):
                        _lock_call(conn, "pg_advisory_unlock", key)
                except Exception:
                    # Never hand a connection that may still hold the lock back to the pool:
                    # closing it makes the server release every lock it held.
                    log.exception("could not release the seat-sync lock; closing its connection")
                    conn.invalidate()
        return
    with _local_lock(engine, organization_key), engine.connect() as conn:
        yield conn
