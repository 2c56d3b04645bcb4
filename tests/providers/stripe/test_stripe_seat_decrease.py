"""Stripe's side of ``"at_period_end"``: the engine itself lowers the seat item before renewal.

Stripe has no pending quantity for an item, so the outbox row waits (``scheduled``) until the
period's end minus the margin and is sent then with ``proration_behavior="none"``. What the
customer sees is the renewal invoice: it must bill the lowered quantity, with no credit line for
the removed seats. The stand-in's clock is moved like a Stripe test clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.apps import PRO_MONTHLY, SEAT_PRICE, AppUnderTest
from tests.conftest import AppFactory, subscribe
from tests.helpers import ledger_rows, outbox_rows, seat_writes
from tests.web_helpers import WEBHOOK_SECRET, allow_own_organization, serve

AT_PERIOD_END = {"SEAT_BILLING_SEAT_DECREASE": "at_period_end"}


def _app(make_app: AppFactory, stripe: Any) -> AppUnderTest:
    return make_app(AT_PERIOD_END, clock=stripe.clock)


def _advance_to(stripe: Any, when: datetime) -> None:
    stripe.advance_time((when - stripe.clock()).total_seconds())


def _renewal_seat_quantity(stripe: Any, sub: str) -> int:
    invoice = [i for i in stripe.invoices(sub) if i["billing_reason"] == "subscription_cycle"][-1]
    [line] = [ln for ln in invoice["lines"]["data"]
              if ln["pricing"]["price_details"]["price"] == SEAT_PRICE
              and not ln["parent"]["subscription_item_details"]["proration"]]
    return int(line["quantity"])


SEAT_AMOUNT = 1000  # the seat price's unit amount (tests/conftest.py)


def _period_end(t: AppUnderTest, org_id: Any) -> datetime:
    local = t.billing.subscription_for(org_id)
    assert local is not None and local.current_period_end is not None
    return local.current_period_end


def _remove_one(t: AppUnderTest, members: list[Any]) -> None:
    t.db.session.delete(members.pop())
    t.db.session.commit()


def test_the_renewal_invoice_bills_the_lowered_quantity_without_a_credit(
    make_app: AppFactory, stripe: Any
) -> None:
    t = _app(make_app, stripe)
    with t.app.app_context():
        org = t.add_organization()
        members = t.add_members(org.id, 4)
        sub = subscribe(t, stripe, org.id)
        _remove_one(t, members)
        [row] = outbox_rows(t)
        local = t.billing.subscription_for(org.id)
        assert local is not None and local.current_period_end is not None
        end = local.current_period_end
        assert row["status"] == "scheduled" and row["target_seats"] == 3
        assert row["next_attempt_at"] == end - timedelta(hours=1)
        assert seat_writes(stripe) == []

        _advance_to(stripe, end - timedelta(minutes=30))
        [result] = t.billing.sync_pending()
        _advance_to(stripe, end + timedelta(minutes=1))

    assert result.action == "updated" and result.to_seats == 3
    [write] = seat_writes(stripe)
    assert write.params["proration_behavior"] == "none"
    assert stripe.seats(sub, PRO_MONTHLY) == 3
    assert _renewal_seat_quantity(stripe, sub) == 3
    assert not [i for i in stripe.invoice_items(sub) if i["amount"] < 0]  # nothing credited


def test_a_decrease_inside_the_margin_is_sent_at_once_without_credit(
    make_app: AppFactory, stripe: Any
) -> None:
    t = _app(make_app, stripe)
    with t.app.app_context():
        org = t.add_organization()
        members = t.add_members(org.id, 3)
        sub = subscribe(t, stripe, org.id)
        local = t.billing.subscription_for(org.id)
        assert local is not None and local.current_period_end is not None
        _advance_to(stripe, local.current_period_end - timedelta(minutes=10))

        _remove_one(t, members)

    assert stripe.seats(sub, PRO_MONTHLY) == 2
    [write] = seat_writes(stripe)
    assert write.params["proration_behavior"] == "none"


def test_a_missed_boundary_credits_what_the_renewal_billed_in_excess(
    make_app: AppFactory, stripe: Any
) -> None:
    t = _app(make_app, stripe)
    with t.app.app_context():
        org = t.add_organization()
        members = t.add_members(org.id, 3)
        sub = subscribe(t, stripe, org.id)
        _remove_one(t, members)
        local = t.billing.subscription_for(org.id)
        assert local is not None and local.current_period_end is not None
        # No worker ran until after the renewal: it billed 3 seats for the new period.
        _advance_to(stripe, local.current_period_end + timedelta(hours=2))
        assert _renewal_seat_quantity(stripe, sub) == 3

        [result] = t.billing.sync_pending()

    assert result.action == "updated" and result.to_seats == 2
    [write] = seat_writes(stripe)
    assert write.params["proration_behavior"] == "create_prorations"
    assert [i for i in stripe.invoice_items(sub, pending=True) if i["amount"] < 0]


def test_a_decrease_is_scheduled_from_the_local_copy_and_lowered_with_one_request(
    make_app: AppFactory, stripe: Any
) -> None:
    """Issue 16's fast path holds for the rule: the copy carries the item's period, so waiting
    sends nothing and the lowering at the boundary is the write alone (no read first)."""
    t = _app(make_app, stripe)
    with t.app.app_context():
        org = t.add_organization()
        members = t.add_members(org.id, 4)
        sub = subscribe(t, stripe, org.id)
        local = t.billing.subscription_for(org.id)
        assert local is not None and local.current_period_end is not None
        before = len(stripe.requests.all())

        _remove_one(t, members)
        assert stripe.requests.all()[before:] == []
        [row] = outbox_rows(t)
        assert row["status"] == "scheduled" and row["target_seats"] == 3

        _advance_to(stripe, local.current_period_end - timedelta(minutes=30))
        [result] = t.billing.sync_pending()
        sent = stripe.requests.all()[before:]
        assert outbox_rows(t) == []

    assert result.action == "updated" and result.to_seats == 3
    assert [(r.method, r.path.split("/")[2]) for r in sent] == [("POST", "subscription_items")]
    [write] = seat_writes(stripe)
    assert write.params["proration_behavior"] == "none"
    assert stripe.seats(sub, PRO_MONTHLY) == 3


def _credits(stripe: Any, sub: str) -> list[dict[str, Any]]:
    """The proration credits waiting for the next invoice."""
    return [i for i in stripe.invoice_items(sub, pending=True) if i["amount"] < 0]


def test_a_missed_boundary_is_credited_after_a_member_change_before_any_sync(
    make_app: AppFactory, stripe: Any
) -> None:
    """The boundary passes unseen, then a member leaves: that change's own pass is the first
    after the renewal. The mark makes the row pending again; the decrease still owed from the
    last period must not turn into a new wait for this period's end."""
    t = _app(make_app, stripe)
    with t.app.app_context():
        t.billing.stop_worker()
        org = t.add_organization()
        members = t.add_members(org.id, 4)
        sub = subscribe(t, stripe, org.id)
        _remove_one(t, members)  # 4 -> 3, waits for the period's end
        end = _period_end(t, org.id)
        _advance_to(stripe, end + timedelta(hours=2))
        assert _renewal_seat_quantity(stripe, sub) == 4  # billed in excess

        _remove_one(t, members)  # 3 -> 2: a mark, then its sync
        t.billing.sync_pending()

        assert outbox_rows(t) == []
        assert t.billing.pending_seat_decrease(org.id) is None

    assert stripe.seats(sub, PRO_MONTHLY) == 2
    [write] = seat_writes(stripe)
    assert write.params["proration_behavior"] == "create_prorations"
    assert write.params["quantity"] == "2"
    [credit] = _credits(stripe, sub)
    assert credit["quantity"] == 2  # the two seats the renewal billed in excess, prorated
    # Two seats for the rest of the period the renewal billed (it began two hours ago).
    assert 2 * SEAT_AMOUNT * 0.98 < -credit["amount"] < 2 * SEAT_AMOUNT


