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
from tests.helpers import outbox_rows, seat_writes

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
