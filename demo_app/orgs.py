"""Organization pages: dashboard, invitations, members, and the checkout success page.

Each action that moves a seat asks the extension first (``seat_billing.check``), before the new
row is added to the session, then commits; the extension syncs the subscription's quantity once
the commit lands and records the change, with its prorated amount, in the seat-change ledger.
"""

from __future__ import annotations

import datetime as dt
import logging

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from flask_seat_billing import Plan, PolicyDenied, ProviderError

from .auth import current_user, login_required
from .billing import PLAN_NAME, STUDIO_PLAN, membership_of, products, seat_billing
from .models import INVITATION_DAYS, Invitation, Membership, Organization, User, db, utcnow

bp = Blueprint("orgs", __name__)
log = logging.getLogger("demo_app.orgs")
LIVE = ("active", "trialing")


def _user() -> User:
    user = current_user()
    if user is None:  # login_required ran first
        abort(401)
    return user


def _organization_for_member(org_id: int) -> tuple[Organization, Membership]:
    org = db.get_or_404(Organization, org_id)
    membership = membership_of(_user().id, org.id)
    if membership is None:
        abort(404)
    return org, membership


def _to_dashboard(org_id: int) -> Response:
    return redirect(url_for("orgs.dashboard", org_id=org_id))


@bp.get("/")
@login_required
def home() -> str:
    user = _user()
    invitations = db.session.execute(
        db.select(Invitation).filter_by(email=user.email, status="pending").order_by(Invitation.id)
    ).scalars().all()
    return render_template(
        "home.html",
        memberships=user.memberships,
        invitations=[i for i in invitations if i.is_live],
    )


@bp.get("/orgs/<int:org_id>")
@login_required
def dashboard(org_id: int) -> str:
    org, me = _organization_for_member(org_id)
    subscription = seat_billing.subscription_for(org.id)
    live = subscription is not None and subscription.status in LIVE
    plan = configured_plan(subscription.plan_name if subscription else PLAN_NAME)
    billable = seat_billing.billable_seats(org.id)
    preview, preview_error = None, None
    if live and me.can_manage:
        # One more seat: an invitation is for the "member" role, a viewer seat on the studio
        # plan (its seats are priced per type), and the plan's only seat price elsewhere.
        more: int | dict[str, int] = billable + 1
        if plan is not None and plan.seat_prices:
            more = {"viewer": seat_billing.billable_seats_by_type(org.id).get("viewer", 0) + 1}
        try:
            preview = seat_billing.preview_seat_change(org.id, more)
        except (LookupError, NotImplementedError, ProviderError) as error:
            preview_error = str(error)
    return render_template(
        "dashboard.html",
        org=org,
        me=me,
        subscription=subscription,
        live=live,
        plan=plan,
        plan_name=PLAN_NAME,
        billable=billable,
        members=org.memberships,
        invitations=[i for i in org.invitations if i.is_live],
        changes=seat_billing.seat_changes(org.id, limit=20),
        by_type=_seats_by_type(org.id, plan),
        studio=configured_plan(STUDIO_PLAN),
        preview=preview,
        preview_error=preview_error,
    )


def _seats_by_type(org_id: int, plan: Plan | None) -> dict[str, int]:
    """Every seat type of the plan with its billable count: a type nobody holds shows 0 (the
    library leaves it out of ``billable_seats_by_type``)."""
    if plan is None or not plan.seat_prices:
        return {}
    counts = seat_billing.billable_seats_by_type(org_id)
    return {kind: counts.get(kind, 0) for kind in plan.seat_prices}


def configured_plan(name: str | None) -> Plan | None:
    """The configured plan of that name (the same list given to ``init_app``)."""
    plans = [plan for product in products(current_app.config) for plan in product.plans]
    return next((plan for plan in plans if plan.name == name), None)


@bp.post("/orgs/<int:org_id>/invitations")
@login_required
def invite(org_id: int) -> Response:
    org, _ = _organization_for_member(org_id)
    user = _user()
    email = request.form.get("email", "").strip().lower()
    role = request.form.get("role", "member")
    if "@" not in email or role not in ("member", "admin"):
        flash("Give an email address and a role (member or admin).", "error")
        return _to_dashboard(org.id)
    already = db.session.execute(
        db.select(Membership).join(User).filter(
            Membership.organization_id == org.id, User.email == email
        )
    ).scalar_one_or_none()
    if already is not None:
        flash(f"{email} is already a member of {org.name}.", "error")
        return _to_dashboard(org.id)
    pending = db.session.execute(
        db.select(Invitation).filter_by(organization_id=org.id, email=email, status="pending")
    ).scalars().first()
    # Not yet in the session: the seat-limit check must not count it as well.
    invitation = pending or Invitation(
        organization_id=org.id, email=email, role=role, invited_by_id=user.id
    )
    try:
        seat_billing.check(
            "before_invitation_create", organization_id=org.id, invitation=invitation, user=user
        )
    except PolicyDenied as denied:
        db.session.rollback()
        flash(denied.message, "error")
        return _to_dashboard(org.id)
    invitation.expires_at = utcnow() + dt.timedelta(days=INVITATION_DAYS)
    invitation.role = role
    db.session.add(invitation)
    db.session.commit()
    flash(f"{'Invitation resent to' if pending else 'Invited'} {email}.", "success")
    return _to_dashboard(org.id)


