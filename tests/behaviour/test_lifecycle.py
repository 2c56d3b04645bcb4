"""The seats stay right through a subscription's lifecycle, and only the app's own subscriptions
are ever written, on every provider. Over HTTP: the provider's webhooks are delivered signed,
and every write is read back from the stand-in's request log.

Which statuses hold a seat change differs (Stripe takes changes in dunning, Polar refuses them;
an unpaid subscription is held on Stripe and has ended on Polar): the provider's dialect says
which, and a status that is not held on a provider is skipped with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flask_seat_billing.cli import seats
from tests.behaviour.conftest import AppFactory, World
from tests.helpers import outbox_rows
from tests.web_helpers import Served

CORRECT = {"SEAT_BILLING_EXTERNAL_CHANGE": "correct"}


@pytest.fixture
def web_correct(provider: World) -> Iterator[Served]:
    yield from provider.serve(CORRECT)


def _status_output(t: Any) -> str:
    t.app.cli.add_command(seats, "seats")
    result = t.app.test_cli_runner().invoke(args=["seats", "status"])
    assert result.exit_code == 0, result.output
    return str(result.output)


def _require_held(provider: World, status: str) -> None:
    if status not in provider.dialect.held:
        pytest.skip((provider.dialect.not_held or {}).get(status, f"{status} is not held"))


# -- 1. lifecycle -----------------------------------------------------------------------------

def test_change_while_past_due_is_sent_at_once(web: Served, provider: World) -> None:
    """Where the provider takes changes in dunning, the retried invoice carries the new seat."""
    if "past_due" in provider.dialect.held:
        pytest.skip(f"{provider.capabilities.name} refuses seat updates while past due: held")
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = provider.subscribe(t, org.id)
    provider.stand_in.set_status(sub, "past_due")
    provider.delivered()

    t.add_members(org.id, 1)

    assert provider.seats(sub) == 3
    assert outbox_rows(t) == []


@pytest.mark.parametrize("held", ["paused", "incomplete", "unpaid", "past_due"])
@pytest.mark.parametrize("seen_by", ["webhook", "resync", "link"])
def test_change_while_not_billable_is_held_then_sent_with_one_write(
    web: Served, provider: World, held: str, seen_by: str
) -> None:
    _require_held(provider, held)
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = provider.subscribe(t, org.id)
    provider.stand_in.set_status(sub, held)
    provider.delivered()

    t.add_members(org.id, 2)

    assert provider.seats(sub) == 2  # nothing sent to a held subscription
    [row] = outbox_rows(t)
    assert row["status"] == "held" and held in row["last_error"]
    assert "held x0" in _status_output(t)
    assert provider.writes_to(sub) == []
    writes_before = len(provider.seat_writes())

    provider.stand_in.set_status(sub, "active")
    if seen_by == "webhook":
        provider.delivered()
    elif seen_by == "resync":
        result = t.app.test_cli_runner().invoke(args=["seats", "resync"])
        assert result.exit_code == 0, result.output
    else:
        t.billing.link_subscription(org.id, sub)

    assert provider.seats(sub) == 4
    writes = [(w.method, w.path, w.params) for w in provider.seat_writes()]
    assert len(writes) == writes_before + 1, writes
    assert len(provider.writes_to(sub)) == 1
    assert outbox_rows(t) == []


def test_permanent_refusal_while_past_due_is_sent_on_recovery(
    web: Served, provider: World
) -> None:
    if "past_due" in provider.dialect.held:
        pytest.skip(f"{provider.capabilities.name} holds changes while past due: none is sent")
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = provider.subscribe(t, org.id)
    provider.stand_in.set_status(sub, "past_due")
    provider.delivered()
    provider.fail_seat_writes(1, status=400)

    t.add_members(org.id, 1)

    [row] = outbox_rows(t)
    assert row["status"] == "failed"
    assert t.billing.sync_pending() == []  # parked, as a permanent refusal is

    provider.stand_in.set_status(sub, "active")  # the retried invoice was paid
    provider.delivered()

    assert provider.seats(sub) == 3
    assert outbox_rows(t) == []


# -- 2. "correct" corrects the first observation too ------------------------------------------

def test_correct_fixes_a_drifted_quantity_on_the_first_webhook(
    web_correct: Served, provider: World
) -> None:
    t = web_correct.t
    org = t.add_organization()
    t.add_members(org.id, 3)
    sub = provider.checkout_subscription(t, org.id)
    provider.stand_in.set_seats(sub, 7, provider.plan)  # edited before the app saw anything
    [created] = provider.stand_in.events_of("created")

    deliveries = provider.stand_in.deliver(created["id"])

    assert deliveries and all(d.ok for d in deliveries)
    assert provider.seats(sub) == 3


@pytest.mark.parametrize("mode, expected", [("correct", 3), ("accept", 7)])
def test_link_of_a_drifted_subscription(
    make_app: AppFactory, provider: World, mode: str, expected: int
) -> None:
    """Under "accept" the first observation keeps the quantity seen (resync corrects it)."""
    t = make_app({"SEAT_BILLING_EXTERNAL_CHANGE": mode})
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 3)
        sub = provider.subscribe(t, org.id, seats=7)

        assert provider.seats(sub) == expected
        assert t.billing.subscription_for(org.id).seats == expected  # type: ignore[union-attr]


# -- 3. subscriptions the app does not own are never written ----------------------------------

def test_subscription_naming_an_unknown_organization_is_never_written(
    web_correct: Served, provider: World
) -> None:
    sub = provider.stand_in.subscribe("999", provider.plan, 9)
    provider.delivered()
    provider.stand_in.set_seats(sub, 8)  # a dashboard edit: "correct" must not touch it
    provider.delivered()

    assert provider.seats(sub) == 8
    assert provider.writes_to(sub) == []
    assert outbox_rows(web_correct.t) == []


def test_customer_and_metadata_naming_the_organization_do_not_make_it_ours(
    web_correct: Served, provider: World
) -> None:
    """A subscription for the organization's customer, with its id in our metadata keys, is
    still not the app's until its checkout made it or the app linked it."""
    t = web_correct.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = provider.stand_in.subscribe(org.id, provider.plan, 5)
    provider.delivered()

    t.add_members(org.id, 1)

    assert t.billing.subscription_for(org.id) is None
    assert provider.seats(sub) == 5
    assert provider.seat_writes() == []


