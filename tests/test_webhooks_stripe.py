"""POST /billing/webhooks/stripe over HTTP, delivered by the stand-in as Stripe would."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests import web_helpers
from tests.apps import BASE_PRICE, SEAT_PRICE
from tests.conftest import subscribe
from tests.helpers import ledger_rows, outbox_rows
from tests.web_helpers import (
    WEBHOOK_SECRET,
    Served,
    local_row,
    serve,
    serve_app,
    table_rows,
)

_web = pytest.fixture(name="web")(web_helpers.web)
_signals = pytest.fixture(name="signals_seen")(web_helpers.signals_seen)


def _post_event(web: Served, stripe: Any, payload: bytes, *, offset: int = 0) -> Any:
    header = stripe.signature_header(payload, WEBHOOK_SECRET, int(time.time()) + offset)
    return web.post(
        web.webhook_url, data=payload,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )


def _subscribed(web: Served, stripe: Any, members: int = 2) -> tuple[Any, str]:
    org = web.t.add_organization()
    web.t.add_members(org.id, members)
    sub = subscribe(web.t, stripe, org.id)
    assert all(d.ok for d in stripe.deliver_pending())
    return org, sub


def _nothing_written(t: Any) -> bool:
    return table_rows(t, "webhook_events") == [] and table_rows(t, "subscriptions") == []


# -- rejections -------------------------------------------------------------------------------

def _dashboard_subscription(stripe: Any, org_id: Any) -> dict[str, Any]:
    return dict(stripe.create_subscription(
        items=[{"price": BASE_PRICE, "quantity": 1}, {"price": SEAT_PRICE, "quantity": 4}],
        metadata={"organization_id": str(org_id), "plan": "pro-monthly"},
    ))


@pytest.mark.parametrize(
    ("signature", "offset"), [("bad", 0), ("missing", 0), ("valid", -301), ("valid", 3600)]
)
def test_bad_missing_or_stale_signature_is_400_and_writes_nothing(
    web: Served, stripe: Any, signature: str, offset: int
) -> None:
    org = web.t.add_organization()
    _dashboard_subscription(stripe, org.id)
    [event] = stripe.events("customer.subscription.created")

    [delivery] = stripe.deliver(event["id"], signature=signature, timestamp_offset=offset)

    assert delivery.status_code == 400
    assert _nothing_written(web.t)


def test_signed_malformed_json_is_400(web: Served, stripe: Any) -> None:
    answer = _post_event(web, stripe, b'{"id": "evt_1", "type": ')

    assert answer.status == 400
    assert "JSON" in answer.json["error"]
    assert _nothing_written(web.t)


def test_signed_json_that_is_not_an_event_is_400(web: Served, stripe: Any) -> None:
    assert _post_event(web, stripe, b'["evt_1"]').status == 400
    assert _nothing_written(web.t)


def test_oversized_body_is_413(make_app: Any, stripe: Any) -> None:
    for served in serve_app(make_app, stripe, SEAT_BILLING_WEBHOOK_MAX_BYTES=2048):
        payload = json.dumps({"id": "evt_big", "type": "invoice.paid", "pad": "x" * 4096})

        answer = _post_event(served, stripe, payload.encode())

        assert answer.status == 413
        assert _nothing_written(served.t)


@pytest.fixture
def no_secret(make_app: Any, stripe: Any) -> Iterator[Served]:
    t = make_app()
    for served in serve(t):
        stripe.add_webhook_endpoint(served.webhook_url, WEBHOOK_SECRET)
        with t.app.app_context():
            yield served


def test_without_a_secret_every_delivery_is_refused_and_logged(
    no_secret: Served, stripe: Any, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org = no_secret.t.add_organization()
    _dashboard_subscription(stripe, org.id)
    # alembic's fileConfig (run by other tests' migrations) disables existing loggers.
    monkeypatch.setattr(logging.getLogger("flask_seat_billing.webhooks"), "disabled", False)

    with caplog.at_level(logging.ERROR, logger="flask_seat_billing.webhooks"):
        deliveries = stripe.deliver_pending()

    assert deliveries and all(d.status_code == 503 for d in deliveries)
    answer = no_secret.post(no_secret.webhook_url, data=b"{}")
    assert "SEAT_BILLING_STRIPE_WEBHOOK_SECRET" in answer.json["error"]
    assert "SEAT_BILLING_STRIPE_WEBHOOK_SECRET is not set" in caplog.text
    assert _nothing_written(no_secret.t)


def test_unknown_event_type_is_acknowledged_and_ignored(web: Served, stripe: Any) -> None:
    payload = json.dumps({"id": "evt_unknown", "type": "customer.tax_id.created",
                          "data": {"object": {"id": "txi_1"}}}).encode()

    first = _post_event(web, stripe, payload)
    again = _post_event(web, stripe, payload)

    assert (first.status, first.json["outcome"]) == (200, "ignored")
    assert (again.status, again.json["outcome"]) == (200, "duplicate")
    assert table_rows(web.t, "subscriptions") == []


# -- processing -------------------------------------------------------------------------------

def test_dashboard_subscription_is_linked_once_the_app_links_it(
    web: Served, stripe: Any, signals_seen: dict[str, list[Any]]
) -> None:
    """Metadata alone proves nothing (another app may write it); ``link_subscription`` does."""
    org = web.t.add_organization()
    web.t.add_members(org.id, 4)
    sub = _dashboard_subscription(stripe, org.id)

    assert all(d.ok for d in stripe.deliver_pending())
    assert web.t.billing.subscription_for(org.id) is None
    [row] = table_rows(web.t, "subscriptions")
    assert (row["provider_subscription_id"], row["organization_key"]) == (sub["id"], None)

    web.t.billing.link_subscription(org.id, sub["id"])
    stripe.set_item_quantity(sub["id"], SEAT_PRICE, 4)  # any later event finds it linked
    assert all(d.ok for d in stripe.deliver_pending())

    local = web.t.billing.subscription_for(org.id)
    assert local is not None
    assert (local.provider_subscription_id, local.seats, local.status) == (sub["id"], 4, "active")
    assert signals_seen["subscription_updated"][-1]["organization_id"] == org.id


def test_metadata_naming_no_valid_organization_is_stored_unlinked(
    web: Served, stripe: Any
) -> None:
    stripe.create_subscription(
        items=[{"price": BASE_PRICE, "quantity": 1}, {"price": SEAT_PRICE, "quantity": 2}],
        metadata={"organization_id": "not-a-number"},
    )

    assert all(d.ok for d in stripe.deliver_pending())

    [row] = table_rows(web.t, "subscriptions")
    assert row["organization_key"] is None


def test_duplicate_event_is_2xx_and_changes_nothing(
    web: Served, stripe: Any, signals_seen: dict[str, list[Any]]
) -> None:
    org, sub = _subscribed(web, stripe)
    stripe.set_item_quantity(sub, SEAT_PRICE, 6)
    [event] = stripe.events("customer.subscription.updated")
    stripe.deliver(event["id"])
    rows, signals = table_rows(web.t, "subscriptions"), len(signals_seen["subscription_updated"])

    [again] = stripe.deliver(event["id"])

    assert again.ok
    assert table_rows(web.t, "subscriptions") == rows
    assert len(signals_seen["subscription_updated"]) == signals
    recorded = [e for e in table_rows(web.t, "webhook_events") if e["event_id"] == event["id"]]
    assert len(recorded) == 1


def test_processing_error_is_500_leaves_nothing_and_the_retry_succeeds(
    web: Served, stripe: Any
) -> None:
    org, sub = _subscribed(web, stripe)
    stripe.set_item_quantity(sub, SEAT_PRICE, 7)
    [event] = stripe.events("customer.subscription.updated")
    events_before = table_rows(web.t, "webhook_events")
    stripe.faults.fail_next(1, status=500, path_prefix=f"/v1/subscriptions/{sub}", method="GET")

    [failed] = stripe.deliver(event["id"])

    assert failed.status_code == 500
    assert local_row(web.t, org.id).seats == 2
    assert table_rows(web.t, "webhook_events") == events_before
    [retried] = stripe.deliver(event["id"])
    assert retried.ok
    assert local_row(web.t, org.id).seats == 7


def test_event_for_a_subscription_stripe_no_longer_has_is_acknowledged(
    web: Served, stripe: Any
) -> None:
    payload = json.dumps({"id": "evt_gone", "type": "customer.subscription.updated",
                          "data": {"object": {"id": "sub_missing"}}}).encode()

    answer = _post_event(web, stripe, payload)

    assert answer.status == 200
    assert table_rows(web.t, "subscriptions") == []


@pytest.mark.parametrize(
    ("action", "status"),
    [("pause", "paused"), ("cancel", "canceled"), ("past_due", "past_due")],
)
def test_status_changes_reach_the_local_row(
    web: Served, stripe: Any, action: str, status: str, signals_seen: dict[str, list[Any]]
) -> None:
    org, sub = _subscribed(web, stripe)
    {
        "pause": lambda: stripe.pause_subscription(sub),
        "cancel": lambda: stripe.cancel_subscription(sub),
        "past_due": lambda: stripe.set_subscription_status(sub, "past_due"),
    }[action]()

    assert all(d.ok for d in stripe.deliver_pending())

    assert local_row(web.t, org.id).status == status
    assert signals_seen["subscription_updated"][-1]["status"] == status


def test_paused_then_resumed(web: Served, stripe: Any) -> None:
    org, sub = _subscribed(web, stripe)
    stripe.pause_subscription(sub)
    stripe.resume_subscription(sub)

    assert all(d.ok for d in stripe.deliver_pending())

    assert local_row(web.t, org.id).status == "active"


def test_failed_invoice_payment_marks_the_subscription(web: Served, stripe: Any) -> None:
    org, sub = _subscribed(web, stripe)
    stripe.fail_payments(stripe.subscription(sub)["customer"])
    stripe.set_subscription_status(sub, "past_due")

    assert all(d.ok for d in stripe.deliver_pending())

    assert local_row(web.t, org.id).status == "past_due"


# -- quantity changed outside the app -----------------------------------------------------------

def test_dashboard_quantity_change_is_accepted(
    web: Served, stripe: Any, signals_seen: dict[str, list[Any]]
) -> None:
    org, sub = _subscribed(web, stripe, members=3)

    stripe.set_item_quantity(sub, SEAT_PRICE, 10)
    assert all(d.ok for d in stripe.deliver_pending())

    assert local_row(web.t, org.id).seats == 10
    assert stripe.item_quantity(sub, SEAT_PRICE) == 10
    [seen] = signals_seen["seats_changed_externally"]
    assert (seen["from_seats"], seen["to_seats"], seen["billable"], seen["action"]) == (
        3, 10, 3, "accept"
    )
    assert [(r["from_seats"], r["to_seats"], r["reason"]) for r in ledger_rows(web.t)] == [
        (3, 10, "external")
    ]
    assert outbox_rows(web.t) == []


@pytest.fixture
def correcting(make_app: Any, stripe: Any) -> Iterator[Served]:
    yield from serve_app(make_app, stripe, SEAT_BILLING_EXTERNAL_CHANGE="correct")


def test_dashboard_quantity_change_is_corrected(
    correcting: Served, stripe: Any, signals_seen: dict[str, list[Any]]
) -> None:
    org, sub = _subscribed(correcting, stripe, members=3)

    stripe.set_item_quantity(sub, SEAT_PRICE, 10)
    assert all(d.ok for d in stripe.deliver_pending())

    assert stripe.item_quantity(sub, SEAT_PRICE) == 3
    assert local_row(correcting.t, org.id).seats == 3
    [seen] = signals_seen["seats_changed_externally"]
    assert (seen["to_seats"], seen["action"]) == (10, "correct")
    # The correction's own event finds the row already right: no second "external" change.
    assert all(d.ok for d in stripe.deliver_pending())
    assert len(signals_seen["seats_changed_externally"]) == 1
    assert stripe.item_quantity(sub, SEAT_PRICE) == 3
