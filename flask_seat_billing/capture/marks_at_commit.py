"""Send the outbox rows in the COMMIT's round trip, on PostgreSQL through psycopg.

The outbox row has to be written in the member change's transaction: a crash after the commit
must not lose it. Sent as a statement of its own, though, it is a fourth round trip beside the
app's BEGIN, INSERT and COMMIT, a third more time on the request path. Here the rows a flush
names are queued on the connection instead, and the commit sends them together with the COMMIT
as one simple-protocol query, ``INSERT ... ON CONFLICT ...; COMMIT``. PostgreSQL runs the two in
order inside the open transaction: if the upsert fails, the COMMIT never runs and the member
change is not committed either; if the COMMIT fails, neither is anything else. The rows and the
membership change still commit together or not at all.

psycopg's ``commit()`` then finds the transaction already closed and sends nothing, so a
member change makes the same three round trips as without the extension; what remains is the
server's work on the second row (docs/benchmarks.md).

Whatever this cannot be sure of is written at flush time as before (:func:`accepts` says no):
engines it was not installed on (``SEAT_BILLING_OUTBOX_AT_COMMIT = False``), other drivers,
savepoints (a rollback to one must take its rows along), autocommit connections, two-phase
transactions, psycopg pipelines, ``schema_translate_map``, sessions bound to a connection whose
transaction they do not own, and connections with a ``commit`` listener of the app's own (it
expects the transaction still open when it runs, and it would run after ours).

How a queue ends, whatever happens to the transaction:

- commit: sent with the COMMIT (a failure rolls the connection back and raises SQLAlchemy's
  error; a lost connection, or an interruption such as a request timeout, invalidates it);
- rollback: dropped (also on a connection already invalidated);
- the connection goes back to the pool without either (a session garbage-collected unclosed):
  the pool's reset writes the rows into the still-open transaction, so they are committed or
  rolled back with it, whichever reset the pool is configured for.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import TwoPhaseTransaction
from sqlalchemy.orm import Session
from sqlalchemy.pool import PoolResetState

from .. import outbox

log = logging.getLogger("flask_seat_billing.marks_at_commit")
QUEUE = "_seat_billing_marks_at_commit"
# Per outbox table name: its SQL template, the debounce delay, the app's clock, the
# organizations to mark.
Queued = dict[str, tuple[tuple[str, ...], float, Callable[[], datetime], set[str]]]
_install_lock = threading.Lock()
_engines: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


def install(engine: sa.Engine) -> bool:
    """Listen to ``engine``'s commits and rollbacks and its pool's resets (once per engine).

    ``init_app`` calls this for the app's own engines when ``SEAT_BILLING_OUTBOX_AT_COMMIT`` is
    on; other engines of the process are left alone. Only a PostgreSQL engine on psycopg can
    take the rows with its COMMIT; False (nothing installed) for any other.
    """
    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
        return False
    with _install_lock:
        if engine not in _engines:
            event.listen(engine, "commit", _on_commit)
            event.listen(engine, "rollback", _on_rollback)
            event.listen(engine, "reset", _on_reset)  # the engine's pool, and the pools after it
            _engines.add(engine)
    return True


def accepts(session: Session, conn: sa.Connection, table: sa.Table) -> bool:
    """True when this flush's rows may wait for the commit of ``conn``'s own transaction."""
    dialect = conn.dialect
    if conn.engine not in _engines:  # not asked for on this engine (or not psycopg)
        return False
    if session.twophase or isinstance(session.bind, sa.Connection):
        return False
    if conn.in_nested_transaction() or isinstance(conn.get_transaction(), TwoPhaseTransaction):
        return False
    if conn.get_execution_options().get("schema_translate_map"):
        return False
    if any(listener is not _on_commit for listener in conn.dispatch.commit):
        return False
    if outbox.mark_template(dialect, table) is None:
        return False
    dbapi_connection: Any = conn.connection.dbapi_connection
    return not dbapi_connection.autocommit and dbapi_connection.pgconn.pipeline_status == 0


def queue(
    conn: sa.Connection, table: sa.Table, keys: Iterable[str], delay: float,
    clock: Callable[[], datetime],
) -> None:
    """Hold these organizations' rows until ``conn`` commits (dropped if it rolls back);
    ``clock`` is the app's, read when the rows are written."""
    template = outbox.mark_template(conn.dialect, table)
    assert template is not None  # accepts() said yes
    queued: Queued = conn.info.setdefault(QUEUE, {})
    entry = queued.setdefault(table.fullname, (template, delay, clock, set()))
    entry[3].update(keys)


