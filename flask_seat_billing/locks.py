"""One sync per organization at a time, across threads and, on PostgreSQL, across processes.

Two syncs of one organization racing to the provider could land in the wrong order and leave a
stale quantity. On PostgreSQL a session-level advisory lock, held on the connection the sync then
uses, serialises them across every process; it is released by the server if the process dies.
Elsewhere (SQLite, for development) a per-process lock does the same within one process.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

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


@contextmanager
def organization_lock(engine: sa.Engine, organization_key: str) -> Iterator[sa.Connection]:
    """Hold the organization's lock; yield a connection to do the sync's reads and writes on.

    The connection is returned with no transaction open; callers commit their own short
    transactions on it and never hold one across a provider call.
    """
    if engine.dialect.name == "postgresql":
        key = advisory_key(organization_key)
        with engine.connect() as conn:
            _lock_call(conn, "pg_advisory_lock", key)
            try:
                yield conn
            finally:
                try:
                    conn.rollback()
                    _lock_call(conn, "pg_advisory_unlock", key)
                except Exception:
                    # Never hand a connection that may still hold the lock back to the pool:
                    # closing it makes the server release every lock it held.
                    log.exception("could not release the seat-sync lock; closing its connection")
                    conn.invalidate()
        return
    with _local_lock(engine, organization_key), engine.connect() as conn:
        yield conn
