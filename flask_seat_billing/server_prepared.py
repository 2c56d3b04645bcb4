"""Statements kept prepared on the PostgreSQL session, for the queries the sync sends by hand.

The sync fuses its first read with the lock, and its record with the commit and the release,
into one simple-protocol query each (:mod:`.locks`): one round trip instead of several. psycopg
prepares only what it sends with the extended protocol, so PostgreSQL parsed and planned those
statements anew on every pass (the first read: 0.2 ms of planning for 0.08 ms of execution,
measured with ``EXPLAIN ANALYZE``). A simple query may ``EXECUTE`` a statement that SQL's
``PREPARE`` made on the session, so each is prepared once per database connection and then
travels as ``EXECUTE fsb_<hash>(<values>)`` inside the fused query.

- What a connection has prepared is remembered with it in the pool (``info``).
- The ``PREPARE`` is sent alone, once per connection and statement (its own round trip), so a
  statement the server refuses to prepare is known before anything depends on it: it is then
  sent unprepared for the life of the process, as before, with a warning.
- A server that forgot its statements (``DISCARD ALL`` from a pooler, a ``DEALLOCATE``) answers
  ``InvalidSqlStatementName``; the callers then :func:`forget` and send the statement unprepared
  once (:mod:`.locks`), and the next pass prepares it again.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

import sqlalchemy as sa

log = logging.getLogger("flask_seat_billing.server_prepared")

_PREPARED = "flask_seat_billing.server_prepared"  # names prepared on this DBAPI connection
_REFUSED: set[str] = set()  # statements the server would not prepare: sent unprepared
_PLACEHOLDER = re.compile(r"%\(([^)]+)\)s")


def call(conn: sa.Connection, sql: str) -> str:
    """``sql`` (pyformat placeholders, ``%%`` for a percent sign, as SQLAlchemy compiles for
    psycopg) as ``EXECUTE name(%(a)s, ...)`` of a statement prepared on ``conn``'s session,
    or ``sql`` itself when it cannot be prepared; either is formatted by a ``ClientCursor``
    with the same parameters. Prepares it first (one round trip) when the session lacks it.
    """
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    body = _PLACEHOLDER.sub(number, sql).replace("%%", "%")
    name = "fsb_" + hashlib.blake2b(body.encode(), digest_size=10).hexdigest()
    if name in _REFUSED:
        return sql
    prepared: set[str] = conn.connection.info.setdefault(_PREPARED, set())
    if name not in prepared:
        if not _prepare(conn, name, body):
            return sql
        prepared.add(name)
    return f"EXECUTE {name}(" + ", ".join(f"%({n})s" for n in names) + ")"


def _prepare(conn: sa.Connection, name: str, body: str) -> bool:
    """``PREPARE name AS body`` on the session (the caller has its driver connection idle, in
    autocommit); False when the server refuses it."""
    import psycopg

    raw: Any = conn.connection.dbapi_connection
    try:
        raw.execute(f"PREPARE {name} AS {body}".encode(raw.info.encoding), prepare=False)
    except psycopg.errors.DuplicatePreparedStatement:
        return True  # prepared earlier on this session by a pass whose memory was lost
    except psycopg.errors.OperationalError:
        raise  # the connection, not the statement: the caller's failure handling runs
    except psycopg.Error as error:
        _REFUSED.add(name)
        log.warning("PostgreSQL would not prepare a seat-sync statement; it is sent "
                    "unprepared: %s", error)
        return False
    return True


def forget(conn: sa.Connection) -> None:
    """The session may have lost its prepared statements: prepare them again when next used."""
    if not conn.invalidated:
        conn.connection.info.pop(_PREPARED, None)


def is_forgotten(error: BaseException) -> bool:
    """Whether ``error`` says the session no longer has a prepared statement."""
    import psycopg

    return isinstance(error, psycopg.errors.InvalidSqlStatementName)
