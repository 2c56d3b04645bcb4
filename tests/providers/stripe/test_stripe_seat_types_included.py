"""Included and minimum seats per seat type (``Plan.included_seats`` / ``minimum_seats``).

A plan with seat types may include some seats of a type in its base price ("the first editor is
included") and bill a type at least a number of seats ("at least one editor seat"). The sync
writes each type's members less its included seats, never below its minimum, in one request;
``billable_seats_by_type`` and ``billable_seats`` (the total) say the same; Checkout's line
items too. Seat types are Stripe's only (Polar refuses ``seat_prices``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from flask_seat_billing import Plan, Product
from flask_seat_billing.errors import ConfigurationError
from tests.apps import AppUnderTest, products
from tests.conftest import AppFactory
from tests.helpers import ledger_rows

TEAM_BASE = "price_crew_m"
EDITOR = "price_crew_editor_m"
VIEWER = "price_crew_viewer_m"
TEAM = Plan(name="crew-monthly", plan_id=TEAM_BASE, interval="month", cost=29,
            seat_prices={"editor": EDITOR, "viewer": VIEWER},
            included_seats={"editor": 1}, minimum_seats={"viewer": 1})


@pytest.fixture
def team(make_app: AppFactory, stripe: Any) -> AppUnderTest:
    product = stripe.create_product(name="Team")["id"]
    for price, amount in ((TEAM_BASE, 2900), (EDITOR, 1500), (VIEWER, 500)):
        stripe.create_price(id=price, product=product, unit_amount=amount, interval="month")
    return make_app(products=[*products(), Product(id="team", name="Team", plans=[TEAM])],
                    seat_type=lambda M: M.role)


def _members(t: AppUnderTest, org_id: Any, role: str, count: int) -> list[Any]:
    members = [t.Membership(organization_id=org_id, email=f"{role}{i}@example.com", role=role)
               for i in range(count)]
    t.db.session.add_all(members)
    t.db.session.commit()
    return members


def _subscribe(t: AppUnderTest, stripe: Any, org_id: Any, editors: int, viewers: int) -> str:
    items = [{"price": TEAM_BASE, "quantity": 1}, {"price": EDITOR, "quantity": editors},
             {"price": VIEWER, "quantity": viewers}]
    sub = stripe.create_subscription(
        items=items, metadata={"organization_id": str(org_id), "plan": TEAM.name})
    t.billing.link_subscription(org_id, sub["id"])
    return str(sub["id"])


def _quantities(stripe: Any, sub: str) -> dict[str, int]:
    names = {EDITOR: "editor", VIEWER: "viewer"}
    return {names[i["price"]["id"]]: int(i["quantity"])
            for i in stripe.subscription(sub)["items"]["data"] if i["price"]["id"] in names}


def _subscription_writes(stripe: Any) -> list[Any]:
    return [r for r in stripe.writes()
            if r.path.startswith(("/v1/subscriptions/", "/v1/subscription_items/"))]


def test_the_sync_bills_each_type_less_its_included_never_below_its_minimum(
    team: AppUnderTest, stripe: Any
) -> None:
    t = team
    with t.app.app_context():
        org = t.add_organization()
        editors = _members(t, org.id, "editor", 3)
        [viewer] = _members(t, org.id, "viewer", 1)
        sub = _subscribe(t, stripe, org.id, editors=2, viewers=1)

        assert t.billing.billable_seats_by_type(org.id) == {"editor": 2, "viewer": 1}
        assert t.billing.billable_seats(org.id) == 3

        # The only viewer is promoted: editors 4 - 1 included, viewers 0 but at least 1.
        viewer.role = "editor"
        t.db.session.commit()
        assert _quantities(stripe, sub) == {"editor": 3, "viewer": 1}
        [write] = _subscription_writes(stripe)  # one write, only the type that moved
        assert [(r["seat_type"], r["from_seats"], r["to_seats"]) for r in ledger_rows(t)] == [
            ("editor", 2, 3)]

        # Down to the included editor alone: the editor item goes to 0.
        for member in [*editors, viewer][1:]:
            t.db.session.delete(member)
        t.db.session.commit()
        assert _quantities(stripe, sub) == {"editor": 0, "viewer": 1}
        assert t.billing.billable_seats_by_type(org.id) == {"editor": 0, "viewer": 1}
        assert t.billing.billable_seats(org.id) == 1
        assert t.billing.sync_organization(org.id).action == "unchanged"
    assert write.path == f"/v1/subscriptions/{sub}"


def test_status_shows_the_counts_per_type_as_billed(team: AppUnderTest, stripe: Any) -> None:
    t = team
    with t.app.app_context():
        org = t.add_organization()
        _members(t, org.id, "editor", 2)
        _subscribe(t, stripe, org.id, editors=1, viewers=1)
        org_id = org.id

    result = t.app.test_cli_runner().invoke(args=["seats", "status", "--json"])

    assert result.exit_code == 0, result.output
    assert '"editor": 1' in result.output and '"viewer": 1' in result.output, result.output
    with t.app.app_context():
        assert t.billing.billable_seats(org_id) == 2


def test_checkout_carries_the_quantities_per_type_as_billed(
    team: AppUnderTest, stripe: Any
) -> None:
    t = team
    t.billing.authorize(lambda request, organization_id, action: True)
    with t.app.app_context():
        org = t.add_organization()
        _members(t, org.id, "editor", 3)
        org_id = org.id
    answer = t.app.test_client().post(
        "/billing/checkout", json={"organization_id": org_id, "plan": TEAM.name},
        headers={"Accept": "application/json"})
    assert answer.status_code == 200, answer.text
    [post] = [r for r in stripe.requests.all() if r.path == "/v1/checkout/sessions"]
    items = post.params["line_items"]
    items = [items[k] for k in sorted(items, key=int)] if isinstance(items, dict) else items
    assert [(i["price"], int(i["quantity"])) for i in items] == [
        (TEAM_BASE, 1), (EDITOR, 2), (VIEWER, 1)]


@pytest.mark.parametrize(("plan", "message"), [
    (Plan(name="stray", plan_id="price_b", seat_prices={"a": "p"}, included_seats={"b": 1}),
     r"included_seats\['b'\], but 'b' is not one of its seat types \(a\)"),
    (Plan(name="negative", plan_id="price_b", seat_prices={"a": "p"}, minimum_seats={"a": -1}),
     r"minimum_seats\['a'\] = -1; expected a non-negative integer"),
    (Plan(name="listed", plan_id="price_b", seat_prices={"a": "p"},
          included_seats=["a"]),  # type: ignore[arg-type]
     "included_seats = \\['a'\\]; expected a mapping"),
    (Plan(name="untyped", plan_id="price_b", seat_price_id="price_s", minimum_seats={"a": 1}),
     "minimum_seats per seat type but no seat_prices"),
])
def test_bad_included_or_minimum_seats_are_refused_naming_the_plan(
    make_app: AppFactory, plan: Plan, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as error:
        make_app(products=[Product(id="x", name="X", plans=[plan])],
                 seat_type=lambda M: M.role)
    assert repr(plan.name) in str(error.value)


def test_resync_check_counts_included_seats_as_the_sync_does(
    team: AppUnderTest, stripe: Any
) -> None:
    """Three editors with one included and a viewer bill editor=2, viewer=1: a subscription
    holding exactly that is not drift, for ``resync --check`` as for ``status``."""
    t = team
    with t.app.app_context():
        org = t.add_organization()
        _members(t, org.id, "editor", 3)
        _members(t, org.id, "viewer", 1)
        sub = _subscribe(t, stripe, org.id, editors=2, viewers=1)
        t.billing.sync_organization(org.id)
        assert _quantities(stripe, sub) == {"editor": 2, "viewer": 1}

    checked = t.app.test_cli_runner().invoke(args=["seats", "resync", "--check", "--json"])

    assert checked.exit_code == 0, checked.output
    [row] = json.loads(checked.output)["organizations"]
    assert (row["billable"], row["provider_seats"], row["action"]) == (3, 3, "ok")