def _on_rollback(conn: sa.Connection) -> None:
    if not conn.invalidated:  # an invalidated connection's info is gone with it
        conn.info.pop(QUEUE, None)


def _on_reset(dbapi_connection: Any, record: Any, reset_state: PoolResetState) -> None:
    """A connection returned with its transaction open: the rows join that transaction.

    Only a transaction still in progress can take them; a failed one is rolled back by any
    reset. A write that fails here fails the transaction too, so the member change is not kept
    either; the pool's own reset must still run, so the error is logged, not raised.
    """
    queued: Queued | None = record.info.pop(QUEUE, None) if record is not None else None
    if not queued or not reset_state.asyncio_safe or reset_state.terminate_only:
        return
    import psycopg
    from psycopg.pq import TransactionStatus

    if dbapi_connection.info.transaction_status != TransactionStatus.INTRANS:
        return
    try:
        dbapi_connection.execute(_query(dbapi_connection, queued).encode(
            dbapi_connection.info.encoding), prepare=False)
    except psycopg.Error as exc:
        log.warning("outbox rows of a session closed without commit or rollback not written "
                    "(its transaction fails with them): %s", exc)


def _on_commit(conn: sa.Connection) -> None:
    if conn.invalidated:
        return
    queued: Queued | None = conn.info.pop(QUEUE, None)
    if not queued:
        return
    import psycopg  # only reached on the psycopg driver

    dbapi_connection: Any = conn.connection.dbapi_connection
    query = _query(dbapi_connection, queued) + ";\nCOMMIT"
    try:
        # No parameters and prepare=False: psycopg sends the text with the simple protocol,
        # which allows several statements in one query; PostgreSQL stops at the first failure.
        dbapi_connection.execute(query.encode(dbapi_connection.info.encoding), prepare=False)
    except psycopg.Error as exc:
        # As SQLAlchemy does for its own statements: a lost connection leaves the pool, any
        # other failure leaves it rolled back, and the error is one of SQLAlchemy's.
        error: Any = exc
        disconnected = conn.dialect.is_disconnect(error, dbapi_connection, None)
        if disconnected:
            conn.invalidate(exc)
        else:
            _roll_back(dbapi_connection)
        raise sa.exc.DBAPIError.instance(
            query, None, exc, psycopg.Error,
            connection_invalidated=disconnected, dialect=conn.dialect,
        ) from exc
    except BaseException as exc:
        # Interrupted mid-query (a request timeout, ^C): the connection's state is unknown.
        conn.invalidate(exc)
        raise


def _roll_back(dbapi_connection: Any) -> None:
    try:
        dbapi_connection.rollback()
    except Exception:  # the original error is the one to report
        pass


def _query(dbapi_connection: Any, queued: Queued) -> str:
    """One upsert per organization, values quoted by libpq for this very connection."""
    encoding = dbapi_connection.info.encoding
    statements = []
    for template, delay, clock, keys in queued.values():
        now, due = outbox.mark_times(delay, clock())
        values = {"due": _time_literal(due), "now": _time_literal(now)}
        for key in sorted(keys):  # the order outbox.mark locks rows in
            values["key"] = _key_literal(dbapi_connection, encoding, key)
            statements.append(
                "".join(values[part] if i % 2 else part for i, part in enumerate(template))
            )
    return ";\n".join(statements)


def _time_literal(value: datetime) -> str:
    """A naive timestamp as a literal: ISO digits and ``-: .`` need no escaping anywhere."""
    return f"'{value.isoformat(' ')}'"


_KEY_LITERALS: dict[tuple[str, str], str] = {}
_KEEP_LITERALS = 10_000


def _key_literal(dbapi_connection: Any, encoding: str, key: str) -> str:
    """``key`` quoted by libpq (``PQescapeLiteral``), remembered per client encoding.

    The quoting depends only on the text and the client encoding (a backslash makes it an
    ``E''`` literal whatever ``standard_conforming_strings`` says), so an organization's key is
    quoted once per process rather than on every commit.
    """
    cached = _KEY_LITERALS.get((encoding, key))
    if cached is not None:
        return cached
    from psycopg.pq import Escaping

    quoted: bytes = Escaping(dbapi_connection.pgconn).escape_literal(key.encode(encoding))
    literal = quoted.decode(encoding)
    if len(_KEY_LITERALS) >= _KEEP_LITERALS:
        _KEY_LITERALS.clear()  # bounded: keys are re-quoted after a flood of organizations
    _KEY_LITERALS[(encoding, key)] = literal
    return literal
