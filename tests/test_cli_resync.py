"""``flask seats resync`` against the Stripe stand-in: drift, linking, dry runs, interruptions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result

from flask_seat_billing import signals
from flask_seat_billing.cli import seats
from tests.apps import BASE_PRICE, SEAT_PRICE, AppUnderTest
from tests.conftest import AppFactory, checkout_subscription, subscribe
from tests.helpers import ledger_rows, outbox_rows, seat_writes


@pytest.fixture
def cli(make_app: AppFactory) -> Iterator[AppUnderTest]:
    """A manual-mode app (member changes wait in the outbox) with the ``seats`` group."""
    t = make_app({"SEAT_BILLING_SYNC_MODE": "manual"})
    t.app.cli.add_command(seats, "seats")
    with t.app.app_context():
        yield t


def run(t: AppUnderTest, *args: str) -> Result:
    return t.app.test_cli_runner().invoke(args=["seats", *args])


def org_with(t: AppUnderTest, stripe: Any, members: int, *, seats: int | None = None) -> tuple[
        Any, str]:
    org = t.add_organization()
    t.add_members(org.id, members)
    return org.id, subscribe(t, stripe, org.id, seats=seats)


def tables_snapshot(t: AppUnderTest) -> dict[str, list[tuple[Any, ...]]]:
    names = ("seat_billing_subscriptions", "seat_billing_seat_changes", "seat_billing_outbox")
    with t.db.engine.connect() as conn:
        return {n: [tuple(r) for r in conn.execute(sa.select(t.db.metadata.tables[n]))]
                for n in names}


def test_drift_in_both_directions(cli: AppUnderTest, stripe: Any) -> None:
    high, high_sub = org_with(cli, stripe, 2)
    low, low_sub = org_with(cli, stripe, 2)
    fine, fine_sub = org_with(cli, stripe, 3)
    stripe.set_item_quantity(high_sub, SEAT_PRICE, 6)  # billed for more than it has
    cli.add_members(low, 2)  # grew while syncs waited (manual mode)
    stripe.requests.clear()

    result = run(cli, "resync")

    assert result.exit_code == 0, result.output
    assert stripe.item_quantity(high_sub, SEAT_PRICE) == 2
    assert stripe.item_quantity(low_sub, SEAT_PRICE) == 4
    assert stripe.item_quantity(fine_sub, SEAT_PRICE) == 3
    writes = seat_writes(stripe)
    assert len(writes) == 2
    # One listing page, one write per drifted organization, no per-organization GET.
    assert [(r.method, r.path) for r in stripe.requests.all() if r.method == "GET"] == [
        ("GET", "/v1/subscriptions")]
    changes = [(c["organization_key"], c["from_seats"], c["to_seats"], c["reason"])
               for c in ledger_rows(cli)]
    assert (str(high), 2, 6, "external") in changes  # seen by the pull
    assert (str(high), 6, 2, "resync") in changes
    assert (str(low), 2, 4, "resync") in changes
    # Pushed organizations' pending syncs are done; an in-sync one's row is left to the worker.
    assert [r["organization_key"] for r in outbox_rows(cli)] == [str(fine)]
    assert "3 organizations: 1 in sync, 2 drifted (2 updated, 0 failed)" in result.output
    assert str(fine) in result.output and "updated" in result.output


def test_links_a_subscription_only_the_provider_knows(cli: AppUnderTest, stripe: Any) -> None:
    """Our checkout's subscription, whose webhook never came: resync links it by its owner tag."""
    org = cli.add_organization()
    cli.add_members(org.id, 1)
    sub = checkout_subscription(cli, stripe, org.id)
    cli.add_members(org.id, 2)
    assert cli.billing.subscription_for(org.id) is None

    result = run(cli, "resync")

    assert result.exit_code == 0, result.output
    local = cli.billing.subscription_for(org.id)
    assert local is not None and local.provider_subscription_id == sub
    assert stripe.item_quantity(sub, SEAT_PRICE) == 3
    assert local.seats == 3
    assert "1 linked" in result.output


def test_metadata_alone_links_nothing(cli: AppUnderTest, stripe: Any) -> None:
    """Another app on the account (or a staging copy) wrote ``organization_id``: not ours."""
    org = cli.add_organization()
    cli.add_members(org.id, 3)
    sub = stripe.create_subscription(
        items=[{"price": BASE_PRICE, "quantity": 1}, {"price": SEAT_PRICE, "quantity": 1}],
        metadata={"organization_id": str(org.id), "plan": "pro-monthly"},
    )

    result = run(cli, "resync")

    assert result.exit_code == 0, result.output
    assert cli.billing.subscription_for(org.id) is None
    assert stripe.item_quantity(sub["id"], SEAT_PRICE) == 1
    assert seat_writes(stripe) == []
    assert "0 linked" in result.output


@pytest.mark.parametrize("flag, code", [("--dry-run", 0), ("--check", 1)])
def test_dry_run_and_check_write_nothing(
    cli: AppUnderTest, stripe: Any, flag: str, code: int
) -> None:
    org, sub = org_with(cli, stripe, 2)
    stripe.set_item_quantity(sub, SEAT_PRICE, 5)
    other = cli.add_organization()
    cli.add_members(other.id, 1)
    other_sub = checkout_subscription(cli, stripe, other.id)
    stripe.set_item_quantity(other_sub, SEAT_PRICE, 4)
    before = tables_snapshot(cli)
    writes_before = len(stripe.writes())

    result = run(cli, "resync", flag)

    assert result.exit_code == code, result.output
    assert tables_snapshot(cli) == before
    assert len(stripe.writes()) == writes_before
    assert stripe.item_quantity(sub, SEAT_PRICE) == 5
    assert "update" in result.output and "dry run: nothing written" in result.output
    assert "2 drifted" in result.output


