"""Statements sent past SQLAlchemy's execution, as raw SQL on the psycopg connection.

The sync's per-pass statements are built once and sent many times; on PostgreSQL with psycopg
the hot ones go straight to the driver: fused into one round trip with the lock or its release
(:mod:`.locks`), or, for a single statement in autocommit (the write's mark), simply without
SQLAlchemy's per-call execution work. SQLAlchemy still compiles each statement, once per
dialect, and its column types still convert the values; what is skipped is the rendering and
the execution context on every call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

_COMPILED: dict[tuple[Any, str], Any] = {}


@dataclass(frozen=True)
class _Rendering:
    """A statement's SQL for a dialect, and how to bind a call's values to it."""

    sql: str
    names: frozenset[str]  # every parameter the statement binds
    variables: frozenset[str]  # those the caller gave values for (the rest are constants)
    constants: dict[str, Any]  # driver values of the statement's own parameters
    processors: dict[str, Callable[[Any], Any]]  # conversions of the variables


_RENDERINGS: dict[tuple[Any, str], _Rendering] = {}


def may_send_raw(conn: sa.Connection) -> bool:
    """Whether statements may be sent as raw SQL on this connection: not when a
    ``schema_translate_map`` applies (only SQLAlchemy's execution renders it)."""
    return not conn.get_execution_options().get("schema_translate_map")


def rendered(
    conn: sa.Connection, statement: Any, values: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """SQL and driver parameters of ``statement`` (compiled once per dialect) for ``values``.

    Rendered once too, when the SQL cannot depend on ``values`` (none of them is an IN list
    SQLAlchemy expands at execution) and the statement's own values cannot change (none is
    computed at binding time): then each call only converts the caller's values (the rest are
    the statement's own constants, converted once). Rendering the first read again
    on every pass cost 66 us, its IN lists of statuses and all.
    """
    cache_key = (statement, conn.dialect.name)
    rendering = _RENDERINGS.get(cache_key)
    if rendering is not None and rendering.variables == rendering.names & values.keys():
        params = dict(rendering.constants)
        for name in rendering.variables:
            convert = rendering.processors.get(name)
            params[name] = convert(values[name]) if convert is not None else values[name]
        return rendering.sql, params
    compiled = _COMPILED.get(cache_key)
    if compiled is None:  # compiled once: the statement is built once and sent with new values
        compiled = _COMPILED[cache_key] = statement.compile(dialect=conn.dialect)
    expanded = compiled.construct_expanded_state(values)  # IN lists rendered, values bound
    processors = expanded.processors  # the column types' conversions, as SQLAlchemy applies
    params = {name: processors[name](value) if name in processors else value
              for name, value in expanded.parameters.items()}
    names = frozenset(compiled.bind_names.values())
    variables = names & values.keys()
    expanding = {compiled.bind_names[b] for b in compiled.post_compile_params}
    # Kept only when the SQL and the constants cannot change between calls: no caller value
    # expands an IN list, no parameter computes its value when bound (``callable_``: an app's
    # counting filter may bind the current time so), no name is escaped in the SQL.
    if (not variables & expanding and not compiled.escaped_bind_names
            and not any(b.callable is not None for b in compiled.binds.values())):
        _RENDERINGS[cache_key] = _Rendering(
            sql=expanded.statement, names=names, variables=variables,
            constants={n: v for n, v in params.items() if n not in variables},
            processors={n: processors[n] for n in variables if n in processors})
    return expanded.statement, params


def execute_alone(conn: sa.Connection, statement: Any, values: dict[str, Any]) -> bool:
    """Run ``statement`` as a transaction of its own, straight through psycopg, when ``conn``
    is a psycopg connection in autocommit (the sync's ``_statements_alone``); False (nothing
    sent) otherwise, and the caller executes it through SQLAlchemy. No rows are returned.

    The driver still prepares it server-side after a few runs (psycopg's own threshold), as it
    does for SQLAlchemy's executions.
    """
    if (conn.dialect.driver != "psycopg" or not may_send_raw(conn)
            or conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT"):
        return False
    import psycopg

    raw: Any = conn.connection.dbapi_connection
    if not raw.autocommit or raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return False
    sql, params = rendered(conn, statement, values)
    raw.execute(sql, params).close()
    return True
