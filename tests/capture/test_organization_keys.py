"""One organization, one key: every spelling the database stores as the same organization is
billed, capped and looked up as that organization; an id no key can name is refused before
anything is written (flask_seat_billing/keys.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.orm import configure_mappers, relationship

from flask_seat_billing import InvalidOrganizationKey, SeatLimitReached
from tests.apps import PRO_MONTHLY, AppUnderTest
from tests.conftest import AppFactory, subscribe
from tests.helpers import outbox_rows
from tests.web_helpers import Served, allow_own_organization, serve, table_rows

MANUAL = {"SEAT_BILLING_SYNC_MODE": "manual"}


def _organization(t: AppUnderTest, org_id: Any) -> Any:
    t.db.session.add(t.Organization(id=org_id, name=f"org {org_id}"))
    t.db.session.commit()
    return org_id


def _outbox_keys(t: AppUnderTest) -> list[str]:
    return sorted(r["organization_key"] for r in outbox_rows(t))


def _members(t: AppUnderTest) -> list[tuple[Any, str]]:
    with t.db.engine.connect() as conn:
        table = t.Membership.__table__
        rows = conn.execute(sa.select(table.c.organization_id, table.c.email))
        return sorted((r[0], r[1]) for r in rows)


def _subscribed(t: AppUnderTest, stripe: Any, org_id: Any, members: int) -> str:
    """An organization with ``members`` members and a subscription billing them, outbox empty."""
    _organization(t, org_id)
    t.add_members(org_id, members)
    sub = subscribe(t, stripe, org_id)
    t.billing.sync_pending()
    assert _outbox_keys(t) == []
    return sub


# -- every spelling is the same organization -------------------------------------------------
# (billing one organization under any spelling, on every provider:
#  tests/behaviour/test_organization_keys.py)


def _uuid_spellings(org: uuid.UUID) -> list[str]:
    return [str(org).upper(), f"{{{org}}}", org.urn, org.hex]


@pytest.mark.parametrize("spelling", ["01", " 1", "+1"])
def test_seat_cap_holds_for_every_integer_spelling(
    make_app: AppFactory, stripe: Any, spelling: str
) -> None:
    t = make_app(MANUAL)
    with t.app.app_context():
        _subscribed(t, stripe, 1, 10)  # pro-monthly allows 10 seats

        with pytest.raises(SeatLimitReached):
            t.billing.check("before_invitation_create", organization_id=spelling,
                            email="new@x.io")


def test_seat_cap_holds_for_every_uuid_spelling(make_app: AppFactory, stripe: Any) -> None:
    t = make_app(MANUAL, key_type="uuid")
    org = uuid.uuid4()
    with t.app.app_context():
        _subscribed(t, stripe, org, 10)

        for spelling in _uuid_spellings(org):
            with pytest.raises(SeatLimitReached):
                t.billing.check("before_invitation_create", organization_id=spelling,
                                email="new@x.io")


# -- ids no key can name are refused at flush, nothing written -------------------------------

# (key type, organization id that cannot be one, what the error says)
BAD_IDS = [
    ("int", 2**31, "32-bit"),
    ("int", -(2**31) - 1, "32-bit"),
    ("int", 2**70, "32-bit"),
    ("int", "1.5", "not an integer"),
    ("str", "acme\x00evil", "NUL"),
    ("str", "a" * 37, "longer than 36"),
]


@pytest.fixture
def keyed(make_app: AppFactory, request: pytest.FixtureRequest) -> Iterator[AppUnderTest]:
    key_type = request.param
    t = make_app(MANUAL, key_type=key_type)
    with t.app.app_context():
        yield t


def _good_id(t: AppUnderTest) -> Any:
    return 1 if isinstance(t.Membership.__table__.c.organization_id.type, sa.Integer) else "acme"


def _one_committed_member(t: AppUnderTest) -> tuple[Any, list[tuple[Any, str]], list[str]]:
    """A member of a good organization, committed; returns (its id, members, outbox keys)."""
    good = _organization(t, _good_id(t))
    t.add_members(good, 1)
    return good, _members(t), _outbox_keys(t)


@pytest.mark.parametrize(("keyed", "bad", "says"), BAD_IDS, indirect=["keyed"])
def test_unit_of_work_refuses_a_new_member(keyed: AppUnderTest, bad: Any, says: str) -> None:
    t = keyed
    _, members, outbox = _one_committed_member(t)

    t.db.session.add(t.Membership(organization_id=bad, email="bad@x.io"))
    with pytest.raises(InvalidOrganizationKey, match=says) as refused:
        t.db.session.commit()
    t.db.session.rollback()

    assert repr(bad)[:20] in str(refused.value)
    assert (_members(t), _outbox_keys(t)) == (members, outbox)


@pytest.mark.parametrize(("keyed", "bad", "says"), BAD_IDS, indirect=["keyed"])
def test_unit_of_work_refuses_a_move(keyed: AppUnderTest, bad: Any, says: str) -> None:
    t = keyed
    good, members, outbox = _one_committed_member(t)
    member = t.db.session.scalars(sa.select(t.Membership)).one()

    member.organization_id = bad
    with pytest.raises(InvalidOrganizationKey, match=says):
        t.db.session.commit()
    t.db.session.rollback()

    assert (_members(t), _outbox_keys(t)) == (members, outbox)


@pytest.mark.parametrize("keyed", ["int"], indirect=True)
def test_relationship_append_to_an_out_of_range_organization(keyed: AppUnderTest) -> None:
    t = keyed
    good, members, outbox = _one_committed_member(t)
    t.Organization.members = relationship(t.Membership, backref="organization")
    configure_mappers()

    org = t.Organization(id=2**31, name="too far")
    org.members.append(t.Membership(email="far@x.io"))
    t.db.session.add(org)
    # SQLite stores the organization, so the member is ours to refuse; PostgreSQL refuses the
    # organization row itself before the member is reached.
    refusal = InvalidOrganizationKey if t.db.engine.dialect.name == "sqlite" else sa.exc.DBAPIError
    with pytest.raises(refusal):
        t.db.session.commit()
    t.db.session.rollback()

    assert (_members(t), _outbox_keys(t)) == (members, outbox)
    assert t.db.session.scalars(sa.select(t.Organization.id)).all() == [good]


def _bulk_statements(t: AppUnderTest, bad: Any, member_id: int) -> list[Any]:
    m = t.Membership
    return [
        lambda: t.db.session.execute(sa.insert(m), [{"organization_id": bad, "email": "b@x.io"}]),
        lambda: t.db.session.execute(sa.insert(m).values(organization_id=bad, email="b@x.io")),
        lambda: t.db.session.execute(
            sa.update(m).where(m.id == member_id).values(organization_id=bad)),
        lambda: t.db.session.execute(sa.update(m), [{"id": member_id, "organization_id": bad}]),
    ]


@pytest.mark.parametrize("statement", range(4), ids=["insert", "insert-values", "update-where",
                                                     "update-by-pk"])
@pytest.mark.parametrize(("keyed", "bad", "says"), BAD_IDS, indirect=["keyed"])
def test_bulk_statements_are_refused_before_they_run(
    keyed: AppUnderTest, bad: Any, says: str, statement: int
) -> None:
    t = keyed
    _, members, outbox = _one_committed_member(t)
    member_id = t.db.session.scalars(sa.select(t.Membership.id)).one()

    with pytest.raises(InvalidOrganizationKey, match=says):
        _bulk_statements(t, bad, member_id)[statement]()
    t.db.session.commit()  # what else the transaction held may still commit: nothing of this

    assert (_members(t), _outbox_keys(t)) == (members, outbox)


@pytest.mark.parametrize("keyed", ["int"], indirect=True)
def test_bulk_update_computing_an_out_of_range_id_is_undone(keyed: AppUnderTest) -> None:
    t = keyed
    _, members, outbox = _one_committed_member(t)
    m = t.Membership

    # Known only once the statement ran: SQLite stores it, so it is undone before the refusal;
    # PostgreSQL refuses it itself.
    refusal = InvalidOrganizationKey if t.db.engine.dialect.name == "sqlite" else sa.exc.DBAPIError
    with pytest.raises(refusal):
        t.db.session.execute(sa.update(m).values(organization_id=m.organization_id + 2**31))
    t.db.session.rollback()
    t.db.session.commit()

    assert (_members(t), _outbox_keys(t)) == (members, outbox)


@pytest.mark.parametrize("keyed", ["int"], indirect=True)
@pytest.mark.parametrize("mode", ["create_savepoint", "conditional_savepoint", "rollback_only"])
def test_computed_out_of_range_id_is_undone_in_a_session_joined_to_an_outer_transaction(
    keyed: AppUnderTest, mode: str
) -> None:
    """``Session(bind=connection)`` inside ``connection.begin()``, as test fixtures do: the
    refusal rolls back the session's savepoint (or the outer transaction), so a caller who then
    commits the outer transaction commits neither the statement nor half of its outbox rows."""
    t = keyed
    _, members, outbox = _one_committed_member(t)
    m = t.Membership
    refusal = InvalidOrganizationKey if t.db.engine.dialect.name == "sqlite" else sa.exc.DBAPIError
    with t.db.engine.connect() as conn:
        outer = conn.begin()
        session = orm.Session(bind=conn, join_transaction_mode=mode)  # type: ignore[arg-type]
        with pytest.raises(refusal):
            session.execute(sa.update(m).values(organization_id=m.organization_id + 2**31))
        if refusal is InvalidOrganizationKey:
            session.commit()  # a caller that carries on: nothing of the statement is left
        session.close()
        if outer.is_active:
            outer.commit()  # and then commits its own transaction

    assert (_members(t), _outbox_keys(t)) == (members, outbox)


# -- routes: 400, nothing written, no provider call ------------------------------------------


@pytest.fixture
def served(make_app: AppFactory) -> Iterator[Served]:
    t = make_app()
    allow_own_organization(t)
    for s in serve(t):
        with t.app.app_context():
            yield s


@pytest.mark.parametrize("org_id", [2**31, -(2**31) - 1, 2**70, "99999999999999999999999"])
@pytest.mark.parametrize("route", ["checkout", "portal"])
def test_routes_answer_400_for_an_id_beyond_the_column(
    served: Served, stripe: Any, org_id: Any, route: str
) -> None:
    calls = len(stripe.requests)
    answer = served.post(
        f"{served.prefix}/{route}",
        json_body={"plan": "pro-monthly", "organization_id": org_id},
        headers={"X-User-Org": str(org_id), "Accept": "application/json"},
    )

    assert answer.status == 400, answer.text
    assert len(stripe.requests) == calls
    for table in ("subscriptions", "outbox", "seat_changes"):
        assert table_rows(served.t, table) == []


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_org_filter_takes_any_spelling(make_app: AppFactory, stripe: Any) -> None:
    from flask_seat_billing.cli import seats

    t = make_app(MANUAL)
    t.app.cli.add_command(seats, "seats")
    with t.app.app_context():
        sub = _subscribed(t, stripe, 1, 2)
        stripe.set_seats(sub, 5, PRO_MONTHLY)  # drifted in the dashboard
        runner = t.app.test_cli_runner()

        status = runner.invoke(args=["seats", "status", "--org", "01", "--json"])
        assert status.exit_code == 0, status.output
        assert '"organization": "1"' in status.output
        resync = runner.invoke(args=["seats", "resync", "--org", "+1"])
        assert resync.exit_code == 0, resync.output
        assert stripe.seats(sub, PRO_MONTHLY) == 2

        too_far = runner.invoke(args=["seats", "status", "--org", "2147483648"])
        assert too_far.exit_code == 2
        assert "2147483648" in too_far.output
