"""How many seats an organization should be billed for.

Counts are always computed from committed rows at the moment of a sync (never carried from the
event that triggered it), so the last sync of a burst always carries the latest count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from .errors import InvalidOrganizationKey
from .keys import to_key
from .membership import MembershipSchema
from .plans import Plan
from .tables import utcnow


@dataclass(frozen=True)
class SeatCount:
    """The parts of a seat count, so a custom rule can start from the default one."""

    organization_id: Any
    members: int
    pending_invitations: int
    included: int
    minimum: int

    @property
    def billable(self) -> int:
        """Billable members (+ pending invitations) - included seats, never below the minimum."""
        return max(self.minimum, self.members + self.pending_invitations - self.included)


SeatRule = Callable[[Any, SeatCount], int]


class RuleSource(Protocol):
    """Where the counter finds the app's rule (the app's :class:`~.hooks.Hooks`)."""

    seat_rule: SeatRule | None


class SeatCounter:
    """Counts billable seats with one query per organization, or a few grouped ones for many."""

    def __init__(
        self,
        schema: MembershipSchema,
        *,
        included: int,
        minimum: int,
        count_pending_invitations: bool,
        rules: RuleSource | None = None,
    ) -> None:
        self.schema = schema
        self.included = included
        self.minimum = minimum
        self.count_pending = count_pending_invitations and schema.invitation_model is not None
        self.rules = rules

    @property
    def rule(self) -> SeatRule | None:
        """The app's counting rule, looked up on each count so a later decorator still applies."""
        return self.rules.seat_rule if self.rules is not None else None

    def _member_conditions(self) -> list[Any]:
        criteria = self.schema.billable_criteria
        return [criteria] if criteria is not None else []

    def _pending_conditions(self, now: Any = None) -> list[Any]:
        """``now``: the time invitations must not have expired by (a bound parameter, for a
        statement built once and sent many times); the current time when not given."""
        model = self.schema.invitation_model
        fields = self.schema.invitation_fields
        expires = getattr(model, fields.expires_at)
        return [
            getattr(model, fields.status) == fields.pending_value,
            sa.or_(expires.is_(None), expires > (utcnow() if now is None else now)),
        ]

    def _finish(self, organization_id: Any, members: int, pending: int) -> SeatCount:
        return SeatCount(organization_id, members, pending, self.included, self.minimum)

    def count_statements(
        self, organization_id: Any, now: Any = None
    ) -> tuple[sa.Select[Any], sa.Select[Any] | None]:
        """The SELECTs of :meth:`count`: members, and pending invitations when they count
        (None otherwise), for a caller that sends them inside a larger statement.
        ``organization_id`` and ``now`` may be bound parameters (see ``_pending_conditions``)."""
        column = self.schema.organization_column
        members = (sa.select(sa.func.count())
                   .select_from(self.schema.table)
                   .where(column == organization_id, *self._member_conditions()))
        if not self.count_pending:
            return members, None
        inv_column = self.schema.invitation_organization_column
        pending = (sa.select(sa.func.count())
                   .select_from(sa.inspect(self.schema.invitation_model).local_table)
                   .where(inv_column == organization_id, *self._pending_conditions(now)))
        return members, pending

    def from_counts(self, organization_id: Any, members: int, pending: int) -> SeatCount:
        """The :class:`SeatCount` of counts read with :meth:`count_statements`."""
        return self._finish(organization_id, int(members), int(pending))

    def count(self, conn: sa.Connection, organization_id: Any) -> SeatCount:
        """The seat count of one organization, read on ``conn``."""
        members_query, pending_query = self.count_statements(organization_id)
        members = conn.execute(members_query).scalar_one()
        pending = conn.execute(pending_query).scalar_one() if pending_query is not None else 0
        return self._finish(organization_id, int(members), int(pending))

    def billable(self, conn: sa.Connection, organization_id: Any) -> int:
        """Seats to bill for one organization: the custom rule when the app gave one."""
        return self.billable_of(self.count(conn, organization_id))

    def billable_of(self, count: SeatCount) -> int:
        """Seats to bill for a count already read: the custom rule when the app gave one."""
        if self.rule is not None:
            return max(0, int(self.rule(count.organization_id, count)))
        return count.billable

    def count_by_type(self, conn: sa.Connection, organization_id: Any) -> dict[str, int]:
        """Billable members of one organization per seat type, in one grouped query.

        Types come from ``init_app(seat_type=...)``; a member whose type is NULL is left out
        (it still counts in :meth:`billable`, the total). Pending invitations and the app's
        included and minimum seats apply to the total only; a plan's included and minimum
        seats per type apply in :meth:`billable_by_type`. Empty without a seat type
        expression.
        """
        kind = self.schema.seat_type
        if kind is None:
            return {}
        column = self.schema.organization_column
        rows = conn.execute(
            sa.select(kind, sa.func.count())
            .select_from(self.schema.table)
            .where(column == organization_id, *self._member_conditions())
            .group_by(kind)
        )
        return {str(k): int(n) for k, n in rows if k is not None}

    def billable_by_type(
        self, conn: sa.Connection, organization_id: Any, plan: Plan | None
    ) -> dict[str, int]:
        """:meth:`count_by_type` with ``plan``'s included and minimum seats per type applied
        (:meth:`.Plan.billable_by_type`): the quantities a sync writes, one per seat type."""
        counts = self.count_by_type(conn, organization_id)
        return plan.billable_by_type(counts) if plan is not None else counts

    def billable_for(self, conn: sa.Connection, organization_id: Any, plan: Plan | None) -> int:
        """:meth:`billable` (the total) for an organization on ``plan``: with included or
        minimum seats per type, the total moves by what they take from (or add to) the types'
        counts, so it stays the sum of what the types bill plus the members of no priced type
        (and the app's own included, minimum and rule). Without them, :meth:`billable`."""
        total = self.billable(conn, organization_id)
        if plan is None or not (plan.included_seats or plan.minimum_seats):
            return total
        return plan.billed_total(total, self.count_by_type(conn, organization_id))

    def count_by_type_many(
        self, conn: sa.Connection, organization_ids: Iterable[Any]
    ) -> dict[str, dict[str, int]]:
        """:meth:`count_by_type` of many organizations, by key, in one grouped query."""
        kind = self.schema.seat_type
        ids = list(organization_ids)
        if kind is None or not ids:
            return {}
        column = self.schema.organization_column
        rows = conn.execute(
            sa.select(column, kind, sa.func.count())
            .where(column.in_(ids), *self._member_conditions())
            .group_by(column, kind)
        )
        result: dict[str, dict[str, int]] = {to_key(i): {} for i in ids}
        for org, k, n in rows:
            if k is not None:
                result[to_key(org)][str(k)] = int(n)
        return result

    def billable_many(
        self, conn: sa.Connection, organization_ids: Iterable[Any] | None = None
    ) -> dict[str, int]:
        """Seats to bill for many organizations, by key, in two grouped queries.

        ``None`` means every organization that has members or pending invitations. With a custom
        rule each organization is counted on its own, since the rule may read anything. Ids in
        any spelling are canonicalised (``InvalidOrganizationKey`` if one cannot be).
        """
        parse = self.schema.parse_key
        ids = None if organization_ids is None else [parse(i) for i in organization_ids]
        column = self.schema.organization_column
        members_q = sa.select(column, sa.func.count()).where(*self._member_conditions())
        if ids is not None:
            members_q = members_q.where(column.in_(ids))
        members = {to_key(k): int(n) for k, n in conn.execute(members_q.group_by(column))}
        pending: dict[str, int] = {}
        if self.count_pending:
            inv_column = self.schema.invitation_organization_column
            pending_q = sa.select(inv_column, sa.func.count()).where(*self._pending_conditions())
            if ids is not None:
                pending_q = pending_q.where(inv_column.in_(ids))
            pending = {to_key(k): int(n) for k, n in conn.execute(pending_q.group_by(inv_column))}
        keys = [to_key(i) for i in ids] if ids is not None else sorted(set(members) | set(pending))
        result: dict[str, int] = {}
        for key in keys:
            try:
                organization_id = parse(key)
            except InvalidOrganizationKey:  # a row no key can name (SQLite keeps anything)
                continue
            count = self._finish(organization_id, members.get(key, 0), pending.get(key, 0))
            if self.rule is not None:
                result[key] = max(0, int(self.rule(count.organization_id, count)))
            else:
                result[key] = count.billable
        return result
