"""Seat billing for the demo: the plan, who may bill, and the app's own policies.

Everything here is what the README tells an app to write: one ``SeatBilling()`` object, the
products, an ``authorize`` callback for the checkout and portal routes, and policies on the
lifecycle hooks that the views call with ``seat_billing.check(...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from flask import Request

from flask_seat_billing import Plan, Product, SeatBilling
from flask_seat_billing.policies import Allow, Deny, PolicyContext, allow, deny

from .auth import current_user
from .models import MANAGER_ROLES, Membership, db

PLAN_NAME = "team-monthly"
STUDIO_PLAN = "studio-monthly"
OFFLINE_BASE_PRICE = "price_demo_team_base"
OFFLINE_SEAT_PRICE = "price_demo_team_seat"
OFFLINE_STUDIO_PRICE = "price_demo_studio_base"
OFFLINE_EDITOR_PRICE = "price_demo_studio_editor"
OFFLINE_VIEWER_PRICE = "price_demo_studio_viewer"
BASE_AMOUNT = 1900  # minor units, per month
SEAT_AMOUNT = 1000
STUDIO_AMOUNT = 4900
EDITOR_AMOUNT = 1500
VIEWER_AMOUNT = 500

seat_billing = SeatBilling()


def seat_type(M: Any) -> Any:
    """Owners and admins take editor seats, members viewer seats (``init_app(seat_type=)``)."""
    return sa.case((M.role.in_(MANAGER_ROLES), "editor"), else_="viewer")


def products(config: Mapping[str, Any]) -> list[Product]:
    """Team: a monthly base fee plus a per-seat price, capped at a few seats. Studio (when its
    prices are configured): a base fee plus editor seats and cheaper viewer seats."""
    studio = []
    if config.get("DEMO_STUDIO_PRICE_ID") and config.get("DEMO_EDITOR_PRICE_ID") and config.get(
            "DEMO_VIEWER_PRICE_ID"):
        studio = [Product(
            id="studio",
            name="Studio",
            currency="USD",
            description="Editors and viewers priced apart",
            plans=[Plan(
                name=STUDIO_PLAN,
                display_name="Studio (monthly)",
                plan_id=config["DEMO_STUDIO_PRICE_ID"],
                seat_prices={"editor": config["DEMO_EDITOR_PRICE_ID"],
                             "viewer": config["DEMO_VIEWER_PRICE_ID"]},
                interval="month",
                cost=STUDIO_AMOUNT / 100,
            )],
        )]
    return [
        Product(
            id="team",
            name="Team",
            currency="USD",
            description="For small teams",
            plans=[
                Plan(
                    name=PLAN_NAME,
                    display_name="Team (monthly)",
                    plan_id=config["DEMO_PRICE_ID"],
                    seat_price_id=config["DEMO_SEAT_PRICE_ID"],
                    interval="month",
                    cost=BASE_AMOUNT / 100,
                    limits={"seats": int(config["DEMO_SEAT_LIMIT"])},
                )
            ],
        ),
        *studio,
    ]


def membership_of(user_id: Any, organization_id: Any) -> Membership | None:
    if user_id is None:
        return None
    return db.session.execute(
        db.select(Membership).filter_by(organization_id=organization_id, user_id=user_id)
    ).scalar_one_or_none()


def _is_manager(user: Any, organization_id: Any) -> bool:
    membership = membership_of(getattr(user, "id", None), organization_id)
    return membership is not None and membership.can_manage


@seat_billing.authorize
def may_bill(request: Request, organization_id: Any, action: str) -> bool:
    """Checkout and the billing portal are for the organization's owners and admins."""
    return _is_manager(current_user(), organization_id)


@seat_billing.policy("before_invitation_create", name="managers-invite")
def managers_invite(ctx: PolicyContext) -> Allow | Deny:
    """Only owners and admins send invitations."""
    if _is_manager(ctx.user, ctx.organization_id):
        return allow()
    return deny("FORBIDDEN", "Only owners and admins can invite members.")


@seat_billing.policy("before_member_remove", name="who-may-remove")
def who_may_remove(ctx: PolicyContext) -> Allow | Deny:
    """Anyone may leave; owners and admins remove others; only owners remove owners; one stays."""
    member: Membership = ctx.member
    actor = membership_of(getattr(ctx.user, "id", None), ctx.organization_id)
    leaving = actor is not None and actor.id == member.id
    if not leaving and (actor is None or not actor.can_manage):
        return deny("FORBIDDEN", "Only owners and admins can remove members.")
    if member.role == "owner":
        if not leaving and actor is not None and actor.role != "owner":
            return deny("FORBIDDEN", "Only an owner can remove another owner.")
        owners = db.session.execute(
            db.select(db.func.count())
            .select_from(Membership)
            .filter_by(organization_id=ctx.organization_id, role="owner")
        ).scalar_one()
        if owners <= 1:
            return deny(
                "LAST_OWNER",
                "An organization needs an owner: make someone else owner before the last one "
                "leaves.",
            )
    return allow()


__all__ = ["PLAN_NAME", "may_bill", "products", "seat_billing"]
