"""The webhook route over HTTP, delivered by the stand-in as the provider would, on every provider:
verified, deduplicated, order-proof, and the only way the provider's edits reach the local row."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests import web_helpers
from tests.apps import AppUnderTest
from tests.behaviour.conftest import World
from tests.helpers import ledger_rows, outbox_rows
from tests.web_helpers import Served, local_row, serve, table_rows

_signals = pytest.fixture(name="signals_seen")(web_helpers.signals_seen)


def _subscribed(web: Served, provider: World, members: int = 2) -> tuple[Any, str]:
    org = web.t.add_organization()
    web.t.add_members(org.id, members)
    sub = provider.subscribe(web.t, org.id)
    provider.delivered()
    return org, sub


def _nothing_written(t: AppUnderTest) -> bool:
    return table_rows(t, "webhook_events") == [] and table_rows(t, "subscriptions") == []


# -- rejections -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("signature", "when"), [("bad", None), ("missing", None), ("valid", 0), ("valid", 1)],
    ids=["bad", "missing", "stale", "future"],
)
def test_bad_missing_or_stale_signature_is_refused_and_writes_nothing(
    web: Served, provider: World, signature: str, when: int | None
) -> None:
    org = web.t.add_organization()
    provider.stand_in.subscribe(org.id, provider.plan, 4)
    [event] = provider.stand_in.events_of("created")
    offset = 0 if when is None else provider.dialect.stale_offsets[when]

    [delivery] = provider.stand_in.deliver(event["id"], signature=signature,  # type: ignore[arg-type]
                                           timestamp_offset=offset)

    assert delivery.status_code == provider.dialect.bad_signature
    assert _nothing_written(web.t)


def test_signed_malformed_json_is_400(web: Served, provider: World) -> None:
    answer = provider.post_event(web, b'{"id": "evt_1", "type": ', event_id="evt_1")

    assert answer.status == 400
    assert "JSON" in answer.json["error"]
    assert _nothing_written(web.t)


def test_signed_json_that_is_not_an_event_is_400(web: Served, provider: World) -> None:
    assert provider.post_event(web, b'["evt_1"]', event_id="evt_1").status == 400
    assert _nothing_written(web.t)


def test_oversized_body_is_413(provider: World) -> None:
    for served in provider.serve({"SEAT_BILLING_WEBHOOK_MAX_BYTES": 2048}):
        body = provider.dialect.event_body("evt_big", provider.dialect.unknown_event_type, "x")
        payload = body[:-1] + b', "pad": "' + b"x" * 4096 + b'"}'

        answer = provider.post_event(served, payload, event_id="evt_big")

        assert answer.status == 413
        assert _nothing_written(served.t)


@pytest.fixture
def no_secret(provider: World) -> Iterator[Served]:
    t = provider.make_app({provider.dialect.secret_key: None})
    for served in serve(t, provider=provider.name):
        provider.stand_in.add_webhook_endpoint(served.webhook_url, provider.webhook_secret)
        with t.app.app_context():
            yield served


def test_without_a_secret_every_delivery_is_refused_and_logged(
    no_secret: Served, provider: World, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org = no_secret.t.add_organization()
    provider.stand_in.subscribe(org.id, provider.plan, 4)
    # alembic's fileConfig (run by other tests' migrations) disables existing loggers.
    monkeypatch.setattr(logging.getLogger("flask_seat_billing.webhooks"), "disabled", False)

    with caplog.at_level(logging.ERROR, logger="flask_seat_billing.webhooks"):
        deliveries = provider.stand_in.deliver_pending()

    assert deliveries and all(d.status_code == 503 for d in deliveries)
    answer = no_secret.post(no_secret.webhook_url, data=b"{}")
    assert answer.status == 503
    assert provider.dialect.secret_key in answer.json["error"]
    assert f"{provider.dialect.secret_key} is not set" in caplog.text
    assert _nothing_written(no_secret.t)


def test_unknown_event_type_is_acknowledged_once_and_ignored(
    web: Served, provider: World
) -> None:
    body = provider.dialect.event_body("evt_unknown", provider.dialect.unknown_event_type, "o_1")

    first = provider.post_event(web, body, event_id="evt_unknown")
    again = provider.post_event(web, body, event_id="evt_unknown")

    ok = provider.dialect.webhook_ok
    assert (first.status, first.json["outcome"]) == (ok, "ignored")
    assert (again.status, again.json["outcome"]) == (ok, "duplicate")
    assert table_rows(web.t, "subscriptions") == []
    assert [r["event_id"] for r in table_rows(web.t, "webhook_events")] == ["evt_unknown"]


# -- processing -------------------------------------------------------------------------------

def test_dashboard_subscription_is_linked_once_the_app_links_it(
    web: Served, provider: World, signals_seen: dict[str, list[Any]]
) -> None:
    """Metadata alone proves nothing (another app may write it); ``link_subscription`` does."""
    org = web.t.add_organization()
    web.t.add_members(org.id, 4)
    sub = provider.stand_in.subscribe(org.id, provider.plan, 4)

    provider.delivered()
    assert web.t.billing.subscription_for(org.id) is None
    [row] = table_rows(web.t, "subscriptions")
    assert (row["provider_subscription_id"], row["organization_key"]) == (sub, None)

    web.t.billing.link_subscription(org.id, sub)
    provider.stand_in.set_seats(sub, 4)  # any later event finds it linked
    provider.delivered()

    local = web.t.billing.subscription_for(org.id)
    assert local is not None
    assert (local.provider_subscription_id, local.seats, local.status) == (sub, 4, "active")
    assert signals_seen["subscription_updated"][-1]["organization_id"] == org.id


def test_metadata_naming_no_valid_organization_is_stored_unlinked(
    web: Served, provider: World
) -> None:
    provider.stand_in.subscribe(
        "not-a-number", provider.plan, 2, metadata={"organization_id": "not-a-number"}
    )

    provider.delivered()

    [row] = table_rows(web.t, "subscriptions")
    assert row["organization_key"] is None


def test_duplicate_event_is_2xx_and_changes_nothing(
    web: Served, provider: World, signals_seen: dict[str, list[Any]]
) -> None:
    org, sub = _subscribed(web, provider)
    provider.stand_in.set_seats(sub, 6)
    event = provider.stand_in.events_of("updated")[-1]
    provider.stand_in.deliver(event["id"])
    rows, signals = table_rows(web.t, "subscriptions"), len(signals_seen["subscription_updated"])

    [again] = provider.stand_in.deliver(event["id"])

    assert again.status_code == provider.dialect.webhook_ok
    assert table_rows(web.t, "subscriptions") == rows
    assert len(signals_seen["subscription_updated"]) == signals
    recorded = [e for e in table_rows(web.t, "webhook_events") if e["event_id"] == event["id"]]
    assert len(recorded) == 1


def test_duplicated_and_reordered_events_end_at_the_providers_state(
    web: Served, provider: World
) -> None:
    org = web.t.add_organization()
    web.t.add_members(org.id, 3)
    sub = provider.stand_in.subscribe(org.id, provider.plan, 3)
    web.t.billing.link_subscription(org.id, sub)  # metadata alone would not make it the org's
    provider.stand_in.set_status(sub, "past_due")
    provider.stand_in.set_status(sub, "active")
    provider.stand_in.cancel_subscription(sub, at_period_end=True)

    deliveries = provider.stand_in.deliver_pending(times=2, order="reversed")

    assert {d.status_code for d in deliveries} == {provider.dialect.webhook_ok}
    local = local_row(web.t, org.id)
    assert local.provider_subscription_id == sub
    assert (local.status, local.seats, local.cancel_at_period_end) == ("active", 3, True)
    events = provider.stand_in.events()
    recorded = [r["event_id"] for r in table_rows(web.t, "webhook_events")]
    assert sorted(recorded) == sorted(e["id"] for e in events)
    assert len(table_rows(web.t, "subscriptions")) == 1


def test_processing_error_is_500_leaves_nothing_and_the_retry_succeeds(
    web: Served, provider: World
) -> None:
    org, sub = _subscribed(web, provider)
    provider.stand_in.set_seats(sub, 7)
    event = provider.stand_in.events_of("updated")[-1]
    events_before = table_rows(web.t, "webhook_events")
    provider.stand_in.faults.fail_next(
        1, status=500, path_prefix=f"{provider.dialect.subscription_path}{sub}", method="GET"
    )

    [failed] = provider.stand_in.deliver(event["id"])

    assert failed.status_code == 500
    assert local_row(web.t, org.id).seats == 2
    assert table_rows(web.t, "webhook_events") == events_before
    [retried] = provider.stand_in.deliver(event["id"])
    assert retried.status_code == provider.dialect.webhook_ok
    assert local_row(web.t, org.id).seats == 7


def test_event_for_a_subscription_the_provider_no_longer_has_is_acknowledged(
    web: Served, provider: World
) -> None:
    """A 404 can never turn into a success, so no retry loop."""
    updated = provider.stand_in.event_types["updated"]
    body = provider.dialect.event_body("evt_gone", updated, f"sub_{uuid.uuid4()}")

    answer = provider.post_event(web, body, event_id="evt_gone")

    assert (answer.status, answer.json["outcome"]) == (provider.dialect.webhook_ok, "ignored")
    assert table_rows(web.t, "subscriptions") == []
    assert provider.post_event(web, body, event_id="evt_gone").json["outcome"] == "duplicate"


@pytest.mark.parametrize(
    ("action", "status"),
    [("pause", "paused"), ("cancel", "canceled"), ("past_due", "past_due")],
)
def test_status_changes_reach_the_local_row(
    web: Served, provider: World, action: str, status: str,
    signals_seen: dict[str, list[Any]],
) -> None:
    org, sub = _subscribed(web, provider)
    stand_in = provider.stand_in
    {
        "pause": lambda: stand_in.pause_subscription(sub),
        "cancel": lambda: stand_in.cancel_subscription(sub),
        "past_due": lambda: stand_in.set_status(sub, "past_due"),
    }[action]()

    provider.delivered()

    row = local_row(web.t, org.id)
    assert row.status == status
    assert signals_seen["subscription_updated"][-1]["status"] == status
    if status == "canceled":
        [stored] = table_rows(web.t, "subscriptions")
        assert stored["ended_at"] is not None


def test_paused_then_resumed(web: Served, provider: World) -> None:
    org, sub = _subscribed(web, provider)
    provider.stand_in.pause_subscription(sub)
    provider.stand_in.resume_subscription(sub)

    provider.delivered()

    assert local_row(web.t, org.id).status == "active"


def test_failed_payment_marks_the_subscription(web: Served, provider: World) -> None:
    org, sub = _subscribed(web, provider)
    provider.stand_in.fail_payments(provider.stand_in.customer_of(sub))
    provider.stand_in.set_status(sub, "past_due")

    provider.delivered()

    assert local_row(web.t, org.id).status == "past_due"


# -- seats changed outside the app ------------------------------------------------------------

def test_dashboard_seat_change_is_accepted(
    web: Served, provider: World, signals_seen: dict[str, list[Any]]
) -> None:
    org, sub = _subscribed(web, provider, members=3)

    provider.stand_in.set_seats(sub, 10)
    provider.delivered()

    assert local_row(web.t, org.id).seats == 10
    assert provider.seats(sub) == 10
    [seen] = signals_seen["seats_changed_externally"]
    assert (seen["from_seats"], seen["to_seats"], seen["billable"], seen["action"]) == (
        3, 10, 3, "accept"
    )
    assert [(r["from_seats"], r["to_seats"], r["reason"]) for r in ledger_rows(web.t)] == [
        (3, 10, "external")
    ]
    assert outbox_rows(web.t) == []


@pytest.fixture
def correcting(provider: World) -> Iterator[Served]:
    yield from provider.serve({"SEAT_BILLING_EXTERNAL_CHANGE": "correct"})


def test_dashboard_seat_change_is_corrected(
    correcting: Served, provider: World, signals_seen: dict[str, list[Any]]
) -> None:
    org, sub = _subscribed(correcting, provider, members=3)

    provider.stand_in.set_seats(sub, 10)
    provider.delivered()

    assert provider.seats(sub) == 3
    assert local_row(correcting.t, org.id).seats == 3
    [seen] = signals_seen["seats_changed_externally"]
    assert (seen["to_seats"], seen["action"]) == (10, "correct")
    external = [c for c in ledger_rows(correcting.t) if c["reason"] == "external"]
    assert [(c["from_seats"], c["to_seats"]) for c in external] == [(3, 10)]
    # The correction's own event finds the row already right: no second "external" change.
    provider.delivered()
    assert len(signals_seen["seats_changed_externally"]) == 1
    assert provider.seats(sub) == 3
    assert outbox_rows(correcting.t) == []


@pytest.mark.parametrize("mode", ["accept", "correct"])
def test_dashboard_seat_change_posted_alone(make_app: Any, provider: World, mode: str) -> None:
    """The update event posted on its own (no server, no other event): one external change,
    then the seats the mode says."""
    t = make_app({"SEAT_BILLING_EXTERNAL_CHANGE": mode})
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 3)
        sub = provider.subscribe(t, org.id)
        provider.stand_in.set_seats(sub, 7)
        event = provider.stand_in.events_of("updated")[-1]
        body = provider.dialect.body_of(event)
        headers = provider.stand_in.webhook_headers(
            body, provider.webhook_secret, event_id=event["id"]
        )

        answer = t.app.test_client().post(
            f"/billing/webhooks/{provider.name}", data=body, headers=headers
        )

        assert answer.status_code == provider.dialect.webhook_ok
        external = [c for c in ledger_rows(t) if c["reason"] == "external"]
        assert [(c["from_seats"], c["to_seats"]) for c in external] == [(3, 7)]
        if mode == "accept":
            assert provider.seats(sub) == 7
            assert local_row(t, org.id).seats == 7
        else:
            t.billing.sync_pending()
            assert provider.seats(sub) == 3
            assert outbox_rows(t) == []


def test_seat_write_by_the_app_is_not_an_external_change(web: Served, provider: World) -> None:
    org = web.t.add_organization()
    web.t.add_members(org.id, 2)
    provider.subscribe(web.t, org.id)
    web.t.add_members(org.id, 2)

    deliveries = provider.stand_in.deliver_pending(times=2)

    assert all(d.ok for d in deliveries)
    assert [c["reason"] for c in ledger_rows(web.t)] == ["membership"]
