"""What the extension knows of the app's member (and invitation) models.

The listeners need to know which attribute changes can move a seat count; the counter needs the
SQL that counts billable members. Both come from the same description, built and checked once in
``init_app`` so that a wrong attribute name fails at start with a message naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapper
from sqlalchemy.sql import visitors

from .errors import ConfigurationError
from .keys import KeyRule

BillableFilter = Callable[[Any], Any]


@dataclass(frozen=True)
class InvitationFields:
    """Attribute names on the invitation model; defaults follow the seed kit's schema."""

    status: str = "status"
    expires_at: str = "expires_at"
    pending_value: str = "pending"
    accepted_value: str = "accepted"
    email: str = "email"


def _mapper(model: Any, what: str) -> Mapper[Any]:
    try:
        mapper = sa.inspect(model)
    except sa.exc.NoInspectionAvailable:
        raise ConfigurationError(f"{what} {model!r} is not a mapped SQLAlchemy class.") from None
    if not isinstance(mapper, Mapper):
        raise ConfigurationError(f"{what} {model!r} is not a mapped SQLAlchemy class.")
    return mapper


def _on_default_bind(model: Any, what: str) -> None:
    """Refuse a model on a Flask-SQLAlchemy bind other than the default one.

    The extension's tables live on the default bind, and the outbox row must be written in the
    member change's own transaction, so the member rows must live there too.
    """
    table = _mapper(model, what).local_table
    metadata = table.metadata if isinstance(table, sa.Table) else None
    bind_key = metadata.info.get("bind_key") if metadata is not None else None
    if bind_key is not None:
        raise ConfigurationError(
            f"{what} {model.__name__} is on the bind {bind_key!r}; flask-seat-billing keeps its "
            "tables on the default bind (SQLALCHEMY_DATABASE_URI) and needs the member rows in "
            "the same database, so the outbox row commits with them."
        )


def _attribute(model: Any, name: str, what: str) -> Any:
    mapper = _mapper(model, what)
    if name not in mapper.column_attrs:
        raise ConfigurationError(
            f"{what} {model.__name__} has no column attribute {name!r}; check the "
            "organization_key / field names given to init_app."
        )
    return getattr(model, name)


class MembershipSchema:
    """The member model, its organization attribute, and what makes a member billable."""

    def __init__(
        self,
        member_model: Any,
        organization_key: str,
        billable_filter: BillableFilter | Any | None = None,
        invitation_model: Any | None = None,
        invitation_fields: InvitationFields | None = None,
        invitation_organization_key: str | None = None,
        seat_type: Any | None = None,
    ) -> None:
        self.member_model = member_model
        self.organization_key = organization_key
        self.organization_column = _attribute(member_model, organization_key, "member_model")
        self.mapper = _mapper(member_model, "member_model")
        _on_default_bind(member_model, "member_model")
        self.table = self.mapper.local_table
        self.keys = KeyRule(
            self.organization_column, f"{member_model.__name__}.{organization_key}"
        )
        # The one rule for every organization id the extension is given (keys.py):
        # ``parse_key`` gives the app's value, ``key`` the canonical string of our tables.
        self.parse_key = self.keys.value
        self.key = self.keys.key
        criteria = billable_filter(member_model) if callable(billable_filter) else billable_filter
        self.billable_criteria: sa.ColumnElement[bool] | None = criteria
        self.watched_attributes = self._attributes_in(criteria) | {organization_key}
        # Several seat types (``Plan.seat_prices``): a SQL expression of the member model naming
        # each member's type; a change of what it reads (a promotion) is a membership change.
        kind = seat_type(member_model) if callable(seat_type) else seat_type
        self.seat_type: Any = sa.inspect(kind).expression if kind is not None and hasattr(
            kind, "__clause_element__") else kind
        self.watched_attributes |= self._attributes_in(self.seat_type)
        self.invitation_model = invitation_model
        self.invitation_fields = invitation_fields or InvitationFields()
        self.invitation_organization_column: Any = None
        if invitation_model is not None:
            org_key = invitation_organization_key or organization_key
            self.invitation_organization_column = _attribute(
                invitation_model, org_key, "invitation_model"
            )
            self.invitation_organization_key = org_key
            _on_default_bind(invitation_model, "invitation_model")
            fields = self.invitation_fields
            for name in (fields.status, fields.expires_at):
                _attribute(invitation_model, name, "invitation_model")

    def _attributes_in(self, criteria: Any) -> set[str]:
        """Attribute keys of the member model that the billable filter reads."""
        if criteria is None:
            return set()
        keys: set[str] = set()
        for element in visitors.iterate(criteria):
            if isinstance(element, sa.Column) and element.table is self.table:
                prop = self.mapper.get_property_by_column(element)
                keys.add(prop.key)
        return keys

    def valid_key(self, key: str) -> bool:
        """True when a stored key is the canonical key of one of the app's organization ids."""
        return self.keys.is_canonical(key)

    def organization_of(self, instance: Any) -> Any:
        return getattr(instance, self.organization_key)

    def is_member(self, instance: Any) -> bool:
        return isinstance(instance, self.member_model)

    def is_invitation(self, instance: Any) -> bool:
        return self.invitation_model is not None and isinstance(instance, self.invitation_model)
