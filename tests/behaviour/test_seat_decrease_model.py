"""A model-based test of ``"at_period_end"``: random joins, leaves, faults, drains and time.

Hypothesis drives two subscribed organizations on the Stripe stand-in in manual sync mode, and
moves the stand-in's clock (the app reads the same clock) inside the period, into the last hour
before its end, and across the renewal. The rules it checks, after each settle:

- inside a period the quantity never goes down: it is at least the billable count and at least
  what it was at the previous settle, and no higher than the most seats used since then;
- every decrease in the ledger is a ``period_end`` one;
- at each renewal, the renewal invoice bills the billable count as it stood before the period's
  end, and the quantity equals it;
- no idempotency key is ever sent with two quantities.

It reuses the chaos suite's readers (``key_reuse``, the catalogue the ``stripe`` fixture makes).
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.apps import (
    BASE_PRICE,
    PRO_MONTHLY,
    SEAT_ONLY_PRICE,
    SEAT_PRICE,
    YEARLY_BASE,
    YEARLY_SEAT,
    build_app,
)
from tests.conftest import subscribe
from tests.helpers import ledger_rows, outbox_rows

CONFIG = {
    "SEAT_BILLING_SYNC_MODE": "manual",
    "SEAT_BILLING_SEAT_DECREASE": "at_period_end",
    "SEAT_BILLING_STRIPE_MAX_NETWORK_RETRIES": 0,
    "SEAT_BILLING_RETRY_BASE_SECONDS": 0.01,
    "SEAT_BILLING_RETRY_MAX_SECONDS": 0.05,
}
MARGIN = timedelta(hours=1)


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


def _key_reuse(stripe: Any) -> dict[str, set[Any]]:
    """Idempotency keys sent with more than one quantity (must be none)."""
    seen: dict[str, set[Any]] = {}
    for r in stripe.requests.all():
        if r.idempotency_key and r.path.startswith("/v1/subscription_items/"):
            seen.setdefault(r.idempotency_key, set()).add(r.params.get("quantity"))
    return {k: v for k, v in seen.items() if len(v) > 1}


def test_period_end_decreases_model(stripe: Any, database_url: str) -> None:
    totals: Counter[str] = Counter()

    class PeriodMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            stripe.reset()
            stripe.freeze_time(None)
            _prices(stripe)
            self.t = build_app(database_url, clock=stripe.clock, config={
                **CONFIG, "SEAT_BILLING_STRIPE_API_BASE": stripe.url})
            self.ctx = self.t.app.app_context()
            self.ctx.push()
            self.orgs = [self.t.add_organization(f"org{i}").id for i in range(2)]
            self.subs: dict[Any, str] = {}
            self.settled: dict[Any, int] = {}  # quantity at the previous settle, this period
            self.peak: dict[Any, int] = {}  # most seats used since the previous settle
            for org in self.orgs:
                self.t.add_members(org, 2)
                self.subs[org] = subscribe(self.t, stripe, org)
                self.settled[org] = self.peak[org] = 2
            totals["examples"] += 1

        def _billable(self, org: Any) -> int:
            return self.t.billing.billable_seats(org)

        def _seats(self, org: Any) -> int:
            return stripe.seats(self.subs[org], PRO_MONTHLY)

        def _period_end(self) -> datetime:
            """The seat items' period end, as the provider holds it (both renew together)."""
            ends = [int(stripe.subscription(s)["items"]["data"][0]["current_period_end"])
                    for s in self.subs.values()]
            return datetime.fromtimestamp(min(ends), timezone.utc).replace(tzinfo=None)

        def _live(self, org: Any) -> list[Any]:
            M = self.t.Membership
            return M.query.filter(M.organization_id == org, M.deleted_at.is_(None)).all()

        @rule(which=st.integers(0, 1), count=st.integers(1, 3))
        def join(self, which: int, count: int) -> None:
            org = self.orgs[which]
            self.t.add_members(org, count)
            self.peak[org] = max(self.peak[org], self._billable(org))
            totals["join"] += 1

        @rule(which=st.integers(0, 1), data=st.data())
        def leave(self, which: int, data: st.DataObject) -> None:
            live = self._live(self.orgs[which])
            if len(live) > 1:
                self.t.db.session.delete(data.draw(st.sampled_from(live)))
                self.t.db.session.commit()
                totals["leave"] += 1

        @rule(status=st.sampled_from([500, 429]))
        def fault_then_drain(self, status: int) -> None:
            if status == 429:
                stripe.faults.rate_limit_next(1, retry_after=0.01, path_prefix="/v1/subscription")
            else:
                stripe.faults.fail_next(1, status=status, path_prefix="/v1/subscription")
            self.drain_once()
            totals[f"fault_{status}"] += 1

        @rule()
        def drain_once(self) -> None:
            self.t.billing.sync_pending()
            totals["drains"] += 1

        @rule(hours=st.integers(1, 96))
        def time_passes(self, hours: int) -> None:
            """Time inside the period, stopping short of the last hour before its end."""
            room = self._period_end() - MARGIN - stripe.clock() - timedelta(minutes=1)
            step = min(timedelta(hours=hours), room)
            if step > timedelta(0):
                stripe.advance_time(step.total_seconds())
                totals["time_passes"] += 1

        @rule()
        def settle(self) -> None:
            stripe.faults.clear()
            deadline = time.monotonic() + 10
            while any(r["status"] == "pending" for r in outbox_rows(self.t)):
                assert time.monotonic() < deadline, outbox_rows(self.t)
                self.t.billing.sync_pending()
                time.sleep(0.02)
            for org in self.orgs:
                seats, billable = self._seats(org), self._billable(org)
                assert seats >= billable
                assert seats >= self.settled[org]
                assert seats <= max(self.settled[org], self.peak[org])
                self.settled[org] = self.peak[org] = seats
            totals["settles"] += 1

        @rule()
        def renewal(self) -> None:
            """Into the last hour (the lowering is sent), then across the period's end."""
            self.settle()
            end = self._period_end()
            stripe.advance_time((end - MARGIN / 2 - stripe.clock()).total_seconds())
            self.settle()
            self.t.billing.sync_pending()  # the scheduled decreases are due now
            expected = {org: self._billable(org) for org in self.orgs}
            stripe.advance_time((end + timedelta(minutes=1) - stripe.clock()).total_seconds())
            for org in self.orgs:
                sub = self.subs[org]
                invoice = [i for i in stripe.invoices(sub)
                           if i["billing_reason"] == "subscription_cycle"][-1]
                [line] = [ln for ln in invoice["lines"]["data"]
                          if ln["pricing"]["price_details"]["price"] == SEAT_PRICE
                          and not ln["parent"]["subscription_item_details"]["proration"]]
                assert int(line["quantity"]) == expected[org]
                assert self._seats(org) == expected[org]
                self.settled[org] = self.peak[org] = expected[org]
            assert [r for r in outbox_rows(self.t) if r["status"] == "scheduled"] == []
            totals["renewals"] += 1

        @invariant()
        def only_period_end_decreases(self) -> None:
            lowered = [r for r in ledger_rows(self.t) if r["from_seats"] is not None
                       and r["to_seats"] < r["from_seats"]]
            assert all(r["reason"] == "period_end" for r in lowered), lowered
            assert _key_reuse(stripe) == {}

        def teardown(self) -> None:
            try:
                self.settle()
            finally:
                stripe.requests.clear()
                stripe.freeze_time(None)
                self.t.db.session.remove()
                self.t.db.drop_all()
                self.t.db.engine.dispose()
                self.ctx.pop()

    run_state_machine_as_test(PeriodMachine, settings=settings(
        max_examples=15, stateful_step_count=25, deadline=None, derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    assert totals["renewals"] > 0 and totals["leave"] > 0
