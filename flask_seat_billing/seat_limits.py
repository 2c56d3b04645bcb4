"""The built-in seat cap: a plan's ``limits.seats`` bounds members plus pending invitations.

Rules (the seed kit's seat enforcement), while the organization has an ``active`` or ``trialing``
subscription whose plan sets ``limits.seats``:

- inviting is allowed while billable members + pending unexpired invitations + 1 <= seats;
  resending a pending, unexpired invitation is free (it already holds a seat), resending an expired
  one counts again;
- accepting an invitation needs billable members + 1 <= seats.

Race safety. The app calls ``check`` inside its own transaction just before it inserts the
invitation (or member). Two such flows could both count "one seat left" and both insert. On
PostgreSQL the check first takes ``pg_advisory_xact_lock`` on the app's session connection, keyed
by organization: the second flow waits until the first commits or rolls back (which releases
the lock), then counts on the same connection under READ COMMITTED and sees the new row. Under
REPEATABLE READ or SERIALIZABLE the count may come from an older snapshot; use the default level.
On SQLite nothing is locked: SQLite allows one writer at a time but does not serialise the reads
before the write, and it has no lock tied to a transaction to take; it is for development, where
invitations are not concurrent. Call ``check`` before adding the new row to the session, so that
it is not counted twice. An app that writes through a session other than ``db.session`` passes it
as ``session=`` so that the lock and the count share its transaction.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from .locks import advisory_key
from .policies import ACCEPT_POLICY, INVITE_POLICY
from .policies.context import PolicyContext
from .policies.decisions import Allow, Deny, allow, deny
from .policies.registry import SEAT_LIMIT_CODE, Policy
from .providers.base import ACTIVE_STATUSES
from .state import SeatBillingState, get_state
from .subscriptions import billing_subscription
from .tables import utcnow


def seat_limit_policies() -> list[Policy]:
    """The built-in policies, for the extension to register before any of the app's own."""
    return [
        Policy(INVITE_POLICY, "Invitations fit in the plan's limits.seats",
               "before_invitation_create", check_invitation_create),
        Policy(ACCEPT_POLICY, "Accepting keeps members within the plan's limits.seats",
               "before_invitation_accept", check_invitation_accept),
    ]


def check_invitation_create(ctx: PolicyContext) -> Allow | Deny:
    """Refuse an invitation that would take more seats than the plan has."""
    state = _state(ctx)
    if _holds_a_seat(state, ctx.invitation, ctx.organization_id):
        return allow()  # a resend of a live invitation takes no new seat
    return _within_limit(state, ctx, count_pending=True)


def check_invitation_accept(ctx: PolicyContext) -> Allow | Deny:
    """Refuse to turn an invitation into a member when every seat is taken by members."""
    return _within_limit(_state(ctx), ctx, count_pending=False)


def _state(ctx: PolicyContext) -> SeatBillingState:
    if ctx.organization_id is None:
        raise ValueError(f"{ctx.hook} needs organization_id= to enforce the seat limit.")
    return get_state(ctx.app)


def _within_limit(
    state: SeatBillingState, ctx: PolicyContext, *, count_pending: bool
) -> Allow | Deny:
    session = ctx.get("session") or state.db.session
    mapper = sa.inspect(state.schema.member_model)
    conn: sa.Connection = session.connection(bind_arguments={"mapper": mapper})
    key = state.schema.key(ctx.organization_id)  # "01" is organization 1 (keys.py)
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(CAST(:k AS bigint))"),
                     {"k": advisory_key("invite:" + key)})
    by_type = _seat_limits_by_type(state, conn, key)
    if by_type:
        return _within_type_limit(state, ctx, conn, key, by_type)
    seats = _seat_limit(state, conn, key)
    if seats is None:
        return allow()
    org = state.schema.parse_key(key)
    members = _members(state, conn, org)
    pending = _pending(state, conn, org)
    used = members + (pending if count_pending else 0)
    if used + 1 <= seats:
        return allow()
    return deny(
        SEAT_LIMIT_CODE,
        f"All {seats} seats of this organization's plan are taken ({members} members, "
        f"{pending} pending invitations). Remove a member, revoke an invitation or upgrade.",
        {"purchased": seats, "members": members, "pending_invitations": pending},
    )


