"""After the commit: hand the changed organizations to the app, run the after-policies.

Runs in the session's ``after_commit``; the membership change is committed by then and must not
look failed because of us, so an error here is logged and left to the worker (the outbox keeps
the change). What after-policies must hear is collected after each flush (primary keys known) as
snapshots, not instances: after the commit the instances are expired and their session may not
load them again.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, SessionTransaction

from ..state import SeatBillingState
from .notes import AFTER_EVENTS, PENDING_KEYS, SESSION_INFO, STATE, state_for

log = logging.getLogger("flask_seat_billing.listeners")


def _snapshot(instance: Any) -> SimpleNamespace:
    """The loaded column values of ``instance``: safe to read after commit, in any session."""
    loaded = sa.inspect(instance).dict
    return SimpleNamespace(**{k: v for k, v in loaded.items() if not k.startswith("_")})


def _app_value(state: SeatBillingState, value: Any) -> Any:
    """The organization id as the database stores it (``"01"`` given, ``1`` heard)."""
    return None if value is None else state.schema.parse_key(value)


def collect_after_events(session: Session, state: SeatBillingState) -> None:
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


def on_commit(session: Session) -> None:
    keys: set[str] | None = session.info.pop(PENDING_KEYS, None)
    events: list[tuple[str, dict[str, Any]]] | None = session.info.pop(AFTER_EVENTS, None)
    state: SeatBillingState | None = session.info.pop(STATE, None) or state_for(session)
    if state is None or (not keys and not events):
        return
    try:
        if keys and _inside_outer_transaction(session):
            if state.settings.sync_mode != "manual":  # the worker syncs once the owner commits
                state.dispatcher.nudge(state.settings.poll_seconds)
        elif keys:
            state.after_commit(keys)
        if events:
            state.run_after_events(events)
    except Exception:  # the membership change is committed; it must not fail because of us
        log.exception("seat sync after commit failed; the outbox keeps the change")
        if state.settings.sync_mode != "manual":
            state.dispatcher.nudge(state.settings.poll_seconds)


def on_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        for name in SESSION_INFO:
            session.info.pop(name, None)
