"""Several seat types on one Stripe subscription (``Plan.seat_prices``): editors and viewers.

Each type is an item of its own price; one membership change is one subscription update that
carries every type that moved, so a promotion is one write and one proration.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from flask_seat_billing import Plan, Product, signals
from flask_seat_billing.errors import ConfigurationError, SeatLimitReached
from tests import web_helpers
from tests.apps import AppUnderTest, products
from tests.conftest import AppFactory, subscribe
from tests.helpers import ledger_rows

STUDIO_BASE = "price_studio_m"
EDITOR = "price_editor_m"
VIEWER = "price_viewer_m"
STUDIO = Plan(name="studio-monthly", plan_id=STUDIO_BASE, interval="month", cost=49,
              seat_prices={"editor": EDITOR, "viewer": VIEWER},
              limits={"seats": {"editor": 10}})


def _item_of(price: str) -> Plan:
    """The stand-in's set_seats finds the item by the plan's seat price: one type's item."""
    return Plan(name=f"item {price}", plan_id=STUDIO_BASE, seat_price_id=price)


def _catalog() -> list[Product]:
    return [*products(), Product(id="studio", name="Studio", plans=[STUDIO])]


def _studio_app(
    make_app: AppFactory, stripe: Any, config: dict[str, Any] | None = None, **options: Any
) -> AppUnderTest:
    """An app with the studio plan, its prices created in the stand-in."""
    product = stripe.create_product(name="Studio")["id"]
    for price, amount in ((STUDIO_BASE, 4900), (EDITOR, 1500), (VIEWER, 500)):
        stripe.create_price(id=price, product=product, unit_amount=amount, interval="month")
    return make_app(config, products=_catalog(), seat_type=lambda M: M.role, **options)


@pytest.fixture
def typed(make_app: AppFactory, stripe: Any) -> AppUnderTest:
    return _studio_app(make_app, stripe)


def _members(t: AppUnderTest, org_id: Any, role: str, count: int) -> list[Any]:
    members = [t.Membership(organization_id=org_id, email=f"{role}{i}@example.com", role=role)
               for i in range(count)]
    t.db.session.add_all(members)
    t.db.session.commit()
    return members


def _subscribe(t: AppUnderTest, stripe: Any, org_id: Any, editors: int, viewers: int) -> str:
    items = [{"price": STUDIO_BASE, "quantity": 1}, {"price": EDITOR, "quantity": editors}]
    if viewers:
        items.append({"price": VIEWER, "quantity": viewers})
    sub = stripe.create_subscription(
        items=items, metadata={"organization_id": str(org_id), "plan": STUDIO.name})
    t.billing.link_subscription(org_id, sub["id"])
    return str(sub["id"])


def _typed_org(t: AppUnderTest, stripe: Any, editors: int, viewers: int) -> tuple[Any, str, Any]:
    """An organization of ``editors`` and ``viewers``, subscribed: (org, subscription, viewers)."""
    org = t.add_organization()
    _members(t, org.id, "editor", editors)
    found = _members(t, org.id, "viewer", viewers) if viewers else []
    sub = _subscribe(t, stripe, org.id, editors=editors, viewers=viewers)
    return org, sub, found


def _quantities(stripe: Any, sub: str) -> dict[str, int]:
    items = stripe.subscription(sub)["items"]["data"]
    names = {EDITOR: "editor", VIEWER: "viewer"}
    return {names[i["price"]["id"]]: int(i["quantity"]) for i in items
            if i["price"]["id"] in names}


def _subscription_writes(stripe: Any) -> list[Any]:
    return [r for r in stripe.writes()
            if r.path.startswith(("/v1/subscriptions/", "/v1/subscription_items/"))]


def test_counts_by_type_in_one_query_and_the_total_stays(typed: AppUnderTest) -> None:
    t = typed
    with t.app.app_context():
        org = t.add_organization()
        _members(t, org.id, "editor", 2)
        _members(t, org.id, "viewer", 3)

        assert t.billing.billable_seats_by_type(org.id) == {"editor": 2, "viewer": 3}
        assert t.billing.billable_seats(org.id) == 5