def test_a_missed_boundary_is_credited_after_a_transient_failure(
    make_app: AppFactory, stripe: Any
) -> None:
    """The pass that finds the boundary missed fails (a 500): the row becomes pending with a
    retry time; the retry still credits the renewal's excess."""
    t = _app(make_app, stripe)
    with t.app.app_context():
        t.billing.stop_worker()
        org = t.add_organization()
        members = t.add_members(org.id, 3)
        sub = subscribe(t, stripe, org.id)
        _remove_one(t, members)  # 3 -> 2, waits
        end = _period_end(t, org.id)
        _advance_to(stripe, end + timedelta(hours=2))
        stripe.faults.fail_next(1, status=500, path_prefix="/v1/subscription_items",
                                method="POST")

        [failed] = t.billing.sync_pending()
        assert failed.action == "retrying"
        assert stripe.seats(sub, PRO_MONTHLY) == 3
        [row] = outbox_rows(t)
        assert row["status"] == "pending" and row["attempts"] == 1

        retried = t.billing.sync_organization(org.id)
        assert outbox_rows(t) == []

    assert retried.action == "updated" and retried.to_seats == 2
    assert stripe.seats(sub, PRO_MONTHLY) == 2
    [write] = seat_writes(stripe)
    assert write.params["proration_behavior"] == "create_prorations"
    [credit] = _credits(stripe, sub)
    assert credit["quantity"] == 1