@bp.post("/orgs/<int:org_id>/invitations/<int:invitation_id>/revoke")
@login_required
def revoke(org_id: int, invitation_id: int) -> Response:
    org, me = _organization_for_member(org_id)
    invitation = db.get_or_404(Invitation, invitation_id)
    if invitation.organization_id != org.id or not me.can_manage:
        abort(403)
    invitation.status = "revoked"
    db.session.commit()
    flash(f"Invitation to {invitation.email} revoked.", "success")
    return _to_dashboard(org.id)


@bp.post("/invitations/<int:invitation_id>/accept")
@login_required
def accept(invitation_id: int) -> Response:
    user = _user()
    invitation = db.get_or_404(Invitation, invitation_id)
    if invitation.email != user.email or not invitation.is_live:
        flash("This invitation is not open to you (accepted, revoked or expired).", "error")
        return redirect(url_for("orgs.home"))
    org_id = invitation.organization_id
    try:
        seat_billing.check(
            "before_invitation_accept", organization_id=org_id, invitation=invitation, user=user
        )
    except PolicyDenied as denied:
        db.session.rollback()
        flash(denied.message, "error")
        return redirect(url_for("orgs.home"))
    db.session.add(Membership(organization_id=org_id, user_id=user.id, role=invitation.role))
    invitation.status = "accepted"
    db.session.commit()
    flash(f"You joined {invitation.organization.name}.", "success")
    return _to_dashboard(org_id)


def _remove(org: Organization, member: Membership) -> bool:
    try:
        seat_billing.check(
            "before_member_remove", organization_id=org.id, member=member, user=_user()
        )
    except PolicyDenied as denied:
        db.session.rollback()
        flash(denied.message, "error")
        return False
    db.session.delete(member)
    db.session.commit()
    return True


@bp.post("/orgs/<int:org_id>/members/<int:member_id>/remove")
@login_required
def remove(org_id: int, member_id: int) -> Response:
    org, _ = _organization_for_member(org_id)
    member = db.get_or_404(Membership, member_id)
    if member.organization_id != org.id:
        abort(404)
    email = member.user.email
    if _remove(org, member):
        flash(f"Removed {email} from {org.name}.", "success")
    return _to_dashboard(org.id)


@bp.post("/orgs/<int:org_id>/members/<int:member_id>/role")
@login_required
def change_role(org_id: int, member_id: int) -> Response:
    """Make a member an admin (an editor seat on the studio plan) or an admin a member again:
    one change, so one subscription update moves both seat types."""
    org, me = _organization_for_member(org_id)
    member = db.get_or_404(Membership, member_id)
    if member.organization_id != org.id:
        abort(404)
    role = request.form.get("role", "")
    if not me.can_manage or member.role == "owner" or role not in ("member", "admin"):
        flash("Only owners and admins change roles, to member or admin.", "error")
        return _to_dashboard(org.id)
    member.role = role
    db.session.commit()
    flash(f"{member.user.email} is now {role}.", "success")
    return _to_dashboard(org.id)


@bp.post("/orgs/<int:org_id>/leave")
@login_required
def leave(org_id: int) -> Response:
    org, me = _organization_for_member(org_id)
    if not _remove(org, me):
        return _to_dashboard(org.id)
    flash(f"You left {org.name}.", "success")
    return redirect(url_for("orgs.home"))


@bp.get("/orgs/<int:org_id>/billing/done")
@login_required
def checkout_done(org_id: int) -> str | Response:
    """Stripe's success URL: record the subscription now rather than wait for its webhook."""
    org, _ = _organization_for_member(org_id)
    session_id = request.args.get("session_id", "")
    subscription = None
    if session_id:
        try:
            subscription = seat_billing.complete_checkout(session_id)
        except ProviderError as error:
            log.warning("checkout %s could not be read: %s", session_id, error)
    if subscription is not None and subscription.organization_key != str(org.id):
        abort(404)
    if subscription is None:
        subscription = seat_billing.subscription_for(org.id)
    return render_template("checkout_done.html", org=org, subscription=subscription)
