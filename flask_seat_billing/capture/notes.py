"""Which app a session's change belongs to, and writing its outbox rows in that transaction.

Used by the unit-of-work listeners (:mod:`.listeners`) and the bulk statement listener
(:mod:`.bulk`) alike. The names under which a session keeps what it collected between flush and
commit are here too, so the after-commit handling (:mod:`.after_commit`) clears the same ones.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy.orm import Session

from .. import outbox
from ..state import SeatBillingState
from . import marks_at_commit

PENDING_KEYS = "_seat_billing_pending_keys"
FLUSH_KEYS = "_seat_billing_flush_keys"
AFTER_EVENTS = "_seat_billing_after_events"
STATE = "_seat_billing_state"
# Keys first noted inside a savepoint, by savepoint: a rollback to it takes them back out of
# PENDING_KEYS, so the commit hands no organization over that it did not change.
SAVEPOINT_KEYS = "_seat_billing_savepoint_keys"
SESSION_INFO = (PENDING_KEYS, FLUSH_KEYS, AFTER_EVENTS, STATE, SAVEPOINT_KEYS)
_models: weakref.WeakKeyDictionary[type, weakref.ref[SeatBillingState]] = (
    weakref.WeakKeyDictionary()
)


def register_models(state: SeatBillingState) -> list[type]:
    """Route changes of this state's member (and invitation) model to it; returns the models
    that had no state before (their mapper listeners are still to be installed)."""
    models = [state.schema.member_model]
    if state.schema.invitation_model is not None:
        models.append(state.schema.invitation_model)
    new = [model for model in models if model not in _models]
    for model in models:
        _models[model] = weakref.ref(state)
    return new


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

    Each value is made into its canonical key first (:mod:`..keys`); one that cannot be raises
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
        marks_at_commit.queue(conn, state.tables.outbox, keys, state.mark_delay,
                              state.engine.clock)
    else:
        outbox.mark(conn, state.tables, keys, delay=state.mark_delay, now=state.engine.clock())
    pending: set[str] = session.info.setdefault(PENDING_KEYS, set())
    savepoint = session.get_nested_transaction()
    if savepoint is not None:
        by_savepoint: dict[Any, set[str]] = session.info.setdefault(SAVEPOINT_KEYS, {})
        by_savepoint.setdefault(savepoint, set()).update(keys - pending)
    pending.update(keys)
    session.info[STATE] = state


def forget_savepoint(session: Session, previous_transaction: Any) -> None:
    """A savepoint was rolled back: its outbox rows went with it, and so do the organizations
    first noted inside it (or inside savepoints within it)."""
    if not previous_transaction.nested:
        return
    by_savepoint: dict[Any, set[str]] | None = session.info.get(SAVEPOINT_KEYS)
    pending: set[str] | None = session.info.get(PENDING_KEYS)
    if not by_savepoint or pending is None:
        return
    for savepoint in list(by_savepoint):
        ancestor = savepoint
        while ancestor is not None and ancestor is not previous_transaction:
            ancestor = ancestor.parent
        if ancestor is previous_transaction:
            pending.difference_update(by_savepoint.pop(savepoint))
