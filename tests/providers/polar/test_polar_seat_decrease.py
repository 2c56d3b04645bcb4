"""Polar's side of ``"at_period_end"``: the decrease is Polar's own ``next_period`` update."""

from __future__ import annotations

from typing import Any

from tests.helpers import ledger_rows
from tests.providers.polar.conftest import AppFactory, PolarWorld, seat_writes, subscribe


def test_a_removal_is_sent_as_a_next_period_update(
    make_app: AppFactory, polar: PolarWorld
) -> None:
    t = make_app({"SEAT_BILLING_SEAT_DECREASE": "at_period_end"})
    with t.app.app_context():
        org = t.add_organization()
        members: list[Any] = t.add_members(org.id, 3)
        sub = subscribe(t, polar, org.id)

        t.db.session.delete(members[0])
        t.db.session.commit()
        t.billing.sync_organization(org.id)  # Polar already holds it: nothing more is sent

        [write] = seat_writes(polar)
        assert write.params == {"seats": 2, "proration_behavior": "next_period"}
        assert polar.api.seats(sub) == 3
        pending = polar.api.subscription(sub)["pending_update"]
        assert pending["seats"] == 2
        [row] = ledger_rows(t)
        assert (row["from_seats"], row["to_seats"], row["reason"], row["proration_behavior"]) == (
            3, 2, "period_end", "next_period")

        polar.api.renew_subscription(sub)
        assert polar.api.seats(sub) == 2


def test_an_addition_after_a_waiting_decrease_is_billed_now(
    make_app: AppFactory, polar: PolarWorld
) -> None:
    t = make_app({"SEAT_BILLING_SEAT_DECREASE": "at_period_end"})
    with t.app.app_context():
        org = t.add_organization()
        members: list[Any] = t.add_members(org.id, 3)
        sub = subscribe(t, polar, org.id)
        t.db.session.delete(members[0])
        t.db.session.commit()

        t.add_members(org.id, 2)

        assert seat_writes(polar)[-1].params == {"seats": 4, "proration_behavior": "prorate"}
        assert polar.api.subscription(sub)["pending_update"] is None
        assert polar.api.seats(sub) == 4


def test_the_renewal_applying_our_decrease_is_not_an_observed_change_before_a_write(
    make_app: AppFactory, polar: PolarWorld
) -> None:
    """After the renewal applied the ``next_period`` decrease, a pass that reads before its
    write (here: the previous write was answered with a 500) finds fewer seats than the local
    copy. That step is our own decrease, already in the ledger: no ``observed`` row for it."""
    t = make_app({"SEAT_BILLING_SEAT_DECREASE": "at_period_end",
                  "SEAT_BILLING_SYNC_MODE": "manual"})
    with t.app.app_context():
        org = t.add_organization()
        members: list[Any] = t.add_members(org.id, 3)
        sub = subscribe(t, polar, org.id)
        t.db.session.delete(members[0])
        t.db.session.commit()
        t.billing.sync_organization(org.id)  # 3 -> 2 at the renewal
        polar.api.renew_subscription(sub)
        t.add_members(org.id, 2)
        polar.api.faults.fail_next(1, status=500, path_prefix="/v1/subscriptions/",
                                   method="PATCH")
        assert t.billing.sync_organization(org.id).action == "retrying"

        assert t.billing.sync_organization(org.id).action == "updated"

        assert polar.api.seats(sub) == 4
        assert [(r["from_seats"], r["to_seats"], r["reason"]) for r in ledger_rows(t)] == [
            (3, 2, "period_end"), (2, 4, "manual")]