def test_namespaces_keep_two_apps_on_one_account_apart(
    make_app: AppFactory, provider: World
) -> None:
    """Staging and production on one provider account (here even on one database)."""
    staging = make_app({"SEAT_BILLING_NAMESPACE": "staging", **CORRECT})
    production = make_app({"SEAT_BILLING_NAMESPACE": "production", **CORRECT})
    production.app.cli.add_command(seats, "seats")
    with staging.app.app_context():
        org_id = staging.add_organization().id
        staging.add_members(org_id, 1)
        sub = provider.checkout_subscription(staging, org_id)
        staging.add_members(org_id, 2)
    metadata = provider.stand_in.subscription(sub)["metadata"]
    assert metadata["seat_billing_namespace"] == "staging"

    with production.app.app_context():
        result = production.app.test_cli_runner().invoke(args=["seats", "resync"])
        assert result.exit_code == 0, result.output
        assert production.billing.subscription_for(org_id) is None
    assert provider.writes_to(sub) == []


def test_setting_a_namespace_later_keeps_the_subscriptions_sold_before(
    make_app: AppFactory, provider: World
) -> None:
    """A deployment sells, then sets SEAT_BILLING_NAMESPACE: the subscriptions it sold before
    carry its owner tag but no namespace, and stay its own: the linked one keeps being synced,
    and one never seen locally is still linked by a resync."""
    before = make_app()
    with before.app.app_context():
        before.billing.authorize(lambda request, organization_id, action: True)
        linked_org = before.add_organization().id
        before.add_members(linked_org, 2)
        answer = before.app.test_client().post(
            "/billing/checkout", json={"organization_id": linked_org, "plan": provider.plan.name})
        assert answer.status_code == 200, answer.text
        checkout_id = str((answer.json or {})["id"])
        provider.stand_in.complete_checkout(checkout_id)
        linked = provider.stand_in.checkout_subscription_id(checkout_id)
        assert linked is not None
        assert before.billing.complete_checkout(checkout_id) is not None  # the success page
        unseen_org = before.add_organization().id
        before.add_members(unseen_org, 1)
        unseen = provider.checkout_subscription(before, unseen_org)  # its webhook was lost
        before.billing.stop_worker()  # redeployed: the old process is gone

    # The same deployment and database, redeployed with a namespace.
    after = make_app({"SEAT_BILLING_NAMESPACE": "production"}, create=False)
    after.app.cli.add_command(seats, "seats")
    with after.app.app_context():
        after.add_members(linked_org, 1)
        after.add_members(unseen_org, 1)
        result = after.app.test_cli_runner().invoke(args=["seats", "resync"])
        assert result.exit_code == 0, result.output

        assert provider.seats(linked) == 3
        assert provider.seats(unseen) == 2
        local = after.billing.subscription_for(unseen_org)
        assert local is not None and local.provider_subscription_id == unseen
        assert outbox_rows(after) == []


def test_two_deployments_without_configuration_do_not_own_each_others(
    make_app: AppFactory, provider: World, database_url: str, tmp_path: Any
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("needs a second database; the namespace test covers PostgreSQL")
    first = make_app(CORRECT)
    second = make_app(CORRECT, database_url=f"sqlite:///{tmp_path / 'second.db'}")
    second.app.cli.add_command(seats, "seats")
    with first.app.app_context():
        org_id = first.add_organization().id
        first.add_members(org_id, 1)
        sub = provider.checkout_subscription(first, org_id)
    with second.app.app_context():
        other = second.add_organization()  # the same id, another company
        second.add_members(other.id, 4)
        result = second.app.test_cli_runner().invoke(args=["seats", "resync"])
        assert result.exit_code == 0, result.output
        assert second.billing.subscription_for(other.id) is None
    assert provider.writes_to(sub) == []


def test_a_restored_dump_in_another_namespace_never_writes_the_subscription(
    make_app: AppFactory, provider: World
) -> None:
    """Production links its subscription; staging runs on a copy of production's database (a
    restored dump) against the same provider account. Staging's member changes must not reach
    production's subscription, even though its local copy says it is linked and current."""
    production = make_app({"SEAT_BILLING_NAMESPACE": "production"})
    with production.app.app_context():
        org_id = production.add_organization().id
        production.add_members(org_id, 2)
        sub = provider.checkout_subscription(production, org_id)
        production.billing.link_subscription(org_id, sub)
        production.add_members(org_id, 1)
    assert provider.seats(sub) == 3
    writes = len(provider.writes_to(sub))
    # Here the two apps share one database, which a restored dump never does: production's
    # worker (started by the first webhook request) would find staging's outbox row and sync it
    # as production, rightly. Stopped, it leaves staging's row to staging, as separate databases.
    with production.app.app_context():
        production.billing.stop_worker()

    staging = make_app({"SEAT_BILLING_NAMESPACE": "staging"}, create=False)
    with staging.app.app_context():
        staging.add_members(org_id, 4)
        rows = outbox_rows(staging)
    assert provider.seats(sub) == 3
    assert len(provider.writes_to(sub)) == writes
    assert [row["status"] for row in rows] == ["held"], rows
