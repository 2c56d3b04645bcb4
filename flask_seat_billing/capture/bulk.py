"""Bulk ORM statements on the member model: ``insert(...)``, ``update(...)``, ``delete(...)``.

They bypass the unit of work, so the mapper events never see them. This ``do_orm_execute``
listener works out which organizations a statement touches and notes them in the same
transaction:

- inserts: the organization values of each row (``execute(insert(M), [rows])``,
  ``.values(...)``, ``.values([...])``);
- deletes: the organizations the WHERE clause reaches, read just before;
- updates that can change a count (the organization, or a column the billable filter reads):
  the organizations of the matched rows before, and, when the new organization is a SQL
  expression rather than a value, after the statement (by primary key).

A statement whose organizations cannot be known (an insert from a SELECT) marks every
organization with members: slower, never wrong.

Every organization is made into its canonical key (:mod:`..keys`). A value that cannot be one
is refused before the statement runs, so nothing is written. The values only known after the
statement (a SQL expression's result, read back) are checked after it: a refusal there rolls
the session back before raising, so the statement is not committed without its outbox rows. In
a session joined to an outer transaction (``Session(bind=connection)``) that is the session's
savepoint, or the outer transaction itself; the statement ran inside either, so an outer commit
afterwards keeps nothing of it (tests/capture/test_organization_keys.py holds every join mode
to that).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.sql.elements import BindParameter, ClauseElement

from ..errors import InvalidOrganizationKey
from ..state import SeatBillingState
from .notes import note, state_for


def _value(value: Any) -> Any:
    return value.value if isinstance(value, BindParameter) else value


def _rows(state_: ORMExecuteState) -> list[dict[str, Any]]:
    """Every row of parameters or VALUES the statement carries, keyed by attribute/column name."""
    statement: Any = state_.statement
    rows: list[dict[str, Any]] = []
    params = state_.parameters
    listed: list[Any] = list(params) if isinstance(params, list) else [params] if params else []
    rows.extend(dict(row) for row in listed)
    single = getattr(statement, "_values", None) or {}
    if single:
        rows.append({str(getattr(k, "key", k)): _value(v) for k, v in single.items()})
    for group in getattr(statement, "_multi_values", None) or ():
        for row in group:
            if isinstance(row, dict):
                rows.append({str(getattr(k, "key", k)): _value(v) for k, v in row.items()})
    return rows


def on_execute(state_: ORMExecuteState) -> Any:
    if not (state_.is_insert or state_.is_update or state_.is_delete):
        return None
    mapper = state_.bind_mapper
    session = state_.session
    if mapper is not None:
        state = state_for(session, mapper.class_)
        if state is None or mapper.class_ is not state.schema.member_model:
            return None
    else:  # a Core statement on the member table, run through the session
        state = state_for(session)
        table = getattr(state_.statement, "table", None)
        if state is None or table is not state.schema.table:
            return None
    schema = state.schema
    names = {schema.organization_key, schema.organization_column.key}
    rows = _rows(state_)
    given = [v for row in rows for k, v in row.items() if k in names]
    if state_.is_insert:
        if given and not any(isinstance(v, ClauseElement) for v in given):
            note(session, state, given)
            return None
        return _then_mark_everyone(state_, state)
    if state_.is_update:
        set_names = {k for row in rows for k in row}
        if not state.custom_rule_active() and not (
            set_names & (schema.watched_attributes | names)
        ):
            return None
    return _around_matched_rows(state_, state, [v for v in given if not isinstance(
        v, ClauseElement)], any(isinstance(v, ClauseElement) for v in given))


def _around_matched_rows(
    state_: ORMExecuteState, state: SeatBillingState, new_values: list[Any], computed: bool
) -> Any:
    """Note the organizations of the rows the WHERE clause matches, before and after."""
    schema = state.schema
    session = state_.session
    conn = session.connection()
    criteria = list(getattr(state_.statement, "_where_criteria", ()))
    keys = list(schema.mapper.primary_key)
    matched = conn.execute(sa.select(schema.organization_column, *keys).where(*criteria)).all()
    note(session, state, [row[0] for row in matched] + new_values)
    if not computed:
        return None
    result = state_.invoke_statement()
    identities = [tuple(row[1:]) for row in matched]
    if identities:
        after = conn.execute(
            sa.select(schema.organization_column).where(sa.tuple_(*keys).in_(identities))
        ).scalars()
        _note_after_statement(state_, state, list(after))
    return result


def _then_mark_everyone(state_: ORMExecuteState, state: SeatBillingState) -> Any:

    result = state_.invoke_statement()
    conn = state_.session.connection()
    everyone = conn.execute(sa.select(state.schema.organization_column).distinct()).scalars()
    _note_after_statement(state_, state, list(everyone))
    return result


def _note_after_statement(
    state_: ORMExecuteState, state: SeatBillingState, values: list[Any]
) -> None:
    """Note organizations read after the statement ran; on a refusal, undo it and raise."""
    try:
        note(state_.session, state, values)
    except InvalidOrganizationKey as error:
        state_.session.rollback()
        raise InvalidOrganizationKey(
            error.value, f"{error.reason}; the statement left it in the table, so the "
            "session's transaction was rolled back"
        ) from error