def _within_type_limit(
    state: SeatBillingState, ctx: PolicyContext, conn: sa.Connection, key: str,
    caps: dict[str, int],
) -> Allow | Deny:
    """A plan with seat types capped per type (``limits={"seats": {"editor": 10}}``): the new
    seat's type comes with the check (``seat_type="editor"``); members of that type are counted
    (invitations carry no type, so they are not)."""
    kind = ctx.get("seat_type")
    if kind is None:
        raise ValueError(
            f"{ctx.hook} needs seat_type= to enforce this plan's seat limit per type "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(caps.items()))})."
        )
    cap = caps.get(str(kind))
    if cap is None:
        return allow()  # this type is not capped
    members = state.counter.count_by_type(conn, state.schema.parse_key(key)).get(str(kind), 0)
    if members + 1 <= cap:
        return allow()
    return deny(
        SEAT_LIMIT_CODE,
        f"All {cap} {kind} seats of this organization's plan are taken ({members} {kind} "
        "members). Remove one, choose another seat type or upgrade.",
        {"purchased": cap, "members": members, "pending_invitations": 0, "seat_type": str(kind)},
    )


def _seat_limits_by_type(state: SeatBillingState, conn: sa.Connection, key: str) -> dict[str, int]:
    subscription = billing_subscription(conn, state.tables, key)
    if subscription is None or subscription.plan_name is None:
        return {}
    if subscription.status not in ACTIVE_STATUSES:
        return {}
    plan = state.catalog.get(subscription.plan_name)
    return plan.seat_limits_by_type if plan is not None else {}


def _seat_limit(state: SeatBillingState, conn: sa.Connection, key: str) -> int | None:
    """The cap of the organization's billing subscription (``billing_subscription``) while it
    is active or trialing; None when nothing caps it."""
    subscription = billing_subscription(conn, state.tables, key)
    if subscription is None or subscription.plan_name is None:
        return None
    if subscription.status not in ACTIVE_STATUSES:
        return None
    plan = state.catalog.get(subscription.plan_name)
    return plan.seat_limit if plan is not None else None


def _members(state: SeatBillingState, conn: sa.Connection, org: Any) -> int:
    schema = state.schema
    criteria = [schema.billable_criteria] if schema.billable_criteria is not None else []
    query = (
        sa.select(sa.func.count())
        .select_from(schema.table)
        .where(schema.organization_column == org, *criteria)
    )
    return int(conn.execute(query).scalar_one())


def _pending(state: SeatBillingState, conn: sa.Connection, org: Any) -> int:
    """Pending invitations that have not expired (0 when the app has no invitation model)."""
    schema = state.schema
    model = schema.invitation_model
    if model is None:
        return 0
    fields = schema.invitation_fields
    expires = getattr(model, fields.expires_at)
    query = (
        sa.select(sa.func.count())
        .select_from(sa.inspect(model).local_table)
        .where(
            schema.invitation_organization_column == org,
            getattr(model, fields.status) == fields.pending_value,
            sa.or_(expires.is_(None), expires > utcnow()),
        )
    )
    return int(conn.execute(query).scalar_one())


def _holds_a_seat(state: SeatBillingState, invitation: Any, organization_id: Any) -> bool:
    """True for a stored, pending, unexpired invitation of this organization.

    The values read are those before any change not yet flushed, so extending an expired
    invitation's ``expires_at`` before the check does not make its resend free.
    """
    schema = state.schema
    if invitation is None or not schema.is_invitation(invitation):
        return False
    inspected = sa.inspect(invitation)
    if not inspected.persistent:
        return False  # a new invitation being created, not a resend
    fields = schema.invitation_fields
    org = _original(inspected, schema.invitation_organization_key)
    if org is None or schema.key(org) != schema.key(organization_id):
        return False
    if _original(inspected, fields.status) != fields.pending_value:
        return False
    return _unexpired(_original(inspected, fields.expires_at))


def _original(inspected: Any, name: str) -> Any:
    history = inspected.attrs[name].history
    if history.deleted:
        return history.deleted[0]
    return getattr(inspected.object, name)


def _unexpired(expires_at: datetime | None) -> bool:
    if expires_at is None:
        return True
    if expires_at.tzinfo is not None:
        return expires_at > datetime.now(timezone.utc)
    return expires_at > utcnow()
