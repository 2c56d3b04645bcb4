"""The demo's own tables: users, organizations, memberships with roles, invitations.

The extension only needs to know which model is a member (``Membership``), which attribute names
the organization (``organization_id``) and which model is an invitation (``Invitation``, with
``status`` and ``expires_at``); everything else here is the app's business.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints, so that migrations say the same thing on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("owner", "admin", "member")
MANAGER_ROLES = ("owner", "admin")
INVITATION_DAYS = 7


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


def utcnow() -> dt.datetime:
    """Naive UTC, as the extension stores it."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class User(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(200), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))

    memberships: Mapped[list[Membership]] = relationship(back_populates="user")


class Organization(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="organization", order_by="Membership.id"
    )
    invitations: Mapped[list[Invitation]] = relationship(
        back_populates="organization", order_by="Invitation.id"
    )


class Membership(db.Model):  # type: ignore[name-defined,misc]
    """One user in one organization: one row is one billable seat."""

    __tablename__ = "memberships"
    __table_args__ = (sa.UniqueConstraint("organization_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(sa.String(20), default="member")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    organization: Mapped[Organization] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship(back_populates="memberships")

    @property
    def can_manage(self) -> bool:
        """Owners and admins invite, remove members and handle billing."""
        return self.role in MANAGER_ROLES


class Invitation(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id"), index=True)
    email: Mapped[str] = mapped_column(sa.String(200), index=True)
    role: Mapped[str] = mapped_column(sa.String(20), default="member")
    status: Mapped[str] = mapped_column(sa.String(20), default="pending")
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    invited_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    organization: Mapped[Organization] = relationship(back_populates="invitations")
    invited_by: Mapped[User | None] = relationship()

    @property
    def is_live(self) -> bool:
        """Pending and not expired: it holds a seat under the plan's limit."""
        return self.status == "pending" and (
            self.expires_at is None or self.expires_at > utcnow()
        )
