"""See every membership change and write the outbox row in the same transaction.

Session listeners are installed once on SQLAlchemy's ``Session`` class, so every session an app
uses (``db.session``, a ``Session(db.engine)`` of its own, a worker's) is covered; mapper
listeners are installed on the member (and invitation) model. Each event is routed to the app
state whose model it concerns: the current app's, or, outside an app context, the state that
registered the model. They never call the provider: they only note which organizations changed,
durably, and hand them to the state after commit.

Where each kind of change is seen:

- inserts and updates in the mapper's ``before_insert`` / ``before_update``: foreign keys set
  through a relationship (``org.members.append(m)``, ``m.organization = other``) are filled in
  by then, and the row still holds its old organization for a move;
- deletes in ``before_flush``, while the row still exists to load an expired attribute from;
- bulk ORM ``insert(...)``, ``update(...)``, ``delete(...)`` in :mod:`.bulk`.

The outbox upsert for a flush runs once, in ``after_flush``, whatever the number of rows (on
PostgreSQL with psycopg it is queued there and sent with the COMMIT: :mod:`.marks_at_commit`).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, object_session

from . import bulk, marks_at_commit, outbox

if TYPE_CHECKING:
    from .state import SeatBillingState

log = logging.getLogger("flask_seat_billing.listeners")
PENDING_KEYS = "_seat_billing_pending_keys"
FLUSH_KEYS = "_seat_billing_flush_keys"
AFTER_EVENTS = "_seat_billing_after_events"
STATE = "_seat_billing_state"
_install_lock = threading.Lock()
_session_listeners = False
_models: weakref.WeakKeyDictionary[type, weakref.ref[SeatBillingState]] = (
    weakref.WeakKeyDictionary()
)


def install(state: SeatBillingState) -> None:
    """Listen to sessions (once per process) and to this state's models (once per class)."""
    global _session_listeners
    with _install_lock:
        if not _session_listeners:
            event.listen(Session, "before_flush", _before_flush)
            event.listen(Session, "after_flush", _after_flush)
            event.listen(Session, "do_orm_execute", bulk.on_execute)
            event.listen(Session, "after_commit", _after_commit)
            event.listen(Session, "after_transaction_end", _after_transaction_end)
            _session_listeners = True
        marks_at_commit.install()
        models = [state.schema.member_model]
        if state.schema.invitation_model is not None:
            models.append(state.schema.invitation_model)
        for model in models:
            if model not in _models:
                event.listen(model, "before_insert", _before_insert)
                event.listen(model, "before_update", _before_update)
            _models[model] = weakref.ref(state)


def state_for(session: Session, model: type | None = None) -> SeatBillingState | None:
    """The app state a session's change belongs to, or None when no app bills it."""
    if has_app_context():
        state: SeatBillingState | None = current_app.extensions.get("seat_billing")
        owner = getattr(session, "_db", None)
        if state is not None and (owner is None or owner is state.db):
            schema = state.schema
            if model is None or model in (schema.member_model, schema.invitation_model):
                return state
    if model is not None:
        ref = _models.get(model)
        return ref() if ref is not None else None
    noted: SeatBillingState | None = session.info.get(STATE)
    return noted


def note(session: Session, state: SeatBillingState, values: Iterable[Any]) -> None:
    """Write the outbox rows of these organizations in the session's transaction.

    Each value is made into its canonical key first (:mod:`.keys`); one that cannot be raises
    ``InvalidOrganizationKey`` before anything is written for it.
    """
    key = state.schema.key
    note_keys(session, state, {key(v) for v in values if v is not None})


