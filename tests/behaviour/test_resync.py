"""``flask seats resync`` on every provider: drift, linking, dry runs, interruptions.

An organization may hold two live subscriptions of a configured plan (a double-submitted
checkout); the engine bills the newest (``subscriptions.billing_subscription``), so resync must
look at that one too, and rows a resync pull records first must keep the provider's order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result

from flask_seat_billing import signals
from flask_seat_billing.cli import seats
from tests.apps import AppUnderTest
from tests.behaviour.conftest import AppFactory, World
from tests.helpers import ledger_rows, outbox_rows


@pytest.fixture
def cli(make_app: AppFactory) -> Iterator[AppUnderTest]:
    """A manual-mode app (member changes wait in the outbox) with the ``seats`` group."""
    t = make_app({"SEAT_BILLING_SYNC_MODE": "manual"})
    t.app.cli.add_command(seats, "seats")
    with t.app.app_context():
        yield t


def run(t: AppUnderTest, *args: str) -> Result:
    return t.app.test_cli_runner().invoke(args=["seats", *args])


def org_with(t: AppUnderTest, provider: World, members: int) -> tuple[Any, str]:
    org = t.add_organization()
    t.add_members(org.id, members)
    return org.id, provider.subscribe(t, org.id)


def tables_snapshot(t: AppUnderTest) -> dict[str, list[tuple[Any, ...]]]:
    names = ("seat_billing_subscriptions", "seat_billing_seat_changes", "seat_billing_outbox")
    with t.db.engine.connect() as conn:
        return {n: [tuple(r) for r in conn.execute(sa.select(t.db.metadata.tables[n]))]
                for n in names}


def test_drift_in_both_directions(cli: AppUnderTest, provider: World) -> None:
    high, high_sub = org_with(cli, provider, 2)
    low, low_sub = org_with(cli, provider, 2)
    fine, fine_sub = org_with(cli, provider, 3)
    provider.stand_in.set_seats(high_sub, 6)  # billed for more than it has
    cli.add_members(low, 2)  # grew while syncs waited (manual mode)
    provider.stand_in.requests.clear()

    result = run(cli, "resync")

    assert result.exit_code == 0, result.output
    assert provider.seats(high_sub) == 2
    assert provider.seats(low_sub) == 4
    assert provider.seats(fine_sub) == 3
    writes = provider.seat_writes()
    assert len(writes) == 2
    # One listing page, one write per drifted organization, no per-organization GET.
    assert [(r.method, r.path) for r in provider.stand_in.requests.all() if r.method == "GET"] == [
        ("GET", provider.dialect.list_path)]
    changes = [(c["organization_key"], c["from_seats"], c["to_seats"], c["reason"])
               for c in ledger_rows(cli)]
    assert (str(high), 2, 6, "external") in changes  # seen by the pull
    assert (str(high), 6, 2, "resync") in changes
    assert (str(low), 2, 4, "resync") in changes
    # Pushed organizations' pending syncs are done; an in-sync one's row is left to the worker.
    assert [r["organization_key"] for r in outbox_rows(cli)] == [str(fine)]
    assert "3 organizations: 1 in sync, 2 drifted (2 updated, 0 failed)" in result.output
    assert str(fine) in result.output and "updated" in result.output


def test_links_a_subscription_only_the_provider_knows(cli: AppUnderTest, provider: World) -> None:
    """Our checkout's subscription, whose webhook never came: resync links it by its owner tag."""
    org = cli.add_organization()
    cli.add_members(org.id, 1)
    sub = provider.checkout_subscription(cli, org.id)
    cli.add_members(org.id, 2)
    assert cli.billing.subscription_for(org.id) is None

    result = run(cli, "resync")

    assert result.exit_code == 0, result.output
    local = cli.billing.subscription_for(org.id)
    assert local is not None and local.provider_subscription_id == sub
    assert provider.seats(sub) == 3
    assert local.seats == 3
    assert "1 linked" in result.output


def test_metadata_alone_links_nothing(cli: AppUnderTest, provider: World) -> None:
    """Another app on the account (or a staging copy) wrote ``organization_id``: not ours."""
    org = cli.add_organization()
    cli.add_members(org.id, 3)
    sub = provider.stand_in.subscribe(org.id, provider.plan, 1)

    result = run(cli, "resync")

    assert result.exit_code == 0, result.output
    assert cli.billing.subscription_for(org.id) is None
    assert provider.seats(sub) == 1
    assert provider.seat_writes() == []
    assert "0 linked" in result.output


