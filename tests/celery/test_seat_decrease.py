"""A decrease waiting for the period's end (``"at_period_end"``) under Celery dispatch.

The task that handles the removal leaves the outbox row ``scheduled`` for the period's end minus
the margin; no ETA message waits in the broker for a whole period. Beat's sweep publishes the row
once it is due, and the task must sync it: a scheduled row is due work, not a duplicate.

The subscription is created with the stand-in's clock moved back, so that its period ends a
minute from now in real time: the worker processes read the real clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.apps import PRO_MONTHLY
from tests.celery.conftest import Cluster
from tests.conftest import AppFactory, subscribe
from tests.helpers import ledger_rows, outbox_rows, wait_for

MARGIN = 60.0  # seconds before the period's end that a waiting decrease is sent
LEAD = 12.0  # the decrease falls due this long after the test starts


def _outbox(t: Any) -> list[dict[str, Any]]:
    with t.app.app_context():
        return outbox_rows(t)


def _dispatcher(t: Any) -> Any:
    from flask_seat_billing.state import get_state

    with t.app.app_context():
        return get_state().dispatcher


def _period_length(stripe: Any, sub: str) -> float:
    item = stripe.subscription(sub)["items"]["data"][0]
    return float(item["current_period_end"] - item["current_period_start"])


def test_a_scheduled_decrease_is_swept_and_sent_when_due(
    make_celery_app: AppFactory, cluster: Cluster, stripe: Any
) -> None:
    t = make_celery_app({"SEAT_BILLING_SYNC_MODE": "inline",
                         "SEAT_BILLING_SEAT_DECREASE": "at_period_end",
                         "SEAT_BILLING_SEAT_DECREASE_MARGIN_SECONDS": MARGIN})
    with t.app.app_context():
        probe_org = t.add_organization("probe").id
        t.add_members(probe_org, 1)
        length = _period_length(stripe, subscribe(t, stripe, probe_org))
        org = t.add_organization().id
        members = t.add_members(org, 3)
        back = length - MARGIN - LEAD
        stripe.advance_time(-back)  # the period starts in the past and ends MARGIN + LEAD from now
        sub = subscribe(t, stripe, org)
        stripe.advance_time(back)
    cluster.start_worker(beat=True)  # beat sweeps every second
    assert wait_for(lambda: not _outbox(t), timeout=30), cluster.log_of(0)[-3000:]

    with t.app.app_context():
        t.db.session.delete(members.pop())
        t.db.session.commit()
    assert wait_for(lambda: [r["status"] for r in _outbox(t)] == ["scheduled"], timeout=30), \
        cluster.log_of(0)[-3000:]
    [row] = _outbox(t)
    assert row["next_attempt_at"] > datetime.utcnow()  # not due yet: the quantity waits
    assert stripe.seats(sub, PRO_MONTHLY) == 3

    # A second task for the organization (a duplicate, or a commit's task that finds the
    # decrease already scheduled) leaves the row to the sweep: it does not publish itself again
    # for the period's end, a message that would wait weeks in the broker.
    dispatcher = _dispatcher(t)
    before = dispatcher.markers.counters()
    assert dispatcher.schedule("sync", str(org), 0.0) == "enqueued"
    assert wait_for(lambda: dispatcher.markers.counters().get("noop", 0) > before.get("noop", 0),
                    timeout=20), cluster.log_of(0)[-3000:]
    assert dispatcher.markers.counters().get("early", 0) == before.get("early", 0)

    lowered = wait_for(lambda: stripe.seats(sub, PRO_MONTHLY) == 2 and not _outbox(t),
                       timeout=LEAD + 40)
    assert lowered, cluster.log_of(0)[-3000:]
    with t.app.app_context():
        last = ledger_rows(t)[-1]
    assert (last["from_seats"], last["to_seats"], last["reason"]) == (3, 2, "period_end")
    assert last["proration_behavior"] == "none"