def test_a_promotion_moves_both_types_in_one_write(typed: AppUnderTest, stripe: Any) -> None:
    t = typed
    seen: list[Any] = []

    def receiver(app: Any, **kw: Any) -> None:
        seen.append(kw["result"])

    with t.app.app_context():
        org = t.add_organization()
        _members(t, org.id, "editor", 1)
        [viewer, _] = _members(t, org.id, "viewer", 2)
        sub = _subscribe(t, stripe, org.id, editors=1, viewers=2)
        signals.seats_synced.connect(receiver, weak=False)
        try:
            viewer.role = "editor"
            t.db.session.commit()
        finally:
            signals.seats_synced.disconnect(receiver)

        assert _quantities(stripe, sub) == {"editor": 2, "viewer": 1}
        [write] = _subscription_writes(stripe)
        assert write.path == f"/v1/subscriptions/{sub}"
        assert seen[-1].seats_by_type == {"editor": 2, "viewer": 1}
        rows = ledger_rows(t)
        assert [(r["seat_type"], r["from_seats"], r["to_seats"]) for r in rows] == [
            ("editor", 1, 2), ("viewer", 2, 1)]
        assert rows[0]["idempotency_key"] == rows[1]["idempotency_key"]  # one write


def test_a_type_without_an_item_gets_one_in_the_same_write(
    typed: AppUnderTest, stripe: Any
) -> None:
    t = typed
    with t.app.app_context():
        org = t.add_organization()
        _members(t, org.id, "editor", 2)
        sub = _subscribe(t, stripe, org.id, editors=2, viewers=0)

        _members(t, org.id, "viewer", 1)

        assert _quantities(stripe, sub) == {"editor": 2, "viewer": 1}
        assert len(_subscription_writes(stripe)) == 1
        [member] = _members(t, org.id, "intern", 1)  # a type no price bills: total only
        assert _quantities(stripe, sub) == {"editor": 2, "viewer": 1}
        assert t.billing.billable_seats(org.id) == 4
        assert member.id is not None


def test_checkout_has_a_line_item_per_type_with_members(
    typed: AppUnderTest, stripe: Any
) -> None:
    t = typed
    t.billing.authorize(lambda request, organization_id, action: True)
    with t.app.app_context():
        org = t.add_organization()
        _members(t, org.id, "editor", 2)
        org_id = org.id
    answer = t.app.test_client().post(
        "/billing/checkout", json={"organization_id": org_id, "plan": STUDIO.name},
        headers={"Accept": "application/json"})
    assert answer.status_code == 200, answer.text
    [post] = [r for r in stripe.requests.all() if r.path == "/v1/checkout/sessions"]
    items = post.params["line_items"]
    items = [items[k] for k in sorted(items, key=int)] if isinstance(items, dict) else items
    assert [(i["price"], int(i["quantity"])) for i in items] == [(STUDIO_BASE, 1), (EDITOR, 2)]


def test_seat_prices_need_a_seat_type(make_app: AppFactory) -> None:
    with pytest.raises(ConfigurationError, match="seat_type"):
        make_app(products=_catalog())


