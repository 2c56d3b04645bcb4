"""``SEAT_BILLING_SEAT_DECREASE = "at_period_end"``: pay for the most seats used this period.

On every provider: additions are billed at once, removals never lower the quantity inside the
period, the renewal bills the billable count, and a member removed and re-added in one period
costs nothing. The provider's clock is moved with the stand-in's ``advance_time`` (a Stripe
test clock's advance), and the app reads the same clock (``init_app(clock=...)``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from flask_seat_billing import signals
from tests.apps import AppUnderTest
from tests.behaviour.conftest import World
from tests.helpers import ledger_rows, outbox_rows

AT_PERIOD_END = {"SEAT_BILLING_SEAT_DECREASE": "at_period_end"}
MARGIN = timedelta(hours=1)  # SEAT_BILLING_SEAT_DECREASE_MARGIN_SECONDS' default


def _app(provider: World, config: dict[str, Any] | None = None, **options: Any) -> AppUnderTest:
    return provider.make_app(
        {**AT_PERIOD_END, **(config or {})}, clock=provider.stand_in.clock, **options
    )


def _remove(t: AppUnderTest, member: Any) -> None:
    t.db.session.delete(member)
    t.db.session.commit()


def _period_end(t: AppUnderTest, org_id: Any) -> datetime:
    local = t.billing.subscription_for(org_id)
    assert local is not None and local.current_period_end is not None
    return local.current_period_end


def _advance_to(provider: World, when: datetime) -> None:
    seconds = (when - provider.stand_in.clock()).total_seconds()
    assert seconds > 0
    provider.stand_in.advance_time(seconds)


def test_a_removal_keeps_the_seats_until_the_renewal_bills_fewer(provider: World) -> None:
    for web in provider.serve(AT_PERIOD_END, clock=provider.stand_in.clock):
        t = web.t
        org = t.add_organization()
        members = t.add_members(org.id, 3)
        sub = provider.subscribe(t, org.id)

        _remove(t, members[0])

        assert provider.seats(sub) == 3  # no credit inside the period
        pending = t.billing.pending_seat_decrease(org.id)
        assert pending is not None
        assert (pending.seats_now, pending.seats_from_next_period) == (3, 2)
        end = _period_end(t, org.id)
        assert pending.takes_effect_at == end

        _advance_to(provider, end - MARGIN - timedelta(minutes=5))
        t.billing.sync_pending()
        assert provider.seats(sub) == 3  # not due yet

        _advance_to(provider, end - MARGIN + timedelta(minutes=5))
        t.billing.sync_pending()
        _advance_to(provider, end + timedelta(minutes=5))  # the renewal
        provider.delivered()

        assert provider.seats(sub) == 2
        assert t.billing.pending_seat_decrease(org.id) is None
        assert outbox_rows(t) == []
        assert [(r["from_seats"], r["to_seats"], r["reason"]) for r in ledger_rows(t)] == [
            (3, 2, "period_end")
        ]


def test_a_member_removed_and_readded_in_one_period_costs_nothing(provider: World) -> None:
    t = _app(provider)
    with t.app.app_context():
        org = t.add_organization()
        members = t.add_members(org.id, 3)
        sub = provider.subscribe(t, org.id)

        _remove(t, members[0])
        t.add_members(org.id, 1)

        assert provider.seats(sub) == 3
        assert t.billing.pending_seat_decrease(org.id) is None
        # Nothing was billed: no write raised the quantity above the period's maximum.
        assert all(r["to_seats"] <= 3 for r in ledger_rows(t))
        _advance_to(provider, _period_end(t, org.id) + timedelta(minutes=5))
        t.billing.sync_pending()
        assert provider.seats(sub) == 3


def test_additions_are_billed_at_once_and_drop_a_waiting_decrease(provider: World) -> None:
    t = _app(provider)
    with t.app.app_context():
        org = t.add_organization()
        members = t.add_members(org.id, 3)
        sub = provider.subscribe(t, org.id)

        _remove(t, members[0])
        t.add_members(org.id, 2)

        assert provider.seats(sub) == 4
        assert t.billing.pending_seat_decrease(org.id) is None
        _advance_to(provider, _period_end(t, org.id) + timedelta(minutes=5))
        t.billing.sync_pending()
        assert provider.seats(sub) == 4


def test_a_plan_can_choose_period_end_decreases_alone(provider: World) -> None:
    products = [
        replace(product, plans=[replace(plan, seat_decrease="at_period_end")
                                for plan in product.plans])
        for product in provider.products
    ]
    t = provider.make_app(clock=provider.stand_in.clock, products=products)
    with t.app.app_context():
        org = t.add_organization()
        members = t.add_members(org.id, 2)
        sub = provider.subscribe(t, org.id)

        _remove(t, members[0])

        assert provider.seats(sub) == 2
        assert t.billing.pending_seat_decrease(org.id) is not None


def test_immediately_stays_the_default(t: AppUnderTest, provider: World) -> None:
    org = t.add_organization()
    members = t.add_members(org.id, 3)
    sub = provider.subscribe(t, org.id)

    _remove(t, members[0])

    assert provider.seats(sub) == 2
    assert t.billing.pending_seat_decrease(org.id) is None


def test_preview_of_a_decrease_says_nothing_is_due_and_when_it_lands(provider: World) -> None:
    t = _app(provider)
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 3)
        provider.subscribe(t, org.id)
        requests_before = len(provider.stand_in.requests)

        preview = t.billing.preview_seat_change(org.id, 1)

        assert (preview.from_seats, preview.to_seats, preview.amount_due_now) == (3, 3, 0)
        assert preview.seats_from_next_period == 1
        assert preview.takes_effect_at == _period_end(t, org.id)
        assert len(provider.stand_in.requests) == requests_before  # nothing to ask the provider


def test_the_waiting_decrease_is_signalled_once(provider: World) -> None:
    t = _app(provider)
    seen: list[dict[str, Any]] = []

    def receiver(app: Any, **kw: Any) -> None:
        seen.append(kw)

    signals.seat_decrease_scheduled.connect(receiver, weak=False)
    try:
        with t.app.app_context():
            org = t.add_organization()
            members = t.add_members(org.id, 3)
            provider.subscribe(t, org.id)
            _remove(t, members[0])
            t.billing.sync_organization(org.id)  # a second pass finds the same decrease
    finally:
        signals.seat_decrease_scheduled.disconnect(receiver)

    assert [(s["organization_id"], s["seats_now"], s["seats_from_next_period"]) for s in seen] == [
        (org.id, 3, 2)
    ]
    assert seen[0]["takes_effect_at"] is not None


def test_status_shows_the_seats_from_the_next_period(provider: World) -> None:
    t = _app(provider)
    with t.app.app_context():
        org = t.add_organization()
        members = t.add_members(org.id, 3)
        provider.subscribe(t, org.id)
        _remove(t, members[0])
        end = _period_end(t, org.id)

    result = t.app.test_cli_runner().invoke(args=["seats", "status"])

    assert result.exit_code == 0, result.output
    assert f"3->2 from {end:%Y-%m-%d %H:%M}" in result.output


def test_resync_leaves_a_waiting_decrease_waiting(provider: World) -> None:
    t = _app(provider, {"SEAT_BILLING_SYNC_MODE": "manual"})
    with t.app.app_context():
        org_id = t.add_organization().id
        members = t.add_members(org_id, 3)
        sub = provider.subscribe(t, org_id)
        _remove(t, members[0])

    first = t.app.test_cli_runner().invoke(args=["seats", "resync", "--json"])
    writes = len(provider.seat_writes())
    second = t.app.test_cli_runner().invoke(args=["seats", "resync", "--json"])

    assert (first.exit_code, second.exit_code) == (0, 0), first.output + second.output
    assert provider.seats(sub) == 3
    assert len(provider.seat_writes()) == writes  # the second run sends nothing
    with t.app.app_context():
        pending = t.billing.pending_seat_decrease(org_id)
    assert pending is not None and pending.seats_from_next_period == 2


def test_a_decrease_no_sync_sent_before_the_renewal_is_credited_after_it(
    provider: World,
) -> None:
    """No worker ran from the removal until after the renewal: the renewal billed a seat no
    longer used. The next sync lowers the quantity with the plan's proration (a credit), not
    for the end of the new period, on both providers."""
    t = _app(provider, {"SEAT_BILLING_SYNC_MODE": "manual"})
    with t.app.app_context():
        org = t.add_organization()
        members = t.add_members(org.id, 4)
        sub = provider.subscribe(t, org.id)
        t.billing.sync_pending()
        _remove(t, members[0])  # owed from this period, never sent
        _advance_to(provider, _period_end(t, org.id) + timedelta(minutes=5))  # the renewal
        assert provider.seats(sub) == 4  # what it billed

        t.billing.sync_pending()

        assert provider.seats(sub) == 3
        last = ledger_rows(t)[-1]
        assert (last["from_seats"], last["to_seats"], last["reason"]) == (4, 3, "period_end")
        assert last["proration_behavior"] not in ("none", "next_period")
        assert t.billing.pending_seat_decrease(org.id) is None
        assert outbox_rows(t) == []


def _subscription_reads(provider: World, sub: str) -> int:
    return sum(1 for r in provider.stand_in.requests.all()
               if r.method == "GET" and r.path.rstrip("/").endswith(sub))


def test_events_while_a_decrease_waits_are_not_drift_to_correct(provider: World) -> None:
    """``SEAT_BILLING_EXTERNAL_CHANGE = "correct"``: while a decrease waits for the renewal the
    provider bills more seats than are billable, as the rule wants. An event about the
    subscription (any update: a payment method, metadata) must not queue a "correction" that
    re-marks the waiting decrease, re-reads, or announces it again; a real change made in the
    dashboard is still corrected."""
    config = {**AT_PERIOD_END, "SEAT_BILLING_EXTERNAL_CHANGE": "correct"}
    announced: list[dict[str, Any]] = []

    def receiver(app: Any, **kw: Any) -> None:
        announced.append(kw)

    signals.seat_decrease_scheduled.connect(receiver, weak=False)
    try:
        for web in provider.serve(config, clock=provider.stand_in.clock):
            t = web.t
            org = t.add_organization()
            members = t.add_members(org.id, 3)
            sub = provider.subscribe(t, org.id)
            provider.delivered()
            _remove(t, members[0])
            provider.delivered()  # Polar: the event of its own next_period write
            waiting = outbox_rows(t)
            writes, ledger = len(provider.seat_writes()), ledger_rows(t)
            reads = _subscription_reads(provider, sub)
            updated = provider.stand_in.event_types["updated"]

            for i in range(3):
                body = provider.dialect.event_body(f"evt_waiting_{i}", updated, sub)
                answer = provider.post_event(web, body, event_id=f"evt_waiting_{i}")
                assert answer.status == provider.dialect.webhook_ok

            assert outbox_rows(t) == waiting  # not re-marked (same generation, same status)
            assert _subscription_reads(provider, sub) - reads == 3  # each event's re-fetch only
            assert len(provider.seat_writes()) == writes
            assert ledger_rows(t) == ledger
            assert len(announced) == 1
            pending = t.billing.pending_seat_decrease(org.id)
            assert pending is not None
            assert (pending.seats_now, pending.seats_from_next_period) == (3, 2)

            # The dashboard sets fewer seats than are billable: that is drift, corrected now.
            provider.stand_in.set_seats(sub, 1)
            provider.delivered()
            assert provider.seats(sub) == 2
    finally:
        signals.seat_decrease_scheduled.disconnect(receiver)


def test_marks_that_leave_the_target_alone_keep_the_waiting_decrease_shown_and_quiet(
    provider: World,
) -> None:
    """A member joins and another leaves before the next pass: the row is marked (pending)
    twice, and the decrease still waits for the same seats. Status and the API keep showing it
    meanwhile, and the pass that schedules it again does not announce it a second time."""
    t = _app(provider, {"SEAT_BILLING_SYNC_MODE": "manual"})
    announced: list[dict[str, Any]] = []

    def receiver(app: Any, **kw: Any) -> None:
        announced.append(kw)

    signals.seat_decrease_scheduled.connect(receiver, weak=False)
    try:
        with t.app.app_context():
            org = t.add_organization()
            members = t.add_members(org.id, 3)
            sub = provider.subscribe(t, org.id)
            _remove(t, members[0])
            t.billing.sync_organization(org.id)
            assert len(announced) == 1

            t.add_members(org.id, 1)
            _remove(t, members[1])

            pending = t.billing.pending_seat_decrease(org.id)
            assert pending is not None
            assert (pending.seats_now, pending.seats_from_next_period) == (3, 2)
            end = _period_end(t, org.id)
            status = t.app.test_cli_runner().invoke(args=["seats", "status"])
            assert f"3->2 from {end:%Y-%m-%d %H:%M}" in status.output, status.output

            t.billing.sync_organization(org.id)

            assert provider.seats(sub) == 3
            assert len(announced) == 1
            pending = t.billing.pending_seat_decrease(org.id)
            assert pending is not None and pending.seats_from_next_period == 2
    finally:
        signals.seat_decrease_scheduled.disconnect(receiver)


def test_an_addition_owed_across_the_renewal_does_not_credit_later_removals(
    provider: World,
) -> None:
    """A member joined before the renewal and no sync ran; two left after it. No decrease was
    owed at the renewal (it billed fewer seats than were in use), so the removals are this
    period's: the quantity stays, and the decrease waits for the period's end."""
    t = _app(provider, {"SEAT_BILLING_SYNC_MODE": "manual"})
    with t.app.app_context():
        org = t.add_organization()
        members = t.add_members(org.id, 4)
        sub = provider.subscribe(t, org.id)
        t.billing.sync_pending()
        t.add_members(org.id, 1)  # owed from this period, never sent
        _advance_to(provider, _period_end(t, org.id) + timedelta(minutes=5))  # the renewal
        _remove(t, members[0])
        _remove(t, members[1])

        t.billing.sync_pending()

        assert provider.seats(sub) == 4
        assert not [r for r in ledger_rows(t) if r["proration_behavior"] not in (
            None, "none", "next_period") and r["to_seats"] < r["from_seats"]]
        end = provider.stand_in.current_period_end(sub)
        _advance_to(provider, end - MARGIN / 2)
        t.billing.sync_pending()  # Stripe's lowering is due in the last hour
        _advance_to(provider, end + timedelta(minutes=5))
        assert provider.seats(sub) == 3  # lowered for the next renewal, not credited now
