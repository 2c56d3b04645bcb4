"""``POST /billing/webhooks/polar``: verified, deduplicated on ``webhook-id``, order-proof."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import sqlalchemy as sa

from flask_seat_billing.testing.polar_server import sign_webhook
from tests.apps import AppUnderTest
from tests.helpers import ledger_rows, outbox_rows
from tests.polar.conftest import AppFactory, PolarWorld, subscribe


def webhook_rows(t: AppUnderTest) -> list[dict[str, Any]]:
    table = t.db.metadata.tables["seat_billing_webhook_events"]
    with t.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table))]


def subscription_rows(t: AppUnderTest) -> list[dict[str, Any]]:
    table = t.db.metadata.tables["seat_billing_subscriptions"]
    with t.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table))]


def test_duplicated_and_reordered_events_end_at_polars_state(
    t: AppUnderTest, polar: PolarWorld, served: str
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 3)
    sub = polar.api.create_subscription(
        polar.team, seats=3, external_customer_id=str(org.id),
        metadata={"organization_id": str(org.id)},
    )["id"]
    t.billing.link_subscription(org.id, sub)  # metadata alone would not make it the org's
    polar.api.set_status(sub, "past_due")
    polar.api.set_status(sub, "active")
    polar.api.cancel_subscription(sub, at_period_end=True)

    deliveries = polar.api.deliver_pending(times=2, order="reversed")

    assert {d.status_code for d in deliveries} == {202}
    local = t.billing.subscription_for(org.id)
    assert local is not None and local.provider_subscription_id == sub
    assert (local.status, local.seats, local.cancel_at_period_end) == ("active", 3, True)
    events = polar.api.events()
    assert sorted(r["event_id"] for r in webhook_rows(t)) == sorted(e["id"] for e in events)
    assert len(subscription_rows(t)) == 1


def test_revoked_subscription_is_recorded_canceled(
    t: AppUnderTest, polar: PolarWorld, served: str
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, polar, org.id)
    polar.api.revoke_subscription(sub)

    polar.api.deliver_pending()

    [row] = subscription_rows(t)
    assert row["status"] == "canceled" and row["ended_at"] is not None


@pytest.mark.parametrize(("signature", "offset"), [
    ("bad", 0), ("missing", 0), ("valid", -600), ("valid", 600),
])
def test_bad_signatures_write_nothing(
    t: AppUnderTest, polar: PolarWorld, served: str, signature: Any, offset: int
) -> None:
    org = t.add_organization()
    polar.api.create_subscription(
        polar.team, seats=1, external_customer_id=str(org.id),
        metadata={"organization_id": str(org.id)},
    )
    event_id = polar.api.events()[0]["id"]

    [delivery] = polar.api.deliver(event_id, signature=signature, timestamp_offset=offset)

    assert delivery.status_code == 403
    assert webhook_rows(t) == [] and subscription_rows(t) == []


def test_without_a_secret_every_delivery_is_refused(
    make_app: AppFactory, polar: PolarWorld
) -> None:
    t = make_app({"SEAT_BILLING_POLAR_WEBHOOK_SECRET": None})
    body = b'{"type": "subscription.updated", "data": {"id": "x"}}'
    headers = sign_webhook(body, polar.secret, int(time.time()), event_id="msg_1")
    answer = t.app.test_client().post("/billing/webhooks/polar", data=body, headers=headers)
    assert answer.status_code == 503
    with t.app.app_context():
        assert webhook_rows(t) == []


def test_unknown_event_types_are_acknowledged_once(t: AppUnderTest, polar: PolarWorld) -> None:
    body = json.dumps({"type": "order.created", "data": {"id": "o_1"}}).encode()
    headers = sign_webhook(body, polar.secret, int(time.time()), event_id="msg_order")
    client = t.app.test_client()
    first = client.post("/billing/webhooks/polar", data=body, headers=headers)
    again = client.post("/billing/webhooks/polar", data=body, headers=headers)
    assert (first.json or {})["outcome"] == "ignored"
    assert (again.json or {})["outcome"] == "duplicate"
    assert [r["event_id"] for r in webhook_rows(t)] == ["msg_order"]


@pytest.mark.parametrize("mode", ["accept", "correct"])
def test_seats_changed_in_polars_dashboard(
    make_app: AppFactory, polar: PolarWorld, mode: str
) -> None:
    t = make_app({"SEAT_BILLING_EXTERNAL_CHANGE": mode})
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 3)
        sub = subscribe(t, polar, org.id)
        polar.api.set_seats(sub, 7)
        updated = polar.api.events("subscription.updated")[-1]
        body = json.dumps({k: v for k, v in updated.items() if k != "id"}).encode()
        headers = sign_webhook(body, polar.secret, int(time.time()), event_id=updated["id"])

        answer = t.app.test_client().post("/billing/webhooks/polar", data=body, headers=headers)

        assert answer.status_code == 202
        external = [c for c in ledger_rows(t) if c["reason"] == "external"]
        assert [(c["from_seats"], c["to_seats"]) for c in external] == [(3, 7)]
        if mode == "accept":
            assert polar.api.seats(sub) == 7
            local = t.billing.subscription_for(org.id)
            assert local is not None and local.seats == 7
        else:
            t.billing.sync_pending()
            assert polar.api.seats(sub) == 3
            assert outbox_rows(t) == []


def test_seat_write_by_the_app_is_not_an_external_change(
    t: AppUnderTest, polar: PolarWorld, served: str
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    subscribe(t, polar, org.id)
    t.add_members(org.id, 2)

    polar.api.deliver_pending(times=2)

    assert [c["reason"] for c in ledger_rows(t)] == ["membership"]