@pytest.mark.parametrize(("plan", "message"), [
    (Plan(name="both", plan_id="price_b", seat_price_id="price_s", seat_prices={"a": "p"}),
     "both seat_price_id and seat_prices"),
    (Plan(name="shared", plan_id="price_b", seat_prices={"a": "price_b"}),
     "price of its own"),
    (Plan(name="capped", plan_id="price_b", seat_prices={"a": "p"},
          limits={"seats": {"b": 1}}), r"limits\['seats'\]\['b'\]"),
])
def test_bad_seat_prices_are_refused_naming_the_plan(
    make_app: AppFactory, plan: Plan, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as error:
        make_app(products=[Product(id="x", name="X", plans=[plan])],
                 seat_type=lambda M: M.role)
    assert repr(plan.name) in str(error.value)


def test_the_seat_cap_applies_per_type(typed: AppUnderTest, stripe: Any) -> None:
    t = typed
    with t.app.app_context():
        org = t.add_organization()
        _members(t, org.id, "editor", 10)
        _members(t, org.id, "viewer", 20)
        _subscribe(t, stripe, org.id, editors=10, viewers=20)

        with pytest.raises(SeatLimitReached) as refused:
            t.billing.check("before_invitation_accept", organization_id=org.id,
                            seat_type="editor")
        t.billing.check("before_invitation_accept", organization_id=org.id,
                        seat_type="viewer")  # viewers are not capped
        with pytest.raises(ValueError, match="seat_type="):
            t.billing.check("before_invitation_accept", organization_id=org.id)

    assert refused.value.details["seat_type"] == "editor"
    assert (refused.value.details["purchased"], refused.value.details["members"]) == (10, 10)


def test_resync_sees_types_that_moved_while_the_total_did_not(
    typed: AppUnderTest, stripe: Any
) -> None:
    t = typed
    with t.app.app_context():
        org = t.add_organization()
        _members(t, org.id, "editor", 1)
        _members(t, org.id, "viewer", 2)
        sub = _subscribe(t, stripe, org.id, editors=1, viewers=2)
    # A dashboard edit (no webhook delivered): two editors, one viewer; still three seats.
    stripe.set_seats(sub, 2, _item_of(EDITOR))
    stripe.set_seats(sub, 1, _item_of(VIEWER))

    result = t.app.test_cli_runner().invoke(args=["seats", "resync", "--json"])

    assert result.exit_code == 0, result.output
    assert _quantities(stripe, sub) == {"editor": 1, "viewer": 2}
    [row] = json.loads(result.output)["organizations"]
    assert row["action"] == "updated"
    assert row["billable_by_type"] == {"editor": 1, "viewer": 2}
    again = t.app.test_cli_runner().invoke(args=["seats", "resync", "--json"])
    assert json.loads(again.output)["organizations"][0]["action"] == "ok"


def test_status_shows_billable_seats_per_type(typed: AppUnderTest, stripe: Any) -> None:
    t = typed
    with t.app.app_context():
        org = t.add_organization()
        _members(t, org.id, "editor", 1)
        _members(t, org.id, "viewer", 2)
        _subscribe(t, stripe, org.id, editors=1, viewers=2)

    text = t.app.test_cli_runner().invoke(args=["seats", "status"])
    data = t.app.test_cli_runner().invoke(args=["seats", "status", "--json"])

    assert text.exit_code == 0, text.output
    assert "3 (editor 1, viewer 2)" in text.output
    assert json.loads(data.output)[0]["billable_by_type"] == {"editor": 1, "viewer": 2}


def test_at_period_end_bills_a_promotion_now_and_lowers_the_old_type_at_the_end(
    make_app: AppFactory, stripe: Any
) -> None:
    t = _studio_app(make_app, stripe, {"SEAT_BILLING_SEAT_DECREASE": "at_period_end"},
                    clock=stripe.clock)
    with t.app.app_context():
        org = t.add_organization()
        _members(t, org.id, "editor", 1)
        [viewer, _] = _members(t, org.id, "viewer", 2)
        sub = _subscribe(t, stripe, org.id, editors=1, viewers=2)

        viewer.role = "editor"
        t.db.session.commit()

        assert _quantities(stripe, sub) == {"editor": 2, "viewer": 2}  # no credit for the viewer
        pending = t.billing.pending_seat_decrease(org.id)
        assert pending is not None
        assert (pending.seats_now, pending.seats_from_next_period) == (4, 3)
        [write] = _subscription_writes(stripe)
        assert write.params["proration_behavior"] == "create_prorations"

        end = datetime.fromtimestamp(
            int(stripe.subscription(sub)["items"]["data"][0]["current_period_end"]),
            timezone.utc).replace(tzinfo=None)
        stripe.advance_time((end - timedelta(minutes=30) - stripe.clock()).total_seconds())
        t.billing.sync_pending()
        stripe.advance_time((end + timedelta(minutes=1) - stripe.clock()).total_seconds())

        assert _quantities(stripe, sub) == {"editor": 2, "viewer": 1}
        lowering = _subscription_writes(stripe)[-1]
        assert lowering.params["proration_behavior"] == "none"
        assert t.billing.pending_seat_decrease(org.id) is None


# -- one request per typed change (issue 16's fast path) ---------------------------------------


def _sent(stripe: Any, before: int) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in stripe.requests.all()[before:]]


def test_a_typed_change_to_a_current_copy_sends_one_request_the_write(
    typed: AppUnderTest, stripe: Any
) -> None:
    """The copy holds each type's quantity and item: a join and a promotion are one request
    each, the subscription update, with a key derived from the copy's write number."""
    t = typed
    with t.app.app_context():
        org, sub, [viewer, _] = _typed_org(t, stripe, editors=1, viewers=2)
        row = t.billing.subscription_for(org.id)
        assert row is not None and row.seats_by_type == {"editor": 1, "viewer": 2}
        before = len(stripe.requests.all())

        _members(t, org.id, "viewer", 1)
        viewer.role = "editor"
        t.db.session.commit()

        assert _sent(stripe, before) == [("POST", f"/v1/subscriptions/{sub}")] * 2
        assert _quantities(stripe, sub) == {"editor": 2, "viewer": 2}
        rows = ledger_rows(t)
        assert [(r["seat_type"], r["from_seats"], r["to_seats"]) for r in rows] == [
            ("viewer", 2, 3), ("editor", 1, 2), ("viewer", 3, 2)]
        assert rows[0]["idempotency_key"] == f"fsb:{sub}:types:{row.id}.1:viewer=3"
        assert rows[1]["idempotency_key"] == f"fsb:{sub}:types:{row.id}.2:editor=2,viewer=2"
        after = t.billing.subscription_for(org.id)
        assert after is not None
        assert (after.seats_by_type, after.seats, after.write_key) == (
            {"editor": 2, "viewer": 2}, 4, None)
        assert t.billing.pending_syncs() == []


