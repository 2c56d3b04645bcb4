"""A model-based test of seat types: random joins, leaves, promotions, faults and drains.

Hypothesis drives two organizations on a plan with editor and viewer seats (Stripe stand-in,
manual sync mode). After each settle, every type's quantity equals its billable count; at every
step, every seat write is one subscription update (never an item written alone, so one change is
one proration), and no idempotency key is sent with two different bodies.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from flask_seat_billing import Plan, Product
from tests.apps import build_app
from tests.helpers import outbox_rows

BASE, EDITOR, VIEWER = "price_studio_m", "price_editor_m", "price_viewer_m"
PRICES = {"editor": EDITOR, "viewer": VIEWER}
STUDIO = Plan(name="studio-monthly", plan_id=BASE, interval="month", cost=49,
              seat_prices=PRICES)
CONFIG = {
    "SEAT_BILLING_SYNC_MODE": "manual",
    "SEAT_BILLING_STRIPE_MAX_NETWORK_RETRIES": 0,
    "SEAT_BILLING_RETRY_BASE_SECONDS": 0.01,
    "SEAT_BILLING_RETRY_MAX_SECONDS": 0.05,
}


def _bodies_per_key(stripe: Any) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for r in stripe.requests.all():
        if r.idempotency_key and r.method == "POST":
            seen.setdefault(r.idempotency_key, set()).add(repr(sorted(r.params.items())))
    return {k: v for k, v in seen.items() if len(v) > 1}


def test_seat_types_model(stripe: Any, database_url: str) -> None:
    totals: Counter[str] = Counter()

    class TypesMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            stripe.reset()
            product = stripe.create_product(name="Studio")["id"]
            for price in (BASE, EDITOR, VIEWER):
                stripe.create_price(id=price, product=product, unit_amount=1000,
                                    interval="month")
            self.t = build_app(
                database_url, config={**CONFIG, "SEAT_BILLING_STRIPE_API_BASE": stripe.url},
                products=[Product(id="studio", name="Studio", plans=[STUDIO])],
                seat_type=lambda M: M.role)
            self.ctx = self.t.app.app_context()
            self.ctx.push()
            self.orgs = [self.t.add_organization(f"org{i}").id for i in range(2)]
            self.subs: dict[Any, str] = {}
            for org in self.orgs:
                self._add(org, "editor", 1)
                self._add(org, "viewer", 1)
                sub = stripe.create_subscription(
                    items=[{"price": BASE, "quantity": 1}, {"price": EDITOR, "quantity": 1},
                           {"price": VIEWER, "quantity": 1}],
                    metadata={"organization_id": str(org), "plan": STUDIO.name})
                self.t.billing.link_subscription(org, sub["id"])
                self.subs[org] = sub["id"]
            totals["examples"] += 1

        def _add(self, org: Any, role: str, count: int) -> None:
            self.t.db.session.add_all([
                self.t.Membership(organization_id=org, email=f"{role}{i}@x.io", role=role)
                for i in range(count)])
            self.t.db.session.commit()

        def _live(self, org: Any) -> list[Any]:
            M = self.t.Membership
            return M.query.filter(M.organization_id == org, M.deleted_at.is_(None)).all()

        def _quantities(self, org: Any) -> dict[str, int]:
            have = {i["price"]["id"]: int(i["quantity"])
                    for i in stripe.subscription(self.subs[org])["items"]["data"]}
            return {k: have.get(p, 0) for k, p in PRICES.items()}

        @rule(which=st.integers(0, 1), role=st.sampled_from(["editor", "viewer", "guest"]),
              count=st.integers(1, 2))
        def join(self, which: int, role: str, count: int) -> None:
            self._add(self.orgs[which], role, count)
            totals["join"] += 1

        @rule(which=st.integers(0, 1), data=st.data())
        def leave(self, which: int, data: st.DataObject) -> None:
            live = self._live(self.orgs[which])
            if live:
                self.t.db.session.delete(data.draw(st.sampled_from(live)))
                self.t.db.session.commit()
                totals["leave"] += 1

        @rule(which=st.integers(0, 1), data=st.data())
        def change_type(self, which: int, data: st.DataObject) -> None:
            live = self._live(self.orgs[which])
            if live:
                member = data.draw(st.sampled_from(live))
                member.role = data.draw(st.sampled_from(["editor", "viewer", "guest"]))
                self.t.db.session.commit()
                totals["change_type"] += 1

        @rule(status=st.sampled_from([500, 429]))
        def fault_then_drain(self, status: int) -> None:
            if status == 429:
                stripe.faults.rate_limit_next(1, retry_after=0.01, path_prefix="/v1/subscription")
            else:
                stripe.faults.fail_next(1, status=status, path_prefix="/v1/subscription")
            self.drain_once()

        @rule()
        def drain_once(self) -> None:
            self.t.billing.sync_pending()
            totals["drains"] += 1

        @rule()
        def settle(self) -> None:
            stripe.faults.clear()
            deadline = time.monotonic() + 10
            while outbox_rows(self.t):
                assert time.monotonic() < deadline, outbox_rows(self.t)
                self.t.billing.sync_pending()
                time.sleep(0.02)
            for org in self.orgs:
                counts = self.t.billing.billable_seats_by_type(org)
                wanted = {k: counts.get(k, 0) for k in PRICES}
                assert self._quantities(org) == wanted
            totals["settles"] += 1

        @invariant()
        def one_write_per_change(self) -> None:
            assert not [r for r in stripe.writes()
                        if r.path.startswith("/v1/subscription_items/")]
            assert _bodies_per_key(stripe) == {}

        def teardown(self) -> None:
            try:
                self.settle()
            finally:
                stripe.requests.clear()
                self.t.db.session.remove()
                self.t.db.drop_all()
                self.t.db.engine.dispose()
                self.ctx.pop()

    run_state_machine_as_test(TypesMachine, settings=settings(
        max_examples=15, stateful_step_count=25, deadline=None, derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    assert totals["change_type"] > 0 and totals["settles"] > 0