def test_the_renewal_event_of_a_missed_boundary_gets_it_credited_when_correcting(
    make_app: AppFactory, stripe: Any
) -> None:
    """``SEAT_BILLING_EXTERNAL_CHANGE = "correct"``: the renewal's events arrive while the
    decrease is overdue. The quantity is then drift (owed now), and the correction it queues
    is the credited decrease, not a new wait for this period's end."""
    t = make_app({**AT_PERIOD_END, "SEAT_BILLING_EXTERNAL_CHANGE": "correct",
                  "SEAT_BILLING_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}, clock=stripe.clock)
    allow_own_organization(t)
    for served in serve(t):
        stripe.add_webhook_endpoint(served.webhook_url, WEBHOOK_SECRET)
        with t.app.app_context():
            t.billing.stop_worker()
            org = t.add_organization()
            members = t.add_members(org.id, 3)
            sub = subscribe(t, stripe, org.id)
            stripe.deliver_pending()
            _remove_one(t, members)  # 3 -> 2, waits
            _advance_to(stripe, _period_end(t, org.id) + timedelta(hours=2))
            assert _renewal_seat_quantity(stripe, sub) == 3

            deliveries = stripe.deliver_pending()
            assert deliveries and all(d.ok for d in deliveries)

            assert outbox_rows(t) == []
            assert [(r["from_seats"], r["to_seats"], r["proration_behavior"])
                    for r in ledger_rows(t)] == [(3, 2, "create_prorations")]
    assert stripe.seats(sub, PRO_MONTHLY) == 2
    [credit] = _credits(stripe, sub)
    assert credit["quantity"] == 1


def test_a_missed_boundary_is_credited_after_a_hold(make_app: AppFactory, stripe: Any) -> None:
    """After the unseen renewal the subscription is paused: the pass holds the row instead of
    writing. Once it is billable again the decrease is still owed from before the renewal, and
    credited."""
    t = _app(make_app, stripe)
    with t.app.app_context():
        t.billing.stop_worker()
        org = t.add_organization()
        members = t.add_members(org.id, 3)
        sub = subscribe(t, stripe, org.id)
        _remove_one(t, members)  # 3 -> 2, waits
        _advance_to(stripe, _period_end(t, org.id) + timedelta(hours=2))
        stripe.pause_subscription(sub)

        assert t.billing.sync_organization(org.id).action == "held"
        [row] = outbox_rows(t)
        assert row["status"] == "held"

        stripe.resume_subscription(sub)
        t.billing.link_subscription(org.id, sub)  # seen billable: the held change is released
        t.billing.sync_pending()

        assert outbox_rows(t) == []
    assert stripe.seats(sub, PRO_MONTHLY) == 2
    [write] = seat_writes(stripe)
    assert write.params["proration_behavior"] == "create_prorations"
    [credit] = _credits(stripe, sub)
    assert credit["quantity"] == 1
