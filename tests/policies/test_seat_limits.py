"""The built-in seat cap: members + pending invitations within the plan's ``limits.seats``."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from flask_seat_billing import SeatBilling, SeatLimitReached
from flask_seat_billing.policies import ACCEPT_POLICY, INVITE_POLICY
from tests.apps import AppUnderTest
from tests.conftest import AppFactory, subscribe

INVITE = "before_invitation_create"
ACCEPT = "before_invitation_accept"


@pytest.fixture
def billing(t: AppUnderTest) -> SeatBilling:
    return t.billing


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def invite(t: AppUnderTest, org_id: int, count: int = 1, *, expired: bool = False) -> list[Any]:
    """Stored pending invitations; ``expired`` ones ran out an hour ago."""
    expires = _now() + dt.timedelta(hours=-1 if expired else 24)
    rows = [t.Invitation(organization_id=org_id, email=f"i{n}-{expired}@x.io", expires_at=expires)
            for n in range(count)]
    t.db.session.add_all(rows)
    t.db.session.commit()
    return rows


def org_with(
    t: AppUnderTest, stripe: Any, *, members: int, pending: int = 0,
    plan: str | None = "pro-monthly", status: str = "active",
) -> int:
    """An organization with members, pending invitations and (unless plan is None) a plan."""
    org = t.add_organization()
    t.add_members(org.id, members)
    if pending:
        invite(t, org.id, pending)
    if plan is not None:
        subscribe(t, stripe, org.id, plan=plan, status=status)
    return int(org.id)


def refusal(billing: SeatBilling, hook: str, **context: Any) -> SeatLimitReached:
    with pytest.raises(SeatLimitReached) as error:
        billing.check(hook, **context)
    return error.value


def test_the_builtins_are_registered_under_their_names(billing: SeatBilling) -> None:
    assert [(p.name, p.hook) for p in billing.policies()] == [
        (INVITE_POLICY, INVITE), (ACCEPT_POLICY, ACCEPT)]


@pytest.mark.parametrize(("members", "pending"), [(0, 0), (5, 4), (9, 0), (1, 8)])
def test_inviting_below_the_cap_is_allowed(
    t: AppUnderTest, stripe: Any, billing: SeatBilling, members: int, pending: int
) -> None:
    org_id = org_with(t, stripe, members=members, pending=pending)
    billing.check(INVITE, organization_id=org_id)


@pytest.mark.parametrize(("members", "pending"), [(10, 0), (9, 1), (4, 6), (12, 0), (8, 5)])
def test_inviting_at_or_above_the_cap_is_refused(
    t: AppUnderTest, stripe: Any, billing: SeatBilling, members: int, pending: int
) -> None:
    org_id = org_with(t, stripe, members=members, pending=pending)
    error = refusal(billing, INVITE, organization_id=org_id)
    assert error.code == "SEAT_LIMIT_REACHED"
    assert error.details == {"purchased": 10, "members": members, "pending_invitations": pending}
    assert "10 seats" in error.message


def test_the_cap_counts_billable_members_and_live_invitations_only(
    t: AppUnderTest, stripe: Any, billing: SeatBilling
) -> None:
    org_id = org_with(t, stripe, members=10, pending=0)
    invite(t, org_id, 3, expired=True)
    refusal(billing, INVITE, organization_id=org_id)

    member = t.db.session.scalars(sa.select(t.Membership).filter_by(organization_id=org_id)).first()
    member.deleted_at = _now()  # soft-deleted: no longer billable, no longer a seat
    t.db.session.commit()
    billing.check(INVITE, organization_id=org_id)


def test_a_trialing_subscription_is_capped_too(
    t: AppUnderTest, stripe: Any, billing: SeatBilling
) -> None:
    org_id = org_with(t, stripe, members=10, status="trialing")
    refusal(billing, INVITE, organization_id=org_id)


@pytest.mark.parametrize(
    ("plan", "status"),
    [(None, "active"), ("team-monthly", "active"), ("pro-monthly", "canceled")],
    ids=["no-subscription", "plan-without-limit", "canceled"],
)
def test_no_cap_without_an_active_capped_plan(
    t: AppUnderTest, stripe: Any, billing: SeatBilling, plan: str | None, status: str
) -> None:
    org_id = org_with(t, stripe, members=12, pending=3, plan=plan, status=status)
    billing.check(INVITE, organization_id=org_id)
    billing.check(ACCEPT, organization_id=org_id)


def test_resending_a_pending_invitation_is_free(
    t: AppUnderTest, stripe: Any, billing: SeatBilling
) -> None:
    org_id = org_with(t, stripe, members=9)
    [live] = invite(t, org_id)
    refusal(billing, INVITE, organization_id=org_id)  # a new invitation: no seat left
    billing.check(INVITE, organization_id=org_id, invitation=live)  # its resend holds its seat


def test_resending_an_expired_invitation_counts_again(
    t: AppUnderTest, stripe: Any, billing: SeatBilling
) -> None:
    org_id = org_with(t, stripe, members=9, pending=1)
    [stale] = invite(t, org_id, expired=True)
    error = refusal(billing, INVITE, organization_id=org_id, invitation=stale)
    assert error.details == {"purchased": 10, "members": 9, "pending_invitations": 1}

    stale.expires_at = _now() + dt.timedelta(days=7)  # extended first, not yet flushed
    refusal(billing, INVITE, organization_id=org_id, invitation=stale)
    t.db.session.rollback()

    t.db.session.delete(t.db.session.scalars(sa.select(t.Membership).limit(1)).one())
    t.db.session.commit()
    billing.check(INVITE, organization_id=org_id, invitation=stale)  # 8 + 1 + 1 <= 10


def test_another_organizations_invitation_is_not_a_free_resend(
    t: AppUnderTest, stripe: Any, billing: SeatBilling
) -> None:
    full = org_with(t, stripe, members=10)
    other = org_with(t, stripe, members=1)
    [theirs] = invite(t, other)
    refusal(billing, INVITE, organization_id=full, invitation=theirs)


def test_an_unsaved_invitation_is_not_a_resend(
    t: AppUnderTest, stripe: Any, billing: SeatBilling
) -> None:
    org_id = org_with(t, stripe, members=10)
    new = t.Invitation(organization_id=org_id, email="new@x.io", status="pending")
    refusal(billing, INVITE, organization_id=org_id, invitation=new)


def test_accepting_needs_a_seat_among_members(
    t: AppUnderTest, stripe: Any, billing: SeatBilling
) -> None:
    org_id = org_with(t, stripe, members=9, pending=5)
    billing.check(ACCEPT, organization_id=org_id)  # 9 + 1 <= 10: pending do not block accepts

    t.add_members(org_id, 1)
    error = refusal(billing, ACCEPT, organization_id=org_id)
    assert error.details == {"purchased": 10, "members": 10, "pending_invitations": 5}


def test_the_seat_limit_needs_an_organization(billing: SeatBilling) -> None:
    with pytest.raises(ValueError, match="before_invitation_create needs organization_id"):
        billing.check(INVITE)


def test_twenty_concurrent_invitations_at_one_seat_left_create_one(
    make_app: AppFactory, stripe: Any, postgres_url: str
) -> None:
    t = make_app({"SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 25, "max_overflow": 5}},
                 database_url=postgres_url)
    with t.app.app_context():
        org_id = org_with(t, stripe, members=8, pending=1)  # one seat left
        billing = t.billing
    start = threading.Barrier(20)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def invite_flow(n: int) -> None:
        try:
            with t.app.app_context():
                start.wait(30)
                try:
                    billing.check(INVITE, organization_id=org_id, email=f"race{n}@x.io")
                    t.db.session.add(t.Invitation(organization_id=org_id, email=f"race{n}@x.io"))
                    t.db.session.commit()
                    outcomes.append("created")
                except SeatLimitReached:
                    t.db.session.rollback()
                    outcomes.append("refused")
                finally:
                    t.db.session.remove()
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=invite_flow, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert sorted(outcomes) == ["created"] + ["refused"] * 19
    with t.app.app_context():
        raced = t.db.session.scalars(
            sa.select(t.Invitation).where(t.Invitation.email.like("race%"))
        ).all()
        assert len(raced) == 1