def test_a_typed_write_refused_on_a_stale_copy_reads_and_writes_again(
    typed: AppUnderTest, stripe: Any
) -> None:
    """The viewers' item removed in the dashboard, its webhook not delivered yet: the write
    addressed to that item is refused, the sync reads, and writes the viewers anew (by price)."""
    t = typed
    with t.app.app_context():
        org, sub, _ = _typed_org(t, stripe, editors=1, viewers=2)
        [gone] = [i["id"] for i in stripe.subscription(sub)["items"]["data"]
                  if i["price"]["id"] == VIEWER]
        stripe.client().v1.subscriptions.update(sub, params={
            "items": [{"id": gone, "deleted": True}], "proration_behavior": "none"})
        before = len(stripe.requests.all())

        _members(t, org.id, "viewer", 1)

        assert _sent(stripe, before) == [("POST", f"/v1/subscriptions/{sub}"),
                                         ("GET", f"/v1/subscriptions/{sub}"),
                                         ("POST", f"/v1/subscriptions/{sub}")]
        assert _quantities(stripe, sub) == {"editor": 1, "viewer": 3}
        retried = _subscription_writes(stripe)[-1].params["items"]
        retried = [retried[k] for k in sorted(retried, key=int)] if isinstance(
            retried, dict) else retried
        assert [(i.get("price"), int(i["quantity"])) for i in retried] == [(VIEWER, 3)]
        row = t.billing.subscription_for(org.id)
        assert row is not None and row.seats_by_type == {"editor": 1, "viewer": 3}
        assert row.seat_items_by_type is not None and gone not in row.seat_items_by_type.values()
        # the read's step first (the viewers' item gone), then the write: no gap
        assert [(r["seat_type"], r["from_seats"], r["to_seats"], r["reason"])
                for r in ledger_rows(t)] == [("viewer", 2, 0, "observed"),
                                             ("viewer", 0, 3, "membership")]
        assert t.billing.pending_syncs() == []


def test_a_copy_without_its_seat_types_reads_once_then_writes_from_the_copy(
    typed: AppUnderTest, stripe: Any
) -> None:
    """A row recorded before the ``seat_types`` column: its first sync reads (and fills it), the
    next one is the write alone."""
    t = typed
    with t.app.app_context():
        org, sub, _ = _typed_org(t, stripe, editors=1, viewers=0)
        table = t.db.metadata.tables["seat_billing_subscriptions"]
        with t.db.engine.begin() as conn:
            conn.execute(table.update().values(seat_types=None))
        before = len(stripe.requests.all())

        _members(t, org.id, "viewer", 1)
        middle = len(stripe.requests.all())
        _members(t, org.id, "viewer", 1)

        assert _sent(stripe, before)[: middle - before] == [
            ("GET", f"/v1/subscriptions/{sub}"), ("POST", f"/v1/subscriptions/{sub}")]
        assert _sent(stripe, middle) == [("POST", f"/v1/subscriptions/{sub}")]
        assert _quantities(stripe, sub) == {"editor": 1, "viewer": 2}


def test_a_typed_write_in_doubt_is_settled_by_a_read(typed: AppUnderTest, stripe: Any) -> None:
    """A write answered with a 500 (its outcome unknown to the engine): the next sync reads
    first, then writes with a new key."""
    t = typed
    with t.app.app_context():
        org, sub, _ = _typed_org(t, stripe, editors=1, viewers=0)
        stripe.faults.fail_next(1, status=500, path_prefix=f"/v1/subscriptions/{sub}",
                                method="POST")
        _members(t, org.id, "viewer", 1)
        assert _quantities(stripe, sub) == {"editor": 1}
        before = len(stripe.requests.all())

        t.billing.sync_organization(org.id)

        assert _sent(stripe, before) == [("GET", f"/v1/subscriptions/{sub}"),
                                         ("POST", f"/v1/subscriptions/{sub}")]
        assert _quantities(stripe, sub) == {"editor": 1, "viewer": 1}
        keys = [r["idempotency_key"] for r in ledger_rows(t)]
        assert len(keys) == 1 and keys[0].endswith(".2:viewer=1")


