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