@pytest.mark.parametrize("flag, code", [("--dry-run", 0), ("--check", 1)])
def test_dry_run_and_check_write_nothing(
    cli: AppUnderTest, provider: World, flag: str, code: int
) -> None:
    org, sub = org_with(cli, provider, 2)
    provider.stand_in.set_seats(sub, 5)
    other = cli.add_organization()
    cli.add_members(other.id, 1)
    other_sub = provider.checkout_subscription(cli, other.id)
    provider.stand_in.set_seats(other_sub, 4, provider.plan)
    before = tables_snapshot(cli)
    writes_before = len(provider.stand_in.writes())

    result = run(cli, "resync", flag)

    assert result.exit_code == code, result.output
    assert tables_snapshot(cli) == before
    assert len(provider.stand_in.writes()) == writes_before
    assert provider.seats(sub) == 5
    assert "update" in result.output and "dry run: nothing written" in result.output
    assert "2 drifted" in result.output


def test_check_passes_when_nothing_drifts(cli: AppUnderTest, provider: World) -> None:
    org_with(cli, provider, 2)
    result = run(cli, "resync", "--check")
    assert result.exit_code == 0, result.output
    assert "0 drifted" in result.output


def test_json_output(cli: AppUnderTest, provider: World) -> None:
    org, sub = org_with(cli, provider, 2)
    provider.stand_in.set_seats(sub, 7)

    result = run(cli, "resync", "--json")

    data = json.loads(result.output)
    [row] = data["organizations"]
    assert row == {"organization": str(org), "plan": provider.plan.name, "status": "active",
                   "billable": 2, "provider_seats": 2, "action": "updated",
                   "subscription_id": sub, "error": None}
    assert data["summary"]["drifted"] == 1 and data["summary"]["exit_code"] == 0


def test_org_filter_and_unknown_org(cli: AppUnderTest, provider: World) -> None:
    one, one_sub = org_with(cli, provider, 2)
    two, two_sub = org_with(cli, provider, 2)
    provider.stand_in.set_seats(one_sub, 9)
    provider.stand_in.set_seats(two_sub, 9)

    result = run(cli, "resync", "--org", str(one))

    assert result.exit_code == 0, result.output
    assert provider.seats(one_sub) == 2
    assert provider.seats(two_sub) == 9

    missing = run(cli, "resync", "--org", "424242")
    assert missing.exit_code == 2
    assert missing.output.strip() == "Error: Unknown organization: 424242."


def test_no_pull_uses_the_local_copy(cli: AppUnderTest, provider: World) -> None:
    org, sub = org_with(cli, provider, 2)
    cli.add_members(org, 1)
    provider.stand_in.requests.clear()

    result = run(cli, "resync", "--no-pull")

    assert result.exit_code == 0, result.output
    assert provider.seats(sub) == 3
    assert not provider.stand_in.requests.requests_to("GET", f"{provider.dialect.list_path}?")
    assert all(r.path != provider.dialect.list_path for r in provider.stand_in.requests.all())


def test_interrupted_run_finishes_on_rerun_without_double_writes(
    cli: AppUnderTest, provider: World
) -> None:
    subs = []
    for _ in range(3):
        org, sub = org_with(cli, provider, 2)
        cli.add_members(org, 1)
        subs.append(sub)

    def outage_after_first_write(app: Any, **extra: Any) -> None:
        if extra["reason"] == "resync" and not provider.stand_in.faults.pending():
            provider.fail_seat_writes(100, status=500)

    signals.seats_synced.connect(outage_after_first_write, weak=False)
    try:
        first = run(cli, "resync")
    finally:
        signals.seats_synced.disconnect(outage_after_first_write)
    assert first.exit_code == 1, first.output
    assert "1 updated, 2 failed" in first.output
    assert len(outbox_rows(cli)) == 2  # the failures are durable: the worker would retry them
    provider.stand_in.faults.clear()

    second = run(cli, "resync")

    assert second.exit_code == 0, second.output
    assert [provider.seats(s) for s in subs] == [3, 3, 3]
    assert sorted(w.path for w in provider.seat_writes()) == sorted(
        {w.path for w in provider.seat_writes()})  # one write per subscription
    assert len(provider.seat_writes()) == 3
    assert outbox_rows(cli) == []
    third = run(cli, "resync", "--check")
    assert third.exit_code == 0