def note_keys(session: Session, state: SeatBillingState, keys: set[str]) -> None:
    """:func:`note` for keys already canonical: now, or on PostgreSQL with psycopg in the
    COMMIT's own round trip (:mod:`.marks_at_commit`)."""
    if not keys:
        return
    # The member model's own connection: a session with per-model ``binds`` and no default
    # bind has no other, and the row must share the member change's transaction.
    conn = session.connection(bind_arguments={"mapper": state.schema.mapper})
    if marks_at_commit.accepts(session, conn, state.tables.outbox):
        marks_at_commit.queue(conn, state.tables.outbox, keys, state.mark_delay)
    else:
        outbox.mark(conn, state.tables, keys, delay=state.mark_delay)
    pending: set[str] = session.info.setdefault(PENDING_KEYS, set())
    pending.update(keys)
    session.info[STATE] = state


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
        _collect_after_events(session, state)


def _snapshot(instance: Any) -> SimpleNamespace:
    """The loaded column values of ``instance``: safe to read after commit, in any session."""
    loaded = sa.inspect(instance).dict
    return SimpleNamespace(**{k: v for k, v in loaded.items() if not k.startswith("_")})


def _app_value(state: SeatBillingState, value: Any) -> Any:
    """The organization id as the database stores it (``"01"`` given, ``1`` heard)."""
    return None if value is None else state.schema.parse_key(value)


def _collect_after_events(session: Session, state: SeatBillingState) -> None:
    """Note what after-policies must hear once this transaction commits (only if any listen).

    Runs after the flush (primary keys known) and keeps snapshots, not the instances: after the
    commit the instances are expired and their session may not load them again.
    """
    policies = state.hooks.policies
    schema = state.schema
    events: list[tuple[str, dict[str, Any]]] = []
    if policies.list("after_member_add"):
        events += [
            ("after_member_add",
             {"organization_id": _app_value(state, schema.organization_of(o)),
              "member": _snapshot(o)})
            for o in session.new if schema.is_member(o)
        ]
    if policies.list("after_member_remove"):
        for o in session.deleted:
            if schema.is_member(o):
                member = _snapshot(o)
                organization_id = getattr(member, schema.organization_key, None)
                events.append(("after_member_remove",
                               {"organization_id": _app_value(state, organization_id),
                                "member": member}))
    if schema.invitation_model is not None and policies.list("after_invitation_accept"):
        fields = schema.invitation_fields
        for obj in session.dirty:
            if not schema.is_invitation(obj):
                continue
            history = sa.inspect(obj).attrs[fields.status].history
            if fields.accepted_value in history.added:
                org = getattr(obj, schema.invitation_organization_key)
                events.append(("after_invitation_accept",
                               {"organization_id": _app_value(state, org),
                                "invitation": _snapshot(obj)}))
    if events:
        session.info.setdefault(AFTER_EVENTS, []).extend(events)
        session.info[STATE] = state


def _inside_outer_transaction(session: Session) -> bool:
    """True when the session joined a transaction it does not own (``Session(bind=conn)``).

    Its commit only releases a savepoint: the outbox rows are not visible to other connections
    yet, and an inline sync would wait on row locks its own caller holds.
    """
    bind = session.bind
    return isinstance(bind, sa.Connection) and bind.in_transaction()


def _after_commit(session: Session) -> None:
    keys: set[str] | None = session.info.pop(PENDING_KEYS, None)
    events: list[tuple[str, dict[str, Any]]] | None = session.info.pop(AFTER_EVENTS, None)
    state: SeatBillingState | None = session.info.pop(STATE, None) or state_for(session)
    if state is None or (not keys and not events):
        return
    try:
        if keys and _inside_outer_transaction(session):
            if state.settings.sync_mode != "manual":  # the worker syncs once the owner commits
                state.worker.nudge(state.settings.poll_seconds)
        elif keys:
            state.after_commit(keys)
        if events:
            state.run_after_events(events)
    except Exception:  # the membership change is committed; it must not fail because of us
        log.exception("seat sync after commit failed; the outbox keeps the change")
        if state.settings.sync_mode != "manual":
            state.worker.nudge(state.settings.poll_seconds)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        for name in (PENDING_KEYS, FLUSH_KEYS, AFTER_EVENTS, STATE):
            session.info.pop(name, None)