# -- preview_seat_change with seat types ---------------------------------------------------------


def test_a_promotion_is_previewed_as_the_one_write_that_bills_it(
    typed: AppUnderTest, stripe: Any
) -> None:
    """Editor +1 and viewer -1 priced together, by Stripe's invoice preview: what the preview
    says is what the promotion then adds to the next invoice."""
    t = typed
    with t.app.app_context():
        org, sub, [viewer, _] = _typed_org(t, stripe, editors=1, viewers=2)

        preview = t.billing.preview_seat_change(org.id, {"editor": 2, "viewer": 1})

        assert (preview.from_seats, preview.to_seats) == (3, 3)
        assert preview.from_seats_by_type == {"editor": 1, "viewer": 2}
        assert preview.to_seats_by_type == {"editor": 2, "viewer": 1}
        assert preview.seats_from_next_period is None
        assert abs(preview.prorated_amount - (1500 - 500)) <= 2
        assert sorted(line["amount"] for line in preview.lines) == pytest.approx(
            [-500, 1500], abs=2)
        assert _subscription_writes(stripe) == []  # a preview changes nothing

        viewer.role = "editor"
        t.db.session.commit()

        billed = stripe.invoice_items(sub, pending=True)
        assert sum(int(i["amount"]) for i in billed) == pytest.approx(
            preview.prorated_amount, abs=2)


def test_a_type_without_an_item_is_previewed_by_its_price(
    typed: AppUnderTest, stripe: Any
) -> None:
    t = typed
    with t.app.app_context():
        org, sub, _ = _typed_org(t, stripe, editors=2, viewers=0)

        preview = t.billing.preview_seat_change(org.id, {"viewer": 2})

        assert preview.to_seats_by_type == {"editor": 2, "viewer": 2}
        assert (preview.from_seats, preview.to_seats) == (2, 4)
        assert abs(preview.prorated_amount - 2 * 500) <= 2
        [line] = preview.lines
        assert line["quantity"] == 2
        assert _quantities(stripe, sub) == {"editor": 2}


def test_at_period_end_previews_a_promotion_as_billed_now_and_lowered_at_the_renewal(
    make_app: AppFactory, stripe: Any
) -> None:
    t = _studio_app(make_app, stripe, {"SEAT_BILLING_SEAT_DECREASE": "at_period_end"},
                    clock=stripe.clock)
    with t.app.app_context():
        org, sub, _ = _typed_org(t, stripe, editors=1, viewers=2)
        end = datetime.fromtimestamp(
            int(stripe.subscription(sub)["items"]["data"][0]["current_period_end"]),
            timezone.utc).replace(tzinfo=None)

        promotion = t.billing.preview_seat_change(org.id, {"editor": 2, "viewer": 1})
        before = len(stripe.requests.all())
        decrease = t.billing.preview_seat_change(org.id, {"viewer": 0})

        assert promotion.to_seats_by_type == {"editor": 2, "viewer": 2}  # no credit now
        assert promotion.seats_from_next_period_by_type == {"editor": 2, "viewer": 1}
        assert (promotion.to_seats, promotion.seats_from_next_period) == (4, 3)
        assert promotion.takes_effect_at == end
        assert abs(promotion.prorated_amount - 1500) <= 2  # the editor alone
        assert [line["amount"] for line in promotion.lines] == pytest.approx([1500], abs=2)

        assert (decrease.prorated_amount, decrease.amount_due_now) == (0, 0)
        assert decrease.to_seats_by_type == {"editor": 1, "viewer": 2}
        assert decrease.seats_from_next_period_by_type == {"editor": 1, "viewer": 0}
        assert decrease.takes_effect_at == end
        assert stripe.requests.all()[before:] == []  # decided from the local copy


def test_a_preview_names_the_plans_seat_types_when_asked_wrongly(
    typed: AppUnderTest, stripe: Any
) -> None:
    with typed.app.app_context():
        single = typed.add_organization()
        typed.add_members(single.id, 2)
        subscribe(typed, stripe, single.id)
        org, _, _ = _typed_org(typed, stripe, editors=1, viewers=1)
        t = typed

        with pytest.raises(ValueError, match="no seat type 'admin'.*'editor', 'viewer'"):
            t.billing.preview_seat_change(org.id, {"admin": 1})
        with pytest.raises(TypeError, match=r"seat types \('editor', 'viewer'\)"):
            t.billing.preview_seat_change(org.id, 3)
        with pytest.raises(ValueError, match="whole number"):
            t.billing.preview_seat_change(org.id, {"editor": -1})
        with pytest.raises(TypeError, match="has no seat types"):
            t.billing.preview_seat_change(single.id, {"editor": 1})
        assert t.billing.preview_seat_change(single.id, 3).to_seats == 3  # as before