def test_check_passes_when_nothing_drifts(cli: AppUnderTest, stripe: Any) -> None:
    org_with(cli, stripe, 2)
    result = run(cli, "resync", "--check")
    assert result.exit_code == 0, result.output
    assert "0 drifted" in result.output


def test_json_output(cli: AppUnderTest, stripe: Any) -> None:
    org, sub = org_with(cli, stripe, 2)
    stripe.set_item_quantity(sub, SEAT_PRICE, 7)

    result = run(cli, "resync", "--json")

    data = json.loads(result.output)
    [row] = data["organizations"]
    assert row == {"organization": str(org), "plan": "pro-monthly", "status": "active",
                   "billable": 2, "provider_seats": 2, "action": "updated",
                   "subscription_id": sub, "error": None}
    assert data["summary"]["drifted"] == 1 and data["summary"]["exit_code"] == 0


def test_org_filter_and_unknown_org(cli: AppUnderTest, stripe: Any) -> None:
    one, one_sub = org_with(cli, stripe, 2)
    two, two_sub = org_with(cli, stripe, 2)
    stripe.set_item_quantity(one_sub, SEAT_PRICE, 9)
    stripe.set_item_quantity(two_sub, SEAT_PRICE, 9)

    result = run(cli, "resync", "--org", str(one))

    assert result.exit_code == 0, result.output
    assert stripe.item_quantity(one_sub, SEAT_PRICE) == 2
    assert stripe.item_quantity(two_sub, SEAT_PRICE) == 9

    missing = run(cli, "resync", "--org", "424242")
    assert missing.exit_code == 2
    assert missing.output.strip() == "Error: Unknown organization: 424242."


def test_no_pull_uses_the_local_copy(cli: AppUnderTest, stripe: Any) -> None:
    org, sub = org_with(cli, stripe, 2)
    cli.add_members(org, 1)
    stripe.requests.clear()

    result = run(cli, "resync", "--no-pull")

    assert result.exit_code == 0, result.output
    assert stripe.item_quantity(sub, SEAT_PRICE) == 3
    assert not stripe.requests.requests_to("GET", "/v1/subscriptions?")
    assert all(r.path != "/v1/subscriptions" for r in stripe.requests.all())


def test_interrupted_run_finishes_on_rerun_without_double_writes(
    cli: AppUnderTest, stripe: Any
) -> None:
    subs = []
    for _ in range(3):
        org, sub = org_with(cli, stripe, 2)
        cli.add_members(org, 1)
        subs.append(sub)

    def outage_after_first_write(app: Any, **extra: Any) -> None:
        if extra["reason"] == "resync" and not stripe.faults.pending():
            stripe.faults.fail_next(100, status=500, path_prefix="/v1/subscription_items/")

    signals.seats_synced.connect(outage_after_first_write, weak=False)
    try:
        first = run(cli, "resync")
    finally:
        signals.seats_synced.disconnect(outage_after_first_write)
    assert first.exit_code == 1, first.output
    assert "1 updated, 2 failed" in first.output
    assert len(outbox_rows(cli)) == 2  # the failures are durable: the worker would retry them
    stripe.faults.clear()

    second = run(cli, "resync")

    assert second.exit_code == 0, second.output
    assert [stripe.item_quantity(s, SEAT_PRICE) for s in subs] == [3, 3, 3]
    assert sorted(w.path for w in seat_writes(stripe)) == sorted(
        {w.path for w in seat_writes(stripe)})  # one write per subscription
    assert len(seat_writes(stripe)) == 3
    assert outbox_rows(cli) == []
    third = run(cli, "resync", "--check")
    assert third.exit_code == 0


def test_write_applied_but_answer_lost_is_not_sent_twice(cli: AppUnderTest, stripe: Any) -> None:
    org, sub = org_with(cli, stripe, 2)
    cli.add_members(org, 2)
    stripe.faults.drop_next(1, apply=True, path_prefix="/v1/subscription_items/")

    result = run(cli, "resync")

    assert result.exit_code == 0, result.output
    assert stripe.item_quantity(sub, SEAT_PRICE) == 4
    assert len(seat_writes(stripe)) == 1
    assert run(cli, "resync", "--check").exit_code == 0


def test_rate_limits_slow_the_run_down_instead_of_failing_it(
    make_app: AppFactory, stripe: Any
) -> None:
    t = make_app({"SEAT_BILLING_SYNC_MODE": "manual", "SEAT_BILLING_MAX_REQUESTS_PER_SECOND": 50})
    t.app.cli.add_command(seats, "seats")
    with t.app.app_context():
        subs = []
        for _ in range(3):
            org, sub = org_with(t, stripe, 2)
            stripe.set_item_quantity(sub, SEAT_PRICE, 1)
            subs.append(sub)
        stripe.faults.rate_limit_next(2, retry_after=0.2, path_prefix="/v1/subscriptions",
                                      method="GET")
        stripe.faults.rate_limit_next(2, retry_after=0.2, path_prefix="/v1/subscription_items/")

        result = run(t, "resync", "--json")

        assert result.exit_code == 0, result.output
        summary = json.loads(result.output)["summary"]
        assert summary["slowdowns"] == 4
        assert [stripe.item_quantity(s, SEAT_PRICE) for s in subs] == [2, 2, 2]
        assert len([r for r in stripe.requests.all() if r.status == 429]) == 4
        assert len(seat_writes(stripe)) == 3
