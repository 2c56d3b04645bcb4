"""A model-based property test: random membership operations, provider faults and drains.

Hypothesis drives a state machine over three organizations (two subscribed, one not) with joins,
leaves, moves and soft deletes, queues faults for the next provider request (5xx, 409, 429,
connections dropped before or after Stripe applied the write), and drains the outbox once or
until it settles. After each settle, every subscribed organization must be billed for its
billable seats and the outbox must be empty; at every step no idempotency key may have been sent
with two quantities. Manual sync mode keeps it deterministic: nothing syncs but the drains.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tests.apps import (
    BASE_PRICE,
    SEAT_ONLY_PRICE,
    SEAT_PRICE,
    YEARLY_BASE,
    YEARLY_SEAT,
    build_app,
)
from tests.chaos.conftest import (
    database_kind,
    key_reuse,
    ledger_doubles,
    mismatches,
    write_summary,
)
from tests.conftest import subscribe
from tests.helpers import outbox_rows

CONFIG = {
    "SEAT_BILLING_SYNC_MODE": "manual",
    "SEAT_BILLING_STRIPE_MAX_NETWORK_RETRIES": 0,
    "SEAT_BILLING_RETRY_BASE_SECONDS": 0.01,
    "SEAT_BILLING_RETRY_MAX_SECONDS": 0.05,
}
FAULTS = ["500", "409", "429", "drop_lost", "drop_applied"]


def _prices(stripe: Any) -> None:
    """The catalogue of tests/conftest.py's ``stripe`` fixture, after a ``reset``."""
    product = stripe.create_product(name="Pro")["id"]
    seat_product = stripe.create_product(name="Seat")["id"]
    for price, prod, amount, interval in [
        (BASE_PRICE, product, 1999, "month"), (SEAT_PRICE, seat_product, 1000, "month"),
        (SEAT_ONLY_PRICE, seat_product, 1000, "month"), (YEARLY_BASE, product, 19999, "year"),
        (YEARLY_SEAT, seat_product, 10000, "year"),
    ]:
        stripe.create_price(id=price, product=prod, unit_amount=amount, interval=interval)


