"""A model-based property test: random membership operations, provider faults and drains.

Hypothesis drives a state machine over three organizations (two subscribed, one not) with joins,
leaves, moves and soft deletes, queues faults for the next provider request (5xx, 409, 429,
connections dropped before or after the provider applied the write), and drains the outbox once
or until it settles, on every provider. After each settle, every subscribed organization must be
billed for its billable seats and the outbox must be empty; at every step no idempotency key may
have been sent with two quantities (where the provider takes keys). Manual sync mode keeps it
deterministic: nothing syncs but the drains.
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
    precondition,
    rule,
    run_state_machine_as_test,
)

from flask_seat_billing import Plan
from tests.apps import build_app
from tests.behaviour.chaos.invariants import (
    database_kind,
    key_reuse,
    ledger_doubles,
    mismatches,
    seat_writes,
    write_summary,
)
from tests.behaviour.conftest import World
from tests.helpers import outbox_rows

CONFIG = {
    "SEAT_BILLING_SYNC_MODE": "manual",
    "SEAT_BILLING_STRIPE_MAX_NETWORK_RETRIES": 0,
    "SEAT_BILLING_RETRY_BASE_SECONDS": 0.01,
    "SEAT_BILLING_RETRY_MAX_SECONDS": 0.05,
}
FAULTS = ["500", "409", "429", "drop_lost", "drop_applied"]


def _app(provider: World, database_url: str, **config: Any) -> Any:
    """A fresh app on the provider (reset, its catalogue made again), with fresh tables."""
    provider.reset()
    return build_app(database_url, config={**provider.app_config(), **CONFIG, **config},
                     products=provider.products)


def test_random_operations_faults_and_drains(provider: World, database_url: str) -> None:
    totals: Counter[str] = Counter()
    stand_in = provider.stand_in

    class SeatMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.t = _app(provider, database_url)
            self.ctx = self.t.app.app_context()
            self.ctx.push()
            self.orgs = [self.t.add_organization(f"org{i}").id for i in range(3)]
            self.subs: dict[Any, str] = {}
            for org in self.orgs[:2]:
                self.t.add_members(org, 2)
                self.subs[org] = provider.subscribe(self.t, org)
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
            prefix = provider.dialect.subscription_prefix
            faults = stand_in.faults
            if kind in ("500", "409"):
                faults.fail_next(1, status=int(kind), path_prefix=prefix)
            elif kind == "429":
                faults.rate_limit_next(1, retry_after=0.05, path_prefix=prefix)
            else:
                faults.drop_next(1, apply=kind == "drop_applied", path_prefix=prefix)
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
            stand_in.faults.clear()
            deadline = time.monotonic() + 10
            while outbox_rows(self.t) and time.monotonic() < deadline:
                results = self.t.billing.sync_pending()
                totals["syncs_retrying"] += sum(r.action == "retrying" for r in results)
                time.sleep(0.02)
            totals["settles"] += 1
            assert outbox_rows(self.t) == []
            wrong = mismatches(self.t, provider, self.subs)
            totals["final_mismatches"] += len(wrong)
            assert wrong == {}
            assert ledger_doubles(self.t) == []

        @invariant()
        def keys_never_reused(self) -> None:
            assert key_reuse(provider) == {}

        def teardown(self) -> None:
            try:
                self.settle()
            finally:
                log = stand_in.requests.all()
                totals["provider_requests"] += len(log)
                totals["faulted_requests"] += sum(1 for r in log if r.fault)
                stand_in.requests.clear()
                self.t.db.session.remove()
                self.t.db.drop_all()
                self.t.db.engine.dispose()
                self.ctx.pop()

    started = time.monotonic()
    run_state_machine_as_test(SeatMachine, settings=settings(
        max_examples=20, stateful_step_count=30, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    write_summary("model", provider, {"database": database_kind(database_url), **dict(totals),
                            "seconds": round(time.monotonic() - started, 1)})


LIFECYCLE = ["past_due", "recover", "incomplete", "pause", "resume", "unpaid"]


def test_subscription_lifecycle_model(provider: World, database_url: str) -> None:
    """Lifecycle rules on top of membership changes, seen by signed webhooks over HTTP.

    Payment failure and recovery, incomplete then active, pause and resume, cancel then a new
    checkout, a checkout completed while its subscription is incomplete (a member joined while
    the buyer paid), a plan switch replacing the seat item, dashboard edits, a subscription
    first seen drifted, subscriptions of organizations the app does not have and a checkout
    completed with a buyer-set reference. After each settle, every owned subscription that is
    billable has the billable quantity, and no subscription the app does not own was ever
    written.

    What differs by provider is read from its capabilities and dialect, not from its name: a
    status in ``final_statuses`` has ended (``unpaid`` on Polar), statuses in ``held`` wait for
    a billable status (``past_due`` is one on Polar), and the plan switch that replaces the seat
    item runs only where seats are a price's item (``separate_seat_price``).
    """
    from tests.web_helpers import serve

    totals: Counter[str] = Counter()
    s = provider.stand_in
    caps = s.capabilities
    dialect = provider.dialect
    billable_statuses = caps.statuses - dialect.held - caps.final_statuses
    buyer_plan = provider.plan_named("team-monthly")

    class LifecycleMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.t = _app(provider, database_url, SEAT_BILLING_EXTERNAL_CHANGE="correct")
            self.t.billing.authorize(lambda request, organization_id, action: True)
            self.server = serve(self.t, provider=provider.name)
            served = next(self.server)
            self.endpoint = served.webhook_url
            s.add_webhook_endpoint(self.endpoint, provider.webhook_secret)
            self.ctx = self.t.app.app_context()
            self.ctx.push()
            self.orgs = [self.t.add_organization(f"org{i}").id for i in range(3)]
            self.subs: dict[Any, str] = {}
            self.plan: dict[Any, Plan] = {}  # the plan whose seats each subscription bills
            self.foreign: list[str] = []
            for org in self.orgs[:2]:
                self.t.add_members(org, 2)
                self.subs[org] = provider.checkout_subscription(self.t, org)
                self.plan[org] = provider.plan
            self.settle()
            totals["examples"] += 1

        def _sub(self, which: int) -> tuple[Any, str] | None:
            org = self.orgs[which]
            return (org, self.subs[org]) if org in self.subs else None

        def _ended(self, sub: str) -> bool:
            return s.subscription_status(sub) in caps.final_statuses

        def _end(self, org: Any) -> None:
            """Cancel the organization's subscription (if it has not ended) and tell the app,
            which refuses a second checkout while it knows of a live subscription. A status in
            ``final_statuses`` (``unpaid`` on Polar) has ended it already: only tell the app."""
            if org not in self.subs:
                return
            if not self._ended(self.subs[org]):
                s.cancel_subscription(self.subs[org])
            s.deliver_pending()

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
            if found is None or self._ended(found[1]):
                return
            status = s.subscription_status(found[1])
            target = {"recover": "active", "resume": "active", "pause": "paused"}.get(to, to)
            if to == "resume" and status != "paused":
                return
            if status != target:
                s.set_status(found[1], target)
                totals[f"transition_{status}_to_{target}"] += 1

        @rule(which=st.integers(0, 2))
        def cancel_then_checkout(self, which: int) -> None:
            org = self.orgs[which]
            self._end(org)
            self.subs[org] = provider.checkout_subscription(self.t, org)
            self.plan[org] = provider.plan
            totals["cancel_then_checkout"] += 1

        @rule(which=st.integers(0, 2))
        def delayed_payment_checkout(self, which: int) -> None:
            """A member joins while the buyer pays with a delayed method: the checkout completes
            with the subscription ``incomplete``; a later ``recover`` transition activates it."""
            org = self.orgs[which]
            self._end(org)
            answer = self.t.app.test_client().post(
                "/billing/checkout", json={"organization_id": org, "plan": provider.plan.name},
                headers={"Accept": "application/json"})
            assert answer.status_code == 200, answer.text
            checkout_id = str(answer.json["id"])
            self.t.add_members(org, 1)
            s.complete_checkout(checkout_id)
            sub = s.checkout_subscription_id(checkout_id)
            assert sub is not None
            s.set_status(sub, "incomplete")
            self.t.billing.complete_checkout(checkout_id)  # the success page
            self.subs[org] = sub
            self.plan[org] = provider.plan
            totals["delayed_payment_checkout"] += 1

        @precondition(lambda self: caps.separate_seat_price)
        @rule(which=st.integers(0, 2))
        def plan_switch(self, which: int) -> None:
            """Only where seats are a price's item (``separate_seat_price``): the switch deletes
            the seat item and adds the other plan's. Polar keeps seats on the subscription."""
            found = self._sub(which)
            if found is None or self.plan[found[0]] != provider.plan or self._ended(found[1]):
                return
            dialect.switch_seat_price(s, found[1], provider.plan, buyer_plan)
            self.plan[found[0]] = buyer_plan
            totals["plan_switch"] += 1

        @rule(which=st.integers(0, 2), quantity=st.integers(1, 9))
        def dashboard_edit(self, which: int, quantity: int) -> None:
            found = self._sub(which)
            if found is None or self._ended(found[1]):
                return
            s.set_seats(found[1], quantity, self.plan[found[0]])
            totals["dashboard_edit"] += 1

        @rule(quantity=st.integers(1, 9))
        def first_seen_drifted(self, quantity: int) -> None:
            org = self.orgs[2]
            if org in self.subs:
                return
            self.subs[org] = provider.checkout_subscription(self.t, org)
            self.plan[org] = provider.plan
            s.set_seats(self.subs[org], quantity, provider.plan)
            totals["first_seen_drifted"] += 1

        @rule(named=st.sampled_from(["999", "0"]))
        def foreign_subscription(self, named: str) -> None:
            sub = s.subscribe(named, provider.plan, 5)  # metadata names the organization
            self.foreign.append(sub)
            s.set_seats(sub, 6, provider.plan)
            totals["foreign_subscription"] += 1

        @rule(which=st.integers(0, 2))
        def buyer_set_reference(self, which: int) -> None:
            self.foreign.append(dialect.buyer_checkout(s, self.orgs[which], buyer_plan))
            totals["buyer_set_reference"] += 1

        @rule()
        def deliver(self) -> None:
            s.deliver_pending(order="shuffled", seed=totals["deliveries"])
            totals["deliveries"] += 1

        @rule()
        def settle(self) -> None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                assert all(d.ok for d in s.deliver_pending())
                self.t.billing.sync_pending()
                if not s.webhooks.pending() and all(
                        r["status"] == "held" for r in outbox_rows(self.t)):
                    break
            totals["settles"] += 1
            wrong = {}
            for org, sub in self.subs.items():
                status = s.subscription_status(sub)
                quantity = s.seats(sub, self.plan[org])
                billable = self.t.billing.billable_seats(org)
                if status in billable_statuses and quantity != billable:
                    wrong[org] = (status, quantity, billable)
            totals["final_mismatches"] += len(wrong)
            assert wrong == {}
            stray = [w for sub in self.foreign for w in provider.writes_to(sub)]
            totals["writes_not_owned"] += len(stray)
            assert stray == []

        def teardown(self) -> None:
            try:
                self.settle()
            finally:
                totals["seat_writes"] += len(seat_writes(provider))
                totals["provider_requests"] += len(s.requests.all())
                s.requests.clear()
                self.t.db.session.remove()
                self.t.db.drop_all()
                self.t.db.engine.dispose()
                self.ctx.pop()
                s.webhooks.remove_webhook_endpoint(self.endpoint)
                self.server.close()

    started = time.monotonic()
    run_state_machine_as_test(LifecycleMachine, settings=settings(
        max_examples=12, stateful_step_count=25, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    totals["transitions"] = sum(v for k, v in totals.items() if k.startswith("transition_"))
    write_summary("lifecycle", provider, {"database": database_kind(database_url),
                                          **dict(totals),
                                          "seconds": round(time.monotonic() - started, 1)})
