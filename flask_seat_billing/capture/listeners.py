"""See every membership change and write the outbox row in the same transaction.

Session listeners are installed once on SQLAlchemy's ``Session`` class, so every session an app
uses (``db.session``, a ``Session(db.engine)`` of its own, a worker's) is covered; mapper
listeners are installed on the member (and invitation) model. Each event is routed to the app
state whose model it concerns: the current app's, or, outside an app context, the state that
registered the model. They never call the provider: they only note which organizations changed,
durably, and hand them to the state after commit (:mod:`.after_commit`).

Where each kind of change is seen:

- inserts and updates in the mapper's ``before_insert`` / ``before_update``: foreign keys set
  through a relationship (``org.members.append(m)``, ``m.organization = other``) are filled in
  by then, and the row still holds its old organization for a move;
- deletes in ``before_flush``, while the row still exists to load an expired attribute from;
- bulk ORM ``insert(...)``, ``update(...)``, ``delete(...)`` in :mod:`.bulk`.

Which app a change belongs to, and the outbox write itself, are :mod:`.notes`.

The outbox upsert for a flush runs once, in ``after_flush``, whatever the number of rows (on
PostgreSQL with psycopg it is queued there and sent with the COMMIT: :mod:`.marks_at_commit`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, object_session

from ..state import SeatBillingState
from . import after_commit, bulk
from .notes import (
    FLUSH_KEYS,
    STATE,
    forget_savepoint,
    note_keys,
    register_models,
    state_for,
)

_install_lock = threading.Lock()
_session_listeners = False


def install(state: SeatBillingState) -> None:
    """Listen to sessions (once per process) and to this state's models (once per class)."""
    global _session_listeners
    with _install_lock:
        if not _session_listeners:
            event.listen(Session, "before_flush", _before_flush)
            event.listen(Session, "after_flush", _after_flush)
            event.listen(Session, "do_orm_execute", bulk.on_execute)
            event.listen(Session, "after_commit", after_commit.on_commit)
            event.listen(Session, "after_transaction_end", after_commit.on_transaction_end)
            event.listen(Session, "after_soft_rollback", forget_savepoint)
            _session_listeners = True
        for model in register_models(state):
            event.listen(model, "before_insert", _before_insert)
            event.listen(model, "before_update", _before_update)


def _remember(session: Session, state: SeatBillingState, values: Iterable[Any]) -> None:
    """Collect organizations during a flush; ``after_flush`` writes them in one statement.

    Keys are made here, before the member row's own statement runs, so a value that cannot be
    one (out of range, NUL...) fails the flush with our error rather than the driver's, and
    the whole flush is rolled back.
    """
    key = state.schema.key
    collected: set[str] = session.info.setdefault(FLUSH_KEYS, set())
    collected.update(key(v) for v in values if v is not None)
    session.info[STATE] = state


def _history_values(instance: Any, key: str) -> list[Any]:
    """Every value the attribute had or has in this flush: old and new organization.

    Reading the attribute first loads it when a commit expired it (the row still exists),
    so a member deleted after a commit still names its organization.
    """
    current = getattr(instance, key)
    history = sa.inspect(instance).attrs[key].history
    return [current, *history.added, *history.deleted]


def _stored_organization(conn: sa.Connection, mapper: Any, column: Any, instance: Any) -> list[Any]:
    """The organization the row still holds, read by primary key before the UPDATE runs.

    Assigning a new organization to an expired attribute (or through a relationship) keeps no
    old value in the history, so the organization the member leaves is read from its row.
    """
    identity = sa.inspect(instance).identity
    if identity is None:
        return []
    pairs = zip(mapper.primary_key, identity, strict=True)
    condition = sa.and_(*(col == value for col, value in pairs))
    return list(conn.execute(sa.select(column).where(condition)).scalars())


def _changed(instance: Any, keys: Iterable[str]) -> bool:
    attrs = sa.inspect(instance).attrs
    return any(attrs[k].history.has_changes() for k in keys if k in attrs)


def _organization_field(state: SeatBillingState, instance: Any) -> tuple[str, Any] | None:
    """(attribute, column) naming the organization, for members and counted invitations."""
    schema = state.schema
    if schema.is_member(instance):
        return schema.organization_key, schema.organization_column
    if schema.is_invitation(instance) and state.counter.count_pending:
        return schema.invitation_organization_key, schema.invitation_organization_column
    return None


def _billed(target: Any) -> tuple[Session, SeatBillingState, str, Any] | None:
    """(session, state, attribute, column) when ``target``'s rows can change a seat count."""
    session = object_session(target)
    state = state_for(session, type(target)) if session is not None else None
    field = _organization_field(state, target) if state is not None else None
    if session is None or state is None or field is None:
        return None
    return session, state, field[0], field[1]


def _before_insert(mapper: Any, connection: sa.Connection, target: Any) -> None:
    billed = _billed(target)
    if billed is not None:
        session, state, attribute, _ = billed
        _remember(session, state, [getattr(target, attribute)])


def _before_update(mapper: Any, connection: sa.Connection, target: Any) -> None:
    billed = _billed(target)
    if billed is None:
        return
    session, state, attribute, column = billed
    if state.schema.is_member(target):
        watched = state.schema.watched_attributes
        if not (state.custom_rule_active() or _changed(target, watched)):
            return
    elif not _changed(target, {attribute, state.schema.invitation_fields.status,
                               state.schema.invitation_fields.expires_at}):
        return
    values = _history_values(target, attribute)
    history = sa.inspect(target).attrs[attribute].history
    if history.added and not history.deleted:  # moved, and the old organization was not loaded
        values += _stored_organization(connection, mapper, column, target)
    _remember(session, state, values)


def _before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    session.info.pop(FLUSH_KEYS, None)  # left by a flush that failed part-way
    for obj in list(session.deleted):
        state = state_for(session, type(obj))
        field = _organization_field(state, obj) if state is not None else None
        if state is not None and field is not None:
            _remember(session, state, _history_values(obj, field[0]))


def _after_flush(session: Session, flush_context: Any) -> None:
    keys: set[str] | None = session.info.pop(FLUSH_KEYS, None)
    # The state that collected this flush's keys, else the one the session belongs to.
    state: SeatBillingState | None = session.info.get(STATE) or state_for(session)
    if keys and state is not None:
        note_keys(session, state, keys)
    if state is not None:
        after_commit.collect_after_events(session, state)