def test_random_operations_faults_and_drains(stripe: Any, database_url: str) -> None:
    totals: Counter[str] = Counter()

    class SeatMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            stripe.reset()
            _prices(stripe)
            self.t = build_app(database_url, config={
                **CONFIG, "SEAT_BILLING_STRIPE_API_BASE": stripe.url})
            self.ctx = self.t.app.app_context()
            self.ctx.push()
            self.orgs = [self.t.add_organization(f"org{i}").id for i in range(3)]
            self.subs: dict[Any, str] = {}
            for org in self.orgs[:2]:
                self.t.add_members(org, 2)
                self.subs[org] = subscribe(self.t, stripe, org)
            self.t.billing.sync_pending()
            totals["examples"] += 1

        def _live(self, org: Any) -> list[Any]:
            M = self.t.Membership
            return M.query.filter(M.organization_id == org, M.deleted_at.is_(None)).all()

        @rule(which=st.integers(0, 2), count=st.integers(1, 3))
        def join(self, which: int, count: int) -> None:
            self.t.add_members(self.orgs[which], count)
            totals["join"] += 1

        @rule(which=st.integers(0, 2), data=st.data())
        def leave(self, which: int, data: st.DataObject) -> None:
            live = self._live(self.orgs[which])
            if live:
                self.t.db.session.delete(data.draw(st.sampled_from(live)))
                self.t.db.session.commit()
                totals["leave"] += 1

        @rule(src=st.integers(0, 2), dst=st.integers(0, 2), data=st.data())
        def move(self, src: int, dst: int, data: st.DataObject) -> None:
            live = self._live(self.orgs[src])
            if live and src != dst:
                data.draw(st.sampled_from(live)).organization_id = self.orgs[dst]
                self.t.db.session.commit()
                totals["move"] += 1

        @rule(which=st.integers(0, 2), data=st.data())
        def soft_delete(self, which: int, data: st.DataObject) -> None:
            live = self._live(self.orgs[which])
            if live:
                data.draw(st.sampled_from(live)).deleted_at = dt.datetime(2026, 1, 1)
                self.t.db.session.commit()
                totals["soft_delete"] += 1

        @rule(kind=st.sampled_from(FAULTS))
        def fault(self, kind: str) -> None:
            prefix = "/v1/subscription"
            if kind in ("500", "409"):
                stripe.faults.fail_next(1, status=int(kind), path_prefix=prefix)
            elif kind == "429":
                stripe.faults.rate_limit_next(1, retry_after=0.05, path_prefix=prefix)
            else:
                stripe.faults.drop_next(1, apply=kind == "drop_applied", path_prefix=prefix)
            totals[f"fault_{kind}"] += 1

        @rule()
        def drain_once(self) -> None:
            results = self.t.billing.sync_pending()
            totals["syncs_retrying"] += sum(r.action == "retrying" for r in results)
            totals["drains"] += 1

        @rule(kind=st.sampled_from(FAULTS))
        def fault_then_drain(self, kind: str) -> None:
            """A fault is only interesting if a sync meets it: queue one and drain at once."""
            self.fault(kind)
            self.drain_once()

        @rule()
        def settle(self) -> None:
            stripe.faults.clear()
            deadline = time.monotonic() + 10
            while outbox_rows(self.t) and time.monotonic() < deadline:
                results = self.t.billing.sync_pending()
                totals["syncs_retrying"] += sum(r.action == "retrying" for r in results)
                time.sleep(0.02)
            totals["settles"] += 1
            assert outbox_rows(self.t) == []
            wrong = mismatches(self.t, stripe, self.subs)
            totals["final_mismatches"] += len(wrong)
            assert wrong == {}
            assert ledger_doubles(self.t) == []

        @invariant()
        def keys_never_reused(self) -> None:
            assert key_reuse(stripe) == {}

        def teardown(self) -> None:
            try:
                self.settle()
            finally:
                log = stripe.requests.all()
                totals["provider_requests"] += len(log)
                totals["faulted_requests"] += sum(1 for r in log if r.fault)
                stripe.requests.clear()
                self.t.db.session.remove()
                self.t.db.drop_all()
                self.t.db.engine.dispose()
                self.ctx.pop()

    started = time.monotonic()
    run_state_machine_as_test(SeatMachine, settings=settings(
        max_examples=20, stateful_step_count=30, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    write_summary("model", {"database": database_kind(database_url), **dict(totals),
                            "seconds": round(time.monotonic() - started, 1)})


LIFECYCLE = ["past_due", "recover", "incomplete", "pause", "resume", "unpaid"]


def test_subscription_lifecycle_model(stripe: Any, database_url: str) -> None:
    """Lifecycle rules on top of membership changes, seen by signed webhooks over HTTP.

    Payment failure and recovery, incomplete then active, pause and resume, cancel then a new
    checkout, a checkout completed while its subscription is incomplete (a member joined while
    the buyer paid), a plan switch replacing the seat item, dashboard edits, a subscription
    first seen drifted, subscriptions of organizations the app does not have and a checkout
    completed with a buyer-set reference. After each settle, every owned subscription that is
    billable has the billable quantity, and no subscription the app does not own was ever
    written.
    """
    from tests.conftest import checkout_subscription
    from tests.web_helpers import WEBHOOK_SECRET, serve

    totals: Counter[str] = Counter()

    class LifecycleMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            stripe.reset()
            _prices(stripe)
            self.t = build_app(database_url, config={
                **CONFIG, "SEAT_BILLING_STRIPE_API_BASE": stripe.url,
                "SEAT_BILLING_EXTERNAL_CHANGE": "correct",
                "SEAT_BILLING_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET})
            self.t.billing.authorize(lambda request, organization_id, action: True)
            self.server = serve(self.t)
            served = next(self.server)
            self.endpoint = served.webhook_url
            stripe.add_webhook_endpoint(self.endpoint, WEBHOOK_SECRET)
            self.ctx = self.t.app.app_context()
            self.ctx.push()
            self.orgs = [self.t.add_organization(f"org{i}").id for i in range(3)]
            self.subs: dict[Any, str] = {}
            self.seat_price: dict[Any, str] = {}
            self.foreign: list[str] = []
            for org in self.orgs[:2]:
                self.t.add_members(org, 2)
                self.subs[org] = checkout_subscription(self.t, stripe, org)
                self.seat_price[org] = SEAT_PRICE
            self.settle()
            totals["examples"] += 1

        def _sub(self, which: int) -> tuple[Any, str] | None:
            org = self.orgs[which]
            return (org, self.subs[org]) if org in self.subs else None

        @rule(which=st.integers(0, 2), count=st.integers(1, 2))
        def join(self, which: int, count: int) -> None:
            self.t.add_members(self.orgs[which], count)
            totals["join"] += 1

        @rule(which=st.integers(0, 2), data=st.data())
        def leave(self, which: int, data: st.DataObject) -> None:
            M = self.t.Membership
            live = M.query.filter(M.organization_id == self.orgs[which],
                                  M.deleted_at.is_(None)).all()
            if live:
                self.t.db.session.delete(data.draw(st.sampled_from(live)))
                self.t.db.session.commit()
                totals["leave"] += 1

        @rule(which=st.integers(0, 2), to=st.sampled_from(LIFECYCLE))
        def transition_again(self, which: int, to: str) -> None:
            """Lifecycle moves are the point of this model: give them twice the weight."""
            self.transition(which, to)

        @rule(which=st.integers(0, 2), to=st.sampled_from(LIFECYCLE))
        def transition(self, which: int, to: str) -> None:
            found = self._sub(which)
            if found is None:
                return
            sub = stripe.subscription(found[1])
            if sub["status"] == "canceled":
                return
            target = {"recover": "active", "resume": "active", "pause": "paused"}.get(to, to)
            if to == "resume" and sub["status"] != "paused":
                return
            if sub["status"] != target:
                stripe.set_subscription_status(found[1], target)
                totals[f"transition_{sub['status']}_to_{target}"] += 1

        @rule(which=st.integers(0, 2))
        def cancel_then_checkout(self, which: int) -> None:
            org = self.orgs[which]
            if org in self.subs and stripe.subscription(self.subs[org])["status"] != "canceled":
                stripe.cancel_subscription(self.subs[org])
                stripe.deliver_pending()
            self.subs[org] = checkout_subscription(self.t, stripe, org)
            self.seat_price[org] = SEAT_PRICE
            totals["cancel_then_checkout"] += 1

        @rule(which=st.integers(0, 2))
        def delayed_payment_checkout(self, which: int) -> None:
            """A member joins while the buyer pays with a delayed method: the checkout completes
            with the subscription ``incomplete``; a later ``recover`` transition activates it."""
            org = self.orgs[which]
            if org in self.subs and stripe.subscription(self.subs[org])["status"] != "canceled":
                stripe.cancel_subscription(self.subs[org])
                stripe.deliver_pending()
            answer = self.t.app.test_client().post(
                "/billing/checkout", json={"organization_id": org, "plan": "pro-monthly"},
                headers={"Accept": "application/json"})
            assert answer.status_code == 200, answer.text
            self.t.add_members(org, 1)
            sub = str(stripe.complete_checkout(str(answer.json["id"]))["subscription"])
            stripe.set_subscription_status(sub, "incomplete")
            self.t.billing.complete_checkout(str(answer.json["id"]))  # the success page
            self.subs[org] = sub
            self.seat_price[org] = SEAT_PRICE
            totals["delayed_payment_checkout"] += 1

        @rule(which=st.integers(0, 2))
        def plan_switch(self, which: int) -> None:
            found = self._sub(which)
            if found is None or self.seat_price[found[0]] != SEAT_PRICE:
                return
            sub = stripe.subscription(found[1])
            if sub["status"] == "canceled":
                return
            seat = next(i for i in sub["items"]["data"] if i["price"]["id"] == SEAT_PRICE)
            stripe.client().v1.subscriptions.update(found[1], params={"items": [
                {"id": seat["id"], "deleted": True},
                {"price": SEAT_ONLY_PRICE, "quantity": seat["quantity"]}]})
            self.seat_price[found[0]] = SEAT_ONLY_PRICE
            totals["plan_switch"] += 1

        @rule(which=st.integers(0, 2), quantity=st.integers(1, 9))
        def dashboard_edit(self, which: int, quantity: int) -> None:
            found = self._sub(which)
            if found is None or stripe.subscription(found[1])["status"] == "canceled":
                return
            stripe.set_item_quantity(found[1], self.seat_price[found[0]], quantity)
            totals["dashboard_edit"] += 1

        @rule(quantity=st.integers(1, 9))
        def first_seen_drifted(self, quantity: int) -> None:
            org = self.orgs[2]
            if org in self.subs:
                return
            self.subs[org] = checkout_subscription(self.t, stripe, org)
            self.seat_price[org] = SEAT_PRICE
            stripe.set_item_quantity(self.subs[org], SEAT_PRICE, quantity)
            totals["first_seen_drifted"] += 1

        @rule(named=st.sampled_from(["999", "0"]))
        def foreign_subscription(self, named: str) -> None:
            sub = stripe.create_subscription(
                items=[{"price": BASE_PRICE, "quantity": 1}, {"price": SEAT_PRICE, "quantity": 5}],
                metadata={"organization_id": named, "plan": "pro-monthly"})
            self.foreign.append(str(sub["id"]))
            stripe.set_item_quantity(str(sub["id"]), SEAT_PRICE, 6)
            totals["foreign_subscription"] += 1

        @rule(which=st.integers(0, 2))
        def buyer_set_reference(self, which: int) -> None:
            session = stripe.client().v1.checkout.sessions.create(params={
                "mode": "subscription", "client_reference_id": str(self.orgs[which]),
                "line_items": [{"price": SEAT_ONLY_PRICE, "quantity": 1}],
                "success_url": "http://127.0.0.1/?session_id={CHECKOUT_SESSION_ID}"})
            self.foreign.append(str(stripe.complete_checkout(session.id)["subscription"]))
            totals["buyer_set_reference"] += 1

        @rule()
        def deliver(self) -> None:
            stripe.deliver_pending(order="shuffled", seed=totals["deliveries"])
            totals["deliveries"] += 1

        @rule()
        def settle(self) -> None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                assert all(d.ok for d in stripe.deliver_pending())
                self.t.billing.sync_pending()
                if not stripe.webhooks.pending() and all(
                        r["status"] == "held" for r in outbox_rows(self.t)):
                    break
            totals["settles"] += 1
            wrong = {}
            for org, sub in self.subs.items():
                status = stripe.subscription(sub)["status"]
                quantity = stripe.item_quantity(sub, self.seat_price[org])
                billable = self.t.billing.billable_seats(org)
                if status in ("active", "trialing", "past_due") and quantity != billable:
                    wrong[org] = (status, quantity, billable)
            totals["final_mismatches"] += len(wrong)
            assert wrong == {}
            foreign_items = {i["id"] for s in self.foreign
                             for i in stripe.subscription(s)["items"]["data"]}
            stray = [w for w in stripe.writes() if w.path.rsplit("/", 1)[-1] in foreign_items]
            totals["writes_not_owned"] += len(stray)
            assert stray == []

        def teardown(self) -> None:
            try:
                self.settle()
            finally:
                totals["seat_writes"] += sum(
                    1 for w in stripe.writes() if w.path.startswith("/v1/subscription_items/"))
                totals["provider_requests"] += len(stripe.requests.all())
                stripe.requests.clear()
                self.t.db.session.remove()
                self.t.db.drop_all()
                self.t.db.engine.dispose()
                self.ctx.pop()
                stripe.webhooks.remove_webhook_endpoint(self.endpoint)
                self.server.close()

    started = time.monotonic()
    run_state_machine_as_test(LifecycleMachine, settings=settings(
        max_examples=12, stateful_step_count=25, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    totals["transitions"] = sum(v for k, v in totals.items() if k.startswith("transition_"))
    write_summary("lifecycle", {"database": database_kind(database_url), **dict(totals),
                                "seconds": round(time.monotonic() - started, 1)})
