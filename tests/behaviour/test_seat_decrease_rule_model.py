"""The ``"at_period_end"`` rule, model-based, on every provider (the ``provider`` fixture).

Stripe lowers the quantity itself (a ``scheduled`` outbox row sent just before the renewal);
Polar holds the decrease natively (``proration_behavior="next_period"``, its
``pending_update``). Hypothesis drives two subscribed organizations in manual sync mode, with
joins, leaves, failed writes, drains and time moved inside the period and across the renewal
(``advance_time``, whose clock the app reads too). After each settle:

- inside a period the quantity never goes down: it is at least the billable count and at least
  what it was at the previous settle, and no higher than the most seats used since then;
- every decrease in the ledger is a ``period_end`` one;
- after each renewal the quantity equals the billable count as it stood before the period's
  end, and nothing stays scheduled.

tests/behaviour/test_seat_decrease_model.py checks Stripe's renewal invoices and idempotency keys
besides.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.apps import build_app, teardown_app
from tests.behaviour.conftest import World
from tests.helpers import ledger_rows, outbox_rows

CONFIG = {
    "SEAT_BILLING_SYNC_MODE": "manual",
    "SEAT_BILLING_SEAT_DECREASE": "at_period_end",
    "SEAT_BILLING_STRIPE_MAX_NETWORK_RETRIES": 0,
    "SEAT_BILLING_RETRY_BASE_SECONDS": 0.01,
    "SEAT_BILLING_RETRY_MAX_SECONDS": 0.05,
}
MARGIN = timedelta(hours=1)


def _naive(value: Any) -> datetime:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc).replace(tzinfo=None)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert isinstance(value, datetime)
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def _provider_period_end(provider: World, sub: str) -> datetime:
    """The seat's current period end as the provider holds it (Stripe: the seat item's)."""
    remote = provider.stand_in.subscription(sub)
    if provider.name == "stripe":
        return _naive(int(remote["items"]["data"][0]["current_period_end"]))
    return _naive(remote["current_period_end"])


def test_period_end_rule_model(provider: World, database_url: str) -> None:
    totals: Counter[str] = Counter()
    stand_in = provider.stand_in

    class PeriodMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            provider.reset()
            self.t = build_app(database_url, clock=stand_in.clock, products=provider.products,
                               config={**provider.app_config(), **CONFIG})
            self.ctx = self.t.app.app_context()
            self.ctx.push()
            self.orgs = [self.t.add_organization(f"org{i}").id for i in range(2)]
            self.subs: dict[Any, str] = {}
            self.settled: dict[Any, int] = {}  # quantity at the previous settle, this period
            self.peak: dict[Any, int] = {}  # most seats used since the previous settle
            for org in self.orgs:
                self.t.add_members(org, 2)
                self.subs[org] = provider.subscribe(self.t, org)
                self.settled[org] = self.peak[org] = 2
            totals["examples"] += 1

        def _billable(self, org: Any) -> int:
            return self.t.billing.billable_seats(org)

        def _seats(self, org: Any) -> int:
            return provider.seats(self.subs[org])

        def _period_end(self) -> datetime:
            return min(_provider_period_end(provider, s) for s in self.subs.values())

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

        @rule()
        def failed_write_then_drain(self) -> None:
            provider.fail_seat_writes(1, status=500)
            self.drain_once()
            totals["faults"] += 1

        @rule()
        def drain_once(self) -> None:
            self.t.billing.sync_pending()
            totals["drains"] += 1

        @rule(hours=st.integers(1, 96))
        def time_passes(self, hours: int) -> None:
            """Time inside the period, stopping short of the last hour before its end."""
            room = self._period_end() - MARGIN - stand_in.clock() - timedelta(minutes=1)
            step = min(timedelta(hours=hours), room)
            if step > timedelta(0):
                stand_in.advance_time(step.total_seconds())
                totals["time_passes"] += 1

        @rule()
        def settle(self) -> None:
            stand_in.faults.clear()
            deadline = time.monotonic() + 10
            while any(r["status"] == "pending" for r in outbox_rows(self.t)):
                assert time.monotonic() < deadline, outbox_rows(self.t)
                for org in self.orgs:
                    self.t.billing.sync_organization(org)
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
            """Into the last hour (Stripe sends the lowering then), then across the end."""
            self.settle()
            end = self._period_end()
            stand_in.advance_time((end - MARGIN / 2 - stand_in.clock()).total_seconds())
            self.settle()
            self.t.billing.sync_pending()  # Stripe's scheduled decreases are due now
            expected = {org: self._billable(org) for org in self.orgs}
            stand_in.advance_time((end + timedelta(minutes=1) - stand_in.clock()).total_seconds())
            for org in self.orgs:
                assert self._seats(org) == expected[org]
                self.settled[org] = self.peak[org] = expected[org]
            assert [r for r in outbox_rows(self.t) if r["status"] == "scheduled"] == []
            totals["renewals"] += 1

        @invariant()
        def only_period_end_decreases(self) -> None:
            lowered = [r for r in ledger_rows(self.t) if r["from_seats"] is not None
                       and r["to_seats"] < r["from_seats"]]
            assert all(r["reason"] == "period_end" for r in lowered), [
                (r["organization_key"], r["reason"], r["from_seats"], r["to_seats"],
                 r["proration_behavior"]) for r in ledger_rows(self.t)]

        def teardown(self) -> None:
            try:
                self.settle()
            finally:
                stand_in.faults.clear()
                self.ctx.pop()
                teardown_app(self.t)

    run_state_machine_as_test(PeriodMachine, settings=settings(
        max_examples=10, stateful_step_count=20, deadline=None, derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    assert totals["renewals"] > 0 and totals["leave"] > 0 and totals["faults"] > 0