def test_a_type_moved_unseen_shows_in_the_answer_and_is_corrected_next(
    typed: AppUnderTest, stripe: Any
) -> None:
    """A dashboard promotion whose webhook is not in (the copy still says 1 editor, 2 viewers),
    then a viewer joins: the write from the copy moves the viewers; its answer, the whole
    subscription, shows the editors moved too, which is recorded and corrected by a second
    write, as the read-first pass did."""
    t = typed
    with t.app.app_context():
        org, sub, _ = _typed_org(t, stripe, editors=1, viewers=2)
        stripe.set_seats(sub, 2, _item_of(EDITOR))
        stripe.set_seats(sub, 1, _item_of(VIEWER))
        before = len(stripe.requests.all())

        _members(t, org.id, "viewer", 1)

        assert _sent(stripe, before) == [("POST", f"/v1/subscriptions/{sub}")] * 2
        assert _quantities(stripe, sub) == {"editor": 1, "viewer": 3}
        rows = [(r["seat_type"], r["from_seats"], r["to_seats"], r["reason"])
                for r in ledger_rows(t)]
        assert rows == [("editor", 1, 2, "observed"), ("viewer", 2, 3, "membership"),
                        ("editor", 2, 1, "membership")]
        assert t.billing.pending_syncs() == []


@pytest.mark.parametrize("mode", ["accept", "correct"])
def test_a_dashboard_promotion_is_in_the_ledger_per_type_and_corrected_if_asked(
    make_app: AppFactory, stripe: Any, mode: str
) -> None:
    """Its webhook delivered: one external row per type (the total did not move), and under
    ``SEAT_BILLING_EXTERNAL_CHANGE = "correct"`` a sync that puts the types back."""
    for web in web_helpers.serve_app(
            lambda config: _studio_app(make_app, stripe, config), stripe,
            SEAT_BILLING_EXTERNAL_CHANGE=mode):
        t = web.t
        org, sub, _ = _typed_org(t, stripe, editors=1, viewers=2)
        assert all(d.ok for d in stripe.deliver_pending())
        stripe.set_seats(sub, 2, _item_of(EDITOR))
        stripe.set_seats(sub, 1, _item_of(VIEWER))

        assert all(d.ok for d in stripe.deliver_pending())
        t.billing.sync_pending()

        rows = [(r["seat_type"], r["from_seats"], r["to_seats"], r["reason"])
                for r in ledger_rows(t)]
        assert rows[:2] == [("editor", 1, 2, "external"), ("viewer", 2, 1, "external")]
        if mode == "accept":
            assert _quantities(stripe, sub) == {"editor": 2, "viewer": 1}
            assert rows[2:] == []
        else:
            assert _quantities(stripe, sub) == {"editor": 1, "viewer": 2}
            assert [r[:3] for r in rows[2:]] == [("editor", 2, 1), ("viewer", 1, 2)]


def test_resync_from_the_local_copy_compares_the_types_it_recorded(
    make_app: AppFactory, stripe: Any
) -> None:
    """``--no-pull``: the copy's quantities per type decide; a right subscription is no drift,
    one whose types the copy shows apart from the counts (a promotion not synced yet, in
    manual mode) is, though its total is right."""
    t = _studio_app(make_app, stripe, {"SEAT_BILLING_SYNC_MODE": "manual"})
    with t.app.app_context():
        org, sub, [viewer, _] = _typed_org(t, stripe, editors=1, viewers=2)
        before = len(stripe.requests.all())

        right = t.app.test_cli_runner().invoke(args=["seats", "resync", "--no-pull", "--check"])
        viewer.role = "editor"
        t.db.session.commit()
        wrong = t.app.test_cli_runner().invoke(
            args=["seats", "resync", "--no-pull", "--check", "--json"])

        assert _sent(stripe, before) == []
    assert right.exit_code == 0, right.output
    assert wrong.exit_code == 1, wrong.output
    [row] = json.loads(wrong.output)["organizations"]
    assert row["billable_by_type"] == {"editor": 2, "viewer": 1}
