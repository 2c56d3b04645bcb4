"""A small app like a user's: organizations, members with soft delete, invitations.

Built fresh for every test (its own ``SQLAlchemy`` instance and mapped classes) so that tests
share nothing, exactly as the Flask-SQLAlchemy test suite does it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_seat_billing import Plan, Product, SeatBilling

BASE_PRICE = "price_base_m"
SEAT_PRICE = "price_seat_m"
SEAT_ONLY_PRICE = "price_seat_only"
YEARLY_BASE = "price_base_y"
YEARLY_SEAT = "price_seat_y"


def products() -> list[Product]:
    return [
        Product(
            id="pro",
            name="Pro",
            currency="USD",
            plans=[
                Plan(name="pro-monthly", plan_id=BASE_PRICE, seat_price_id=SEAT_PRICE,
                     interval="month", cost=19.99, limits={"seats": 10}),
                Plan(name="pro-yearly", plan_id=YEARLY_BASE, seat_price_id=YEARLY_SEAT,
                     interval="year", cost=199.99, limits={"seats": 10}),
                Plan(name="team-monthly", plan_id=SEAT_ONLY_PRICE, seat_price_id=SEAT_ONLY_PRICE,
                     interval="month", cost=10),
            ],
        )
    ]


#: The plans of :func:`products`, for reading a subscription's seats with ``stand_in.seats``.
PRO_MONTHLY, PRO_YEARLY, TEAM_MONTHLY = products()[0].plans


@dataclass
class AppUnderTest:
    app: Flask
    db: SQLAlchemy
    billing: SeatBilling
    Organization: Any
    Membership: Any
    Invitation: Any

    def add_members(self, org_id: Any, count: int, *, commit: bool = True) -> list[Any]:
        members = [
            self.Membership(organization_id=org_id, email=f"user{i}-{org_id}@example.com")
            for i in range(count)
        ]
        self.db.session.add_all(members)
        if commit:
            self.db.session.commit()
        return members

    def add_organization(self, name: str = "Acme") -> Any:
        org = self.Organization(name=name)
        self.db.session.add(org)
        self.db.session.commit()
        return org


def build_app(
    database_url: str,
    *,
    config: dict[str, Any] | None = None,
    key_type: str = "int",
    init: bool = True,
    create: bool = True,
    **init_options: Any,
) -> AppUnderTest:
    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)
    key_column: Any = {"int": sa.Integer, "str": sa.String(36), "uuid": sa.Uuid}[key_type]

    class Organization(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "organizations"
        id: Mapped[Any] = mapped_column(key_column, primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(100))

    class Membership(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "memberships"
        id: Mapped[int] = mapped_column(primary_key=True)
        organization_id: Mapped[Any] = mapped_column(
            key_column, sa.ForeignKey("organizations.id"), index=True
        )
        email: Mapped[str] = mapped_column(sa.String(200))
        role: Mapped[str] = mapped_column(sa.String(20), default="member")
        deleted_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    class Invitation(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "invitations"
        id: Mapped[int] = mapped_column(primary_key=True)
        organization_id: Mapped[Any] = mapped_column(key_column, sa.ForeignKey("organizations.id"))
        email: Mapped[str] = mapped_column(sa.String(200))
        status: Mapped[str] = mapped_column(sa.String(20), default="pending")
        expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SECRET_KEY="test",
        SQLALCHEMY_DATABASE_URI=database_url,
        SEAT_BILLING_SYNC_MODE="inline",
        SEAT_BILLING_STRIPE_MAX_NETWORK_RETRIES=0,
        SEAT_BILLING_PROVIDER_TIMEOUT_SECONDS=5,
        SEAT_BILLING_RETRY_BASE_SECONDS=0.2,
        SEAT_BILLING_POLL_SECONDS=0.2,
        # The address the tests serve the app on: redirect URLs there are the app's own.
        SEAT_BILLING_ALLOWED_REDIRECT_HOSTS=["127.0.0.1", "localhost"],
    )
    app.config.update(config or {})
    db.init_app(app)
    billing = SeatBilling()
    options: dict[str, Any] = {
        "db": db,
        "member_model": Membership,
        "organization_key": "organization_id",
        "products": products(),
        "billable_filter": lambda M: M.deleted_at.is_(None),
        "invitation_model": Invitation,
    }
    options.update(init_options)
    if init:
        billing.init_app(app, **options)
    if create:
        with app.app_context():
            db.drop_all()
            db.create_all()
    return AppUnderTest(app, db, billing, Organization, Membership, Invitation)



def attach_app(database_url: str, stripe_url: str, **config: Any) -> AppUnderTest:
    """The same app in another process, on tables that already exist (no drop, no create)."""
    merged = {"SEAT_BILLING_STRIPE_API_BASE": stripe_url, **config}
    return build_app(database_url, config=merged, create=False)


def teardown_app(t: AppUnderTest) -> None:
    """Undo ``build_app``: stop the worker, drop the tables, close the connections."""
    with t.app.app_context():
        if "seat_billing" in t.app.extensions:
            t.billing.stop_worker()
        t.db.session.remove()
        t.db.drop_all()
        t.db.engine.dispose()
