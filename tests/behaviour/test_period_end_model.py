"""The ``"at_period_end"`` rule as a model-based test, on every provider.

Hypothesis drives two subscribed organizations in manual sync mode with joins, leaves, faults,
drains and the provider's clock (the app reads the same clock): time inside the period, a
renewal the engine is ready for (a drain in the last hour before the period's end, as a running
worker would make), and a renewal nobody synced for (no worker ran across it, and members may
leave before the next sync). Stripe lowers the seat item itself in the last hour; Polar holds a
``next_period`` update. The rules, the same for both:

- inside a period the quantity never goes down: after each settle it is at least the billable
  count and at least what it was at the previous settle, and no higher than the most seats used
  since then; every decrease in the ledger is a ``period_end`` one;
- a renewal the engine was ready for bills the billable count as it stood before the period's
  end;
- after a renewal nobody synced for, the next settle bills no more than the seats used at the
  renewal (what the renewal billed in excess is credited, not held for another period) and no
  less than the billable count; where members also left after the renewal, before that settle,
  no more than the renewal billed (the decreases may wait for the period's end: README).

Stripe's renewal invoices are checked line by line in
``tests/providers/stripe/test_stripe_seat_decrease.py``.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.apps import build_app
from tests.behaviour.chaos.invariants import database_kind, key_reuse, write_summary
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
NOT_BILLED_NOW = ("none", "next_period")  # prorations that bill or credit nothing today


def test_period_end_rule_model(provider: World, database_url: str) -> None:
    totals: Counter[str] = Counter()
    s = provider.stand_in

    class PeriodMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            provider.reset()
            self.t = build_app(database_url, clock=s.clock, products=provider.products,
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
            return min(s.current_period_end(sub) for sub in self.subs.values())

        def _live(self, org: Any) -> list[Any]:
            M = self.t.Membership
            return list(M.query.filter(M.organization_id == org, M.deleted_at.is_(None)).all())

        def _cross(self, end: datetime) -> None:
            s.advance_time((end + timedelta(minutes=1) - s.clock()).total_seconds())

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
            prefix = provider.dialect.subscription_prefix
            if status == 429:
                s.faults.rate_limit_next(1, retry_after=0.01, path_prefix=prefix)
            else:
                s.faults.fail_next(1, status=status, path_prefix=prefix)
            self.drain_once()
            totals[f"fault_{status}"] += 1

        @rule()
        def drain_once(self) -> None:
            self.t.billing.sync_pending()
            totals["drains"] += 1

        @rule(hours=st.integers(1, 96))
        def time_passes(self, hours: int) -> None:
            """Time inside the period, stopping short of the last hour before its end."""
            room = self._period_end() - MARGIN - s.clock() - timedelta(minutes=1)
            step = min(timedelta(hours=hours), room)
            if step > timedelta(0):
                s.advance_time(step.total_seconds())
                totals["time_passes"] += 1

        @rule()
        def settle(self) -> None:
            s.faults.clear()
            deadline = time.monotonic() + 10
            while any(r["status"] == "pending" for r in outbox_rows(self.t)):
                assert time.monotonic() < deadline, outbox_rows(self.t)
                self.t.billing.sync_pending()
                time.sleep(0.02)
            for org in self.orgs:
                seats, billable = self._seats(org), self._billable(org)
                seen = (org, seats, billable, self.settled[org], self.peak[org])
                assert seats >= billable, seen
                assert seats >= self.settled[org], (seen, ledger_rows(self.t))
                assert seats <= max(self.settled[org], self.peak[org]), seen
                self.settled[org] = self.peak[org] = seats
            totals["settles"] += 1

        @rule()
        def renewal(self) -> None:
            """Into the last hour (a drain, as a running worker makes), then across the end."""
            self.settle()
            end = self._period_end()
            s.advance_time((end - MARGIN / 2 - s.clock()).total_seconds())
            self.settle()
            self.t.billing.sync_pending()  # Stripe's scheduled lowerings are due now
            expected = {org: self._billable(org) for org in self.orgs}
            self._cross(end)
            for org in self.orgs:
                assert self._seats(org) == expected[org]
                self.settled[org] = self.peak[org] = expected[org]
            totals["renewals"] += 1

        @rule(before=st.integers(0, 1), after=st.integers(0, 1), data=st.data())
        def renewal_missed(self, before: int, after: int, data: st.DataObject) -> None:
            """No sync from some time in the period until after its end: members may leave
            before the end (nothing sent) and after the renewal, before the next sync."""
            self.settle()
            for _ in range(before):
                self.leave(data.draw(st.integers(0, 1)), data)
            used = {org: self._billable(org) for org in self.orgs}  # what the renewal should bill
            self._cross(self._period_end())
            billed = {org: self._seats(org) for org in self.orgs}  # what it billed
            before_leaves = {org: self._billable(org) for org in self.orgs}
            for _ in range(after):
                self.leave(data.draw(st.integers(0, 1)), data)
            changed_after = {org: self._billable(org) != before_leaves[org]
                             for org in self.orgs}
            s.faults.clear()
            deadline = time.monotonic() + 10
            while any(r["status"] == "pending" or r["next_attempt_at"] <= s.clock()
                      for r in outbox_rows(self.t)):
                assert time.monotonic() < deadline, outbox_rows(self.t)
                self.t.billing.sync_pending()
                time.sleep(0.02)
            for org in self.orgs:
                seats, billable = self._seats(org), self._billable(org)
                if changed_after[org]:
                    # Members left after the renewal too: unless a decrease was already
                    # scheduled before it, the library cannot tell which removals came first,
                    # and all of them wait for this period's end (README).
                    assert billable <= seats <= billed[org], (org, billed[org], seats)
                    self.settled[org] = self.peak[org] = seats
                    continue
                assert billable <= seats <= used[org], (org, billed[org], used[org], seats)
                if used[org] < billed[org]:
                    lowered = [r for r in ledger_rows(self.t)
                               if r["provider_subscription_id"] == self.subs[org]][-1]
                    assert lowered["proration_behavior"] not in NOT_BILLED_NOW, lowered
                    totals["credited_after_missed_renewal"] += 1
                self.settled[org] = self.peak[org] = seats
            totals["missed_renewals"] += 1

        @invariant()
        def only_period_end_decreases(self) -> None:
            lowered = [r for r in ledger_rows(self.t) if r["from_seats"] is not None
                       and r["to_seats"] < r["from_seats"]]
            assert all(r["reason"] == "period_end" for r in lowered), "\n".join(
                str((r["organization_key"], r["from_seats"], r["to_seats"], r["reason"],
                     r["proration_behavior"], str(r["created_at"])))
                for r in ledger_rows(self.t))
            assert key_reuse(s, provider.dialect) == {}

        def teardown(self) -> None:
            try:
                self.settle()
            finally:
                s.requests.clear()
                self.t.db.session.remove()
                self.t.db.drop_all()
                self.t.db.engine.dispose()
                self.ctx.pop()

    started = time.monotonic()
    run_state_machine_as_test(PeriodMachine, settings=settings(
        max_examples=15, stateful_step_count=25, deadline=None, derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    write_summary("period_end_model", provider.name, {
        "database": database_kind(database_url), **dict(totals),
        "seconds": round(time.monotonic() - started, 1)})
    assert totals["renewals"] > 0 and totals["missed_renewals"] > 0 and totals["leave"] > 0
