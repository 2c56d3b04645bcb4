"""See every membership change and write the outbox row in the same transaction.

Listeners are installed once, on SQLAlchemy's ``Session`` class, so that every session an app
uses (``db.session``, a ``Session(db.engine)`` of its own, a worker's) is covered; each event is
routed to the app state whose member model it concerns. They never call the provider: they only
note which organizations changed, durably, and hand them to the state after commit.

Covered: unit-of-work inserts, deletes and updates (moving a member between organizations marks
both; changing an attribute the billable filter reads marks the organization), and ORM bulk
``insert(...)``, ``update(...)``, ``delete(...)`` statements run through a session.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from . import outbox
from .keys import to_key

if TYPE_CHECKING:
    from .state import SeatBillingState

log = logging.getLogger("flask_seat_billing.listeners")
PENDING_KEYS = "_seat_billing_pending_keys"
AFTER_EVENTS = "_seat_billing_after_events"
_install_lock = threading.Lock()
_installed = False


def install() -> None:
    """Install the session listeners once per process."""
    global _installed
    with _install_lock:
        if _installed:
            return
        event.listen(Session, "before_flush", _before_flush)
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "do_orm_execute", _do_orm_execute)
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_transaction_end", _after_transaction_end)
        _installed = True


def _state_for(session: Session) -> SeatBillingState | None:
    if not has_app_context():
        return None
    state: SeatBillingState | None = current_app.extensions.get("seat_billing")
    if state is None:
        return None
    owner = getattr(session, "_db", None)
    if owner is not None and owner is not state.db:
        return None
    return state


def _note(session: Session, state: SeatBillingState, values: Iterable[Any]) -> None:
    keys = {to_key(v) for v in values if v is not None}
    if not keys:
        return
    outbox.mark(session.connection(), state.tables, keys, delay=state.mark_delay)
    pending: set[str] = session.info.setdefault(PENDING_KEYS, set())
    pending.update(keys)


def _history_values(instance: Any, key: str) -> list[Any]:
    """Every value the attribute had or has in this flush: old and new organization.

    Reading the attribute first loads it when a commit expired it (the row still exists in
    ``before_flush``), so a member deleted after a commit still names its organization.
    """
    current = getattr(instance, key)
    history = sa.inspect(instance).attrs[key].history
    return [current, *history.added, *history.deleted]


def _stored_organization(session: Session, schema: Any, instance: Any) -> list[Any]:
    """The organization the database still holds for a member whose old value was not loaded.

    Assigning a new organization to an expired attribute keeps no old value in the history, so
    the organization the member leaves is read from its row, by primary key, before the flush.
    """
    history = sa.inspect(instance).attrs[schema.organization_key].history
    identity = sa.inspect(instance).identity
    if history.deleted or not history.added or identity is None:
        return []
    mapper = schema.mapper
    pairs = zip(mapper.primary_key, identity, strict=True)
    condition = sa.and_(*(col == value for col, value in pairs))
    query = sa.select(schema.organization_column).where(condition)
    return list(session.connection().execute(query).scalars())


def _changed(instance: Any, keys: Iterable[str]) -> bool:
    attrs = sa.inspect(instance).attrs
    return any(attrs[k].history.has_changes() for k in keys if k in attrs)


def _before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    state = _state_for(session)
    if state is None:
        return
    schema = state.schema
    org_key = schema.organization_key
    custom_rule = state.custom_rule_active()
    touched: list[Any] = []
    for obj in session.new:
        if schema.is_member(obj):
            touched.append(schema.organization_of(obj))
        elif schema.is_invitation(obj) and state.counter.count_pending:
            touched.append(getattr(obj, schema.invitation_organization_key))
    for obj in session.deleted:
        if schema.is_member(obj):
            touched.extend(_history_values(obj, org_key))
        elif schema.is_invitation(obj) and state.counter.count_pending:
            touched.extend(_history_values(obj, schema.invitation_organization_key))
    for obj in session.dirty:
        if schema.is_member(obj):
            watched = schema.watched_attributes
            if custom_rule or _changed(obj, watched):
                touched.extend(_history_values(obj, org_key))
                touched.extend(_stored_organization(session, schema, obj))
        elif schema.is_invitation(obj) and state.counter.count_pending:
            touched.extend(_history_values(obj, schema.invitation_organization_key))
    _note(session, state, touched)


def _snapshot(instance: Any) -> SimpleNamespace:
    """The loaded column values of ``instance``: safe to read after commit, in any session."""
    loaded = sa.inspect(instance).dict
    return SimpleNamespace(**{k: v for k, v in loaded.items() if not k.startswith("_")})


def _after_flush(session: Session, flush_context: Any) -> None:
    state = _state_for(session)
    if state is not None:
        _collect_after_events(session, state)


def _collect_after_events(session: Session, state: SeatBillingState) -> None:
    """Note what after-policies must hear once this transaction commits (only if any listen).

    Runs after the flush (primary keys known) and keeps snapshots, not the instances: after the
    commit the instances are expired and their session may not load them again.
    """
    policies = state.extension._policies
    schema = state.schema
    events: list[tuple[str, dict[str, Any]]] = []
    if policies.list("after_member_add"):
        events += [
            ("after_member_add",
             {"organization_id": schema.organization_of(o), "member": _snapshot(o)})
            for o in session.new if schema.is_member(o)
        ]
    if policies.list("after_member_remove"):
        events += [
            ("after_member_remove",
             {"organization_id": _snapshot(o).__dict__.get(schema.organization_key),
              "member": _snapshot(o)})
            for o in session.deleted if schema.is_member(o)
        ]
    if schema.invitation_model is not None and policies.list("after_invitation_accept"):
        fields = schema.invitation_fields
        for obj in session.dirty:
            if not schema.is_invitation(obj):
                continue
            history = sa.inspect(obj).attrs[fields.status].history
            if fields.accepted_value in history.added:
                org = getattr(obj, schema.invitation_organization_key)
                events.append(("after_invitation_accept",
                               {"organization_id": org, "invitation": _snapshot(obj)}))
    if events:
        session.info.setdefault(AFTER_EVENTS, []).extend(events)


def _dml_values(statement: Any) -> dict[str, Any]:
    """The SET / VALUES of an insert or update statement, by column or attribute name."""
    values: dict[str, Any] = {}
    for key, value in (getattr(statement, "_values", None) or {}).items():
        name = getattr(key, "key", key)
        values[str(name)] = getattr(value, "value", value)
    return values


def _do_orm_execute(state_: ORMExecuteState) -> None:
    if not (state_.is_insert or state_.is_update or state_.is_delete):
        return
    session = state_.session
    state = _state_for(session)
    if state is None:
        return
    schema = state.schema
    statement: Any = state_.statement
    mapper = state_.bind_mapper
    is_member = (mapper is not None and mapper.class_ is schema.member_model) or (
        getattr(statement, "table", None) is schema.table
    )
    if not is_member:
        return
    org_key = schema.organization_key
    org_column = schema.organization_column.key
    names = {org_key, org_column}
    params = state_.parameters
    rows: list[Any] = list(params) if isinstance(params, list) else [params] if params else []
    values = _dml_values(statement)
    touched: list[Any] = []
    for row in [*rows, values]:
        touched.extend(v for k, v in row.items() if k in names)
    if state_.is_insert:
        if not touched:
            log.warning("bulk insert into %s: no organization found in its values; "
                        "run `flask seats resync`", schema.member_model.__name__)
        _note(session, state, touched)
        return
    if state_.is_update:
        set_names = set(values) | {k for row in rows for k in row}
        relevant = schema.watched_attributes | names
        if not state.custom_rule_active() and not (set_names & relevant):
            return
    # Which organizations the WHERE clause reaches, read before the statement changes them.
    criteria = list(getattr(statement, "_where_criteria", ()))
    query = sa.select(schema.organization_column).where(*criteria).distinct()
    touched.extend(session.connection().execute(query).scalars())
    _note(session, state, touched)


def _after_commit(session: Session) -> None:
    keys: set[str] | None = session.info.pop(PENDING_KEYS, None)
    events: list[tuple[str, dict[str, Any]]] | None = session.info.pop(AFTER_EVENTS, None)
    if not keys and not events:
        return
    state = _state_for(session)
    if state is None:
        return
    try:
        if keys:
            state.after_commit(keys)
        if events:
            state.run_after_events(events)
    except Exception:  # the membership change is committed; it must not fail because of us
        log.exception("seat sync after commit failed; the outbox keeps the change")


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(PENDING_KEYS, None)
        session.info.pop(AFTER_EVENTS, None)
