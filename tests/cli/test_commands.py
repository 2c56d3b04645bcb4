"""``flask seats status | sync-pending | check-config | policies`` and the CLI's error handling."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import Result

from flask_seat_billing import Plan, Product
from flask_seat_billing.cli import seats
from tests.apps import BASE_PRICE, YEARLY_BASE, YEARLY_SEAT, AppUnderTest
from tests.conftest import AppFactory, subscribe
from tests.helpers import outbox_rows


@pytest.fixture
def cli(make_app: AppFactory) -> Iterator[AppUnderTest]:
    t = make_app({"SEAT_BILLING_SYNC_MODE": "manual"})
    t.app.cli.add_command(seats, "seats")
    with t.app.app_context():
        yield t


def run(t: AppUnderTest, *args: str) -> Result:
    return t.app.test_cli_runner().invoke(args=["seats", *args])


def test_status_shows_billing_pending_syncs_and_last_change(cli: AppUnderTest, stripe: Any) -> None:
    org = cli.add_organization()
    cli.add_members(org.id, 2)
    subscribe(cli, stripe, org.id)
    cli.billing.sync_pending()
    cli.add_members(org.id, 1)  # waits in the outbox (manual mode)
    stripe.faults.fail_next(1, status=500, path_prefix="/v1/subscription_items/")
    cli.billing.sync_pending()  # fails once: the row keeps the error

    result = run(cli, "status", "--json")

    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["organization"] == str(org.id)
    assert (row["plan"], row["status"], row["billable"], row["provider_seats"]) == (
        "pro-monthly", "active", 3, 2)
    assert row["pending"]["attempts"] == 1 and "Stripe" in row["pending"]["last_error"]
    text = run(cli, "status", "--org", str(org.id))
    assert text.exit_code == 0 and "pro-monthly" in text.output and "x1" in text.output


def test_status_last_change_and_unknown_org(cli: AppUnderTest, stripe: Any) -> None:
    org = cli.add_organization()
    cli.add_members(org.id, 2)
    subscribe(cli, stripe, org.id)
    cli.add_members(org.id, 1)
    cli.billing.sync_pending()

    [row] = json.loads(run(cli, "status", "--json").output)
    assert row["pending"] is None
    assert (row["last_change"]["from_seats"], row["last_change"]["to_seats"]) == (2, 3)

    missing = run(cli, "status", "--org", "999")
    assert missing.exit_code == 2
    assert missing.output.strip() == "Error: Unknown organization: 999."


def test_sync_pending_drains_and_reports_failures(cli: AppUnderTest, stripe: Any) -> None:
    good, bad = cli.add_organization("Good"), cli.add_organization("Bad")
    for org in (good, bad):
        cli.add_members(org.id, 1)
    subscribe(cli, stripe, good.id)
    subscribe(cli, stripe, bad.id)
    cli.billing.sync_pending()
    cli.add_members(good.id, 1)
    cli.add_members(bad.id, 1)
    stripe.faults.fail_next(1, status=400, path_prefix="/v1/subscription_items/")

    result = run(cli, "sync-pending")

    assert result.exit_code == 1
    assert "still failing" in result.output and "Stripe refused" in result.output
    [parked] = outbox_rows(cli)  # one was refused (parked), the other went through
    assert parked["status"] == "failed"
    assert "1 synced, 1 still failing" in result.output

    cli.add_members(int(parked["organization_key"]), 1)  # a new change un-parks the row
    again = run(cli, "sync-pending")
    assert again.exit_code == 0, again.output
    assert outbox_rows(cli) == []


def test_check_config_passes_on_good_prices(cli: AppUnderTest, stripe: Any) -> None:
    result = run(cli, "check-config")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "configuration ok"


def test_check_config_finds_bad_prices(make_app: AppFactory, stripe: Any) -> None:
    product = stripe.create_product(name="Bad")["id"]
    stripe.create_price(id="price_archived", product=product, active=False)
    stripe.create_price(id="price_once", product=product, interval=None)
    stripe.create_price(id="price_eur", product=product, currency="eur")
    plans = [
        Plan(name="archived", plan_id=BASE_PRICE, seat_price_id="price_archived"),
        Plan(name="one-time", plan_id="price_once"),
        Plan(name="euro", plan_id=BASE_PRICE, seat_price_id="price_eur"),
        Plan(name="missing", plan_id="price_nope"),
        Plan(name="wrong-interval", plan_id=YEARLY_BASE, seat_price_id=YEARLY_SEAT,
             interval="month"),
    ]
    t = make_app(products=[Product(id="bad", name="Bad", currency="USD", plans=plans)])
    t.app.cli.add_command(seats, "seats")

    result = t.app.test_cli_runner().invoke(args=["seats", "check-config"])

    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert "plan archived: seat price price_archived is archived (inactive)" in lines
    assert "plan one-time: price price_once is not recurring (one-time)" in lines
    assert "plan euro: seat price price_eur is in eur, product bad is in USD" in lines
    assert "plan missing: price price_nope does not exist" in lines
    assert "plan wrong-interval: price price_base_y bills every year, plan interval is month" \
        in lines
    assert len(lines) == 6  # the yearly seat price is wrong for that plan too


def test_policies_lists_hooks_with_descriptions(cli: AppUnderTest) -> None:
    @cli.billing.policy("after_member_add", name="welcome", description="Send a welcome mail.")
    def welcome(ctx: Any) -> None:
        return None

    result = run(cli, "policies")

    assert result.exit_code == 0
    assert "after_member_add\n  welcome: Send a welcome mail." in result.output
    for policy in cli.billing.policies():
        assert f"  {policy.name}: {policy.description}" in result.output


def test_provider_unreachable_is_one_line_exit_2(make_app: AppFactory) -> None:
    t = make_app({"SEAT_BILLING_STRIPE_API_BASE": "http://127.0.0.1:9"})
    t.app.cli.add_command(seats, "seats")
    with t.app.app_context():
        for command in (["resync"], ["check-config"]):
            result = t.app.test_cli_runner().invoke(args=["seats", *command])
            assert result.exit_code == 2
            [line] = result.output.strip().splitlines()
            assert line.startswith("Error: provider unavailable: Stripe unreachable")


def test_rejected_keys_are_one_line_exit_2(make_app: AppFactory) -> None:
    t = make_app({"SEAT_BILLING_STRIPE_SECRET_KEY": "sk_live_not_accepted_here"})
    t.app.cli.add_command(seats, "seats")
    with t.app.app_context():
        result = t.app.test_cli_runner().invoke(args=["seats", "resync"])
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: provider rejected the credentials: ")


def test_app_without_the_extension_is_exit_2(make_app: AppFactory) -> None:
    t = make_app(init=False)
    t.app.cli.add_command(seats, "seats")
    result = t.app.test_cli_runner().invoke(args=["seats", "status"])
    assert result.exit_code == 2
    assert "not initialized" in result.output and "Traceback" not in result.output