def test_write_applied_but_answer_lost_is_not_sent_twice(
    cli: AppUnderTest, provider: World
) -> None:
    org, sub = org_with(cli, provider, 2)
    cli.add_members(org, 2)
    method, path = provider.dialect.seat_write
    provider.stand_in.faults.drop_next(1, apply=True, path_prefix=path, method=method)

    result = run(cli, "resync")

    assert result.exit_code == 0, result.output
    assert provider.seats(sub) == 4
    assert len(provider.seat_writes()) == 1
    assert run(cli, "resync", "--check").exit_code == 0


def test_rate_limits_slow_the_run_down_instead_of_failing_it(
    make_app: AppFactory, provider: World
) -> None:
    t = make_app({"SEAT_BILLING_SYNC_MODE": "manual", "SEAT_BILLING_MAX_REQUESTS_PER_SECOND": 50})
    t.app.cli.add_command(seats, "seats")
    with t.app.app_context():
        subs = []
        for _ in range(3):
            org, sub = org_with(t, provider, 2)
            provider.stand_in.set_seats(sub, 1)
            subs.append(sub)
        faults, (method, path) = provider.stand_in.faults, provider.dialect.seat_write
        faults.rate_limit_next(2, retry_after=0.2, path_prefix=provider.dialect.list_path,
                               method="GET")
        faults.rate_limit_next(2, retry_after=0.2, path_prefix=path, method=method)

        result = run(t, "resync", "--json")

        assert result.exit_code == 0, result.output
        summary = json.loads(result.output)["summary"]
        assert summary["slowdowns"] == 4
        assert [provider.seats(s) for s in subs] == [2, 2, 2]
        assert len([r for r in provider.stand_in.requests.all() if r.status == 429]) == 4
        assert len(provider.seat_writes()) == 3


def _resync(t: AppUnderTest, *args: str) -> Result:
    t.app.cli.add_command(seats, "seats")
    return t.app.test_cli_runner().invoke(args=["seats", "resync", *args])


def _checkout(t: AppUnderTest, provider: World, org_id: Any) -> str:
    """Buy through the app's own checkout and pay; no webhook reaches the app."""
    t.billing.authorize(lambda request, organization_id, action: True)
    answer = t.app.test_client().post(
        "/billing/checkout", json={"organization_id": org_id, "plan": provider.plan.name},
        headers={"Accept": "application/json"})
    assert answer.status_code == 200, answer.text
    checkout_id = str((answer.json or {})["id"])
    provider.stand_in.complete_checkout(checkout_id)
    subscription_id = provider.stand_in.checkout_subscription_id(checkout_id)
    assert subscription_id is not None
    # Forget that the checkout was open, as an app whose open-checkout record was lost would:
    # otherwise the next checkout request records this one and answers 409, which is right,
    # but these tests need a second subscription that only a later pull finds.
    owner_tags = t.db.metadata.tables["seat_billing_owner_tags"]
    with t.db.engine.begin() as conn:
        conn.execute(owner_tags.update().values(checkout_status=None))
    return subscription_id


def test_resync_finds_drift_on_the_subscription_that_is_billed(
    t: AppUnderTest, provider: World
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    older = provider.subscribe(t, org.id)
    newer = provider.subscribe(t, org.id)
    chosen = t.billing.subscription_for(org.id)
    assert chosen is not None and chosen.provider_subscription_id == newer
    provider.stand_in.set_seats(newer, 7)  # a dashboard edit; no webhook reaches the app

    check = _resync(t, "--check")
    assert check.exit_code == 1, check.output
    assert provider.seats(newer) == 7  # --check writes nothing

    result = _resync(t)

    assert result.exit_code == 0, result.output
    assert (provider.seats(older), provider.seats(newer)) == (2, 2)
    assert "1 updated" in result.output


def test_subscriptions_first_recorded_by_a_pull_keep_the_providers_order(
    t: AppUnderTest, provider: World
) -> None:
    """Two checkouts whose webhooks were lost: the pull records both, and the newer one is the
    organization's subscription, as it would have been had the webhooks arrived."""
    org = t.add_organization()
    t.add_members(org.id, 2)
    older = _checkout(t, provider, org.id)
    newer = _checkout(t, provider, org.id)

    result = _resync(t)
    assert result.exit_code == 0, result.output
    t.add_members(org.id, 1)

    chosen = t.billing.subscription_for(org.id)
    assert chosen is not None and chosen.provider_subscription_id == newer
    seats = [provider.stand_in.seats(sub, provider.plan) for sub in (older, newer)]
    assert seats == [2, 3]
