"""Both stand-ins keep the one interface (``ProviderStandIn``) the way their provider behaves.

Each test drives a stand-in only through the shared names and checks the result where the code
under test would see it: over HTTP with the real ``stripe`` / ``polar`` SDK (the small ``Api``
readers below are the only provider-specific code), and in the webhook events it emits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import stripe
from polar.base import PolarServerError
from polar.v2026_10.errors import PolarClientError

from flask_seat_billing import Plan
from flask_seat_billing.testing import ProviderStandIn, stand_in_for
from flask_seat_billing.testing.polar_server import PolarStandIn
from flask_seat_billing.testing.stripe_server import StripeStandIn

# The events each provider sends for what the interface does.
EVENTS = {
    "stripe": {
        "created": "customer.subscription.created",
        "updated": "customer.subscription.updated",
        "paused": "customer.subscription.paused",
        "resumed": "customer.subscription.resumed",
        "ended": "customer.subscription.deleted",
    },
    "polar": {
        "created": "subscription.created",
        "updated": "subscription.updated",
        "paused": "subscription.paused",
        "resumed": "subscription.resumed",
        "ended": "subscription.revoked",
    },
}


@dataclass
class Api:
    """What the code under test sees of a subscription, read through the provider's SDK."""

    stand_in: ProviderStandIn
    plan: Plan

    def read(self, subscription_id: str) -> tuple[str, int, dict[str, str]]:
        """(status, seats, metadata) as the API answers."""
        s = self.stand_in
        if isinstance(s, StripeStandIn):
            sub = s.client().v1.subscriptions.retrieve(subscription_id).to_dict()
            seat_price = self.plan.seat_price_id
            [seat] = [i for i in sub["items"]["data"] if i["price"]["id"] == seat_price]
            return sub["status"], int(seat["quantity"]), dict(sub["metadata"] or {})
        assert isinstance(s, PolarStandIn)
        got = s.client().subscriptions.get(subscription_id)
        return got.status, got.seats or 0, {k: str(v) for k, v in got.metadata.items()}

    def cancels_at_period_end(self, subscription_id: str) -> bool:
        """The API's ``cancel_at_period_end``."""
        s = self.stand_in
        if isinstance(s, StripeStandIn):
            return bool(s.client().v1.subscriptions.retrieve(subscription_id).cancel_at_period_end)
        assert isinstance(s, PolarStandIn)
        return bool(s.client().subscriptions.get(subscription_id).cancel_at_period_end)

    def open_checkout(self, organization_id: str, seats: int) -> str:
        s = self.stand_in
        if isinstance(s, StripeStandIn):
            session = s.client().v1.checkout.sessions.create({
                "mode": "subscription",
                "line_items": [
                    {"price": self.plan.plan_id, "quantity": 1},
                    {"price": str(self.plan.seat_price_id), "quantity": seats},
                ],
                "subscription_data": {"metadata": {"organization_id": organization_id}},
                "success_url": "https://app.test/ok",
                "cancel_url": "https://app.test/cancel",
            })
            return session.id
        assert isinstance(s, PolarStandIn)
        checkout = s.client().checkouts.create(
            products=[self.plan.plan_id], seats=seats, external_customer_id=organization_id,
            metadata={"organization_id": organization_id}, success_url="https://app.test/ok",
        )
        return checkout.id

    def charge_for_seats(self, subscription_id: str, seats: int) -> int:
        """Raise the seats with the charge taken now; the HTTP status of a refusal, else 200."""
        s = self.stand_in
        try:
            if isinstance(s, StripeStandIn):
                item = next(
                    i for i in s.subscription(subscription_id)["items"]["data"]
                    if i["price"]["id"] == self.plan.seat_price_id
                )
                s.client().v1.subscription_items.update(item["id"], {
                    "quantity": seats, "payment_behavior": "error_if_incomplete",
                    "proration_behavior": "always_invoice",
                })
            else:
                assert isinstance(s, PolarStandIn)
                s.client().subscriptions.update(
                    subscription_id, seats=seats, proration_behavior="invoice"
                )
        except stripe.StripeError as error:
            return int(error.http_status or 0)
        except (PolarClientError, PolarServerError) as error:
            return error.status_code
        return 200


@pytest.fixture(params=["stripe", "polar"])
def stand_in(request: pytest.FixtureRequest) -> Iterator[ProviderStandIn]:
    with stand_in_for(request.param) as running:
        yield running


@pytest.fixture
def plan(stand_in: ProviderStandIn) -> Plan:
    """A per-seat monthly plan arranged in the provider's own terms."""
    if isinstance(stand_in, StripeStandIn):
        stand_in.create_price(id="price_base", unit_amount=1900)
        stand_in.create_price(id="price_seat", unit_amount=1000)
        return Plan(name="pro", plan_id="price_base", seat_price_id="price_seat")
    assert isinstance(stand_in, PolarStandIn)
    product = stand_in.create_product("Team", price_per_seat=1000)
    return Plan(name="team", plan_id=product["id"])


@pytest.fixture
def api(stand_in: ProviderStandIn, plan: Plan) -> Api:
    return Api(stand_in, plan)


def events(stand_in: ProviderStandIn, kind: str) -> list[Any]:
    return stand_in.webhooks.events(EVENTS[stand_in.provider_name][kind])


def test_subscribe_creates_the_organizations_subscription(
    stand_in: ProviderStandIn, plan: Plan, api: Api
) -> None:
    sub = stand_in.subscribe(42, plan, 3)

    assert stand_in.seats(sub) == 3
    assert stand_in.subscription_status(sub) == "active"
    status, seats, metadata = api.read(sub)
    assert (status, seats) == ("active", 3)
    assert metadata == {"organization_id": "42", "plan": plan.name}
    assert stand_in.customer_of(sub)
    assert len(events(stand_in, "created")) == 1
    assert stand_in.subscription_writes() == []  # arranged on the provider's side, not sent


def test_subscribe_in_another_status_and_with_own_metadata(
    stand_in: ProviderStandIn, plan: Plan, api: Api
) -> None:
    sub = stand_in.subscribe("7", plan, 2, status="past_due", metadata={"tenant": "x"})

    assert api.read(sub) == ("past_due", 2, {"tenant": "x"})


def test_set_seats_is_a_dashboard_edit_with_an_update_event(
    stand_in: ProviderStandIn, plan: Plan, api: Api
) -> None:
    sub = stand_in.subscribe(1, plan, 3)
    updates = len(events(stand_in, "updated"))

    answer = stand_in.set_seats(sub, 7)

    assert answer["id"] == sub
    assert stand_in.seats(sub) == 7 and api.read(sub)[1] == 7
    assert len(events(stand_in, "updated")) == updates + 1
    assert stand_in.subscription_writes() == []


def test_status_goes_through_past_due_pause_and_cancel(
    stand_in: ProviderStandIn, plan: Plan, api: Api
) -> None:
    caps = stand_in.capabilities
    assert {"active", "past_due", "canceled"} <= caps.statuses
    sub = stand_in.subscribe(1, plan, 2)

    stand_in.set_status(sub, "past_due")
    assert api.read(sub)[0] == "past_due"
    stand_in.set_status(sub, "active")
    assert stand_in.subscription_status(sub) == "active"

    if caps.pause:
        stand_in.pause_subscription(sub)
        assert api.read(sub)[0] == "paused"
        assert len(events(stand_in, "paused")) == 1
        stand_in.resume_subscription(sub)
        assert api.read(sub)[0] == "active"
        assert len(events(stand_in, "resumed")) == 1

    stand_in.cancel_subscription(sub)
    assert api.read(sub)[0] == "canceled"
    assert len(events(stand_in, "ended")) == 1


def test_cancel_at_period_end_keeps_the_subscription_active(
    stand_in: ProviderStandIn, plan: Plan, api: Api
) -> None:
    sub = stand_in.subscribe(1, plan, 2)
    assert stand_in.cancel_at_period_end(sub) is False

    stand_in.cancel_subscription(sub, at_period_end=True)

    assert api.read(sub)[0] == "active"
    assert stand_in.cancel_at_period_end(sub) is True and api.cancels_at_period_end(sub)
    assert events(stand_in, "ended") == []


def test_current_period_end_moves_on_at_the_renewal(
    stand_in: ProviderStandIn, plan: Plan
) -> None:
    sub = stand_in.subscribe(1, plan, 2)
    end = stand_in.current_period_end(sub)
    assert timedelta(days=27) < end - stand_in.clock() <= timedelta(days=31)

    renewed = stand_in.advance_time((end - stand_in.clock()).total_seconds() + 60)

    assert renewed == [sub]
    assert timedelta(days=27) < stand_in.current_period_end(sub) - end <= timedelta(days=31)


def test_subscription_ids_lists_every_subscription_oldest_first(
    stand_in: ProviderStandIn, plan: Plan
) -> None:
    first = stand_in.subscribe(1, plan, 2)
    second = stand_in.subscribe(2, plan, 3)
    stand_in.cancel_subscription(first)

    assert stand_in.subscription_ids() == [first, second]


def test_a_final_status_ends_the_subscription(
    stand_in: ProviderStandIn, plan: Plan, api: Api
) -> None:
    """``final_statuses`` say where a subscription ends: ``unpaid`` only on Polar, where an
    unpaid subscription is revoked; on Stripe it can still be paid and become active."""
    caps = stand_in.capabilities
    assert {"canceled", "incomplete_expired"} <= caps.final_statuses <= caps.statuses
    assert ("unpaid" in caps.final_statuses) == (stand_in.provider_name == "polar")
    sub = stand_in.subscribe(1, plan, 2)

    stand_in.set_status(sub, "unpaid")

    assert api.read(sub)[0] == "unpaid"
    if "unpaid" in caps.final_statuses:
        assert len(events(stand_in, "ended")) == 1
    else:
        assert events(stand_in, "ended") == []
        stand_in.set_status(sub, "active")
        assert api.read(sub)[0] == "active"


def test_an_unknown_status_is_refused(stand_in: ProviderStandIn, plan: Plan) -> None:
    sub = stand_in.subscribe(1, plan, 2)
    with pytest.raises(ValueError, match="no subscription status 'overdue'"):
        stand_in.set_status(sub, "overdue")
    assert stand_in.subscription_status(sub) == "active"


def test_bulk_subscribe_is_silent_and_in_order(
    stand_in: ProviderStandIn, plan: Plan, api: Api
) -> None:
    ids = stand_in.bulk_subscribe(range(5), plan, seats=2)

    assert len(set(ids)) == 5
    assert [api.read(i)[2]["organization_id"] for i in ids] == ["0", "1", "2", "3", "4"]
    assert {stand_in.seats(i) for i in ids} == {2}
    assert events(stand_in, "created") == []
    stand_in.bulk_subscribe(["a"], plan, emit_events=True)
    assert len(events(stand_in, "created")) == 1


def test_complete_checkout_creates_the_subscription(
    stand_in: ProviderStandIn, api: Api
) -> None:
    checkout = api.open_checkout("9", seats=4)
    assert stand_in.checkout_subscription_id(checkout) is None

    stand_in.complete_checkout(checkout)

    sub = stand_in.checkout_subscription_id(checkout)
    assert sub is not None
    assert api.read(sub)[:2] == ("active", 4)
    assert api.read(sub)[2]["organization_id"] == "9"


def test_failing_payments_refuse_a_charged_seat_increase_until_lifted(
    stand_in: ProviderStandIn, plan: Plan, api: Api
) -> None:
    sub = stand_in.subscribe(1, plan, 3)
    stand_in.fail_payments(stand_in.customer_of(sub))

    assert api.charge_for_seats(sub, 5) == 402
    assert stand_in.seats(sub) == 3

    stand_in.fail_payments(stand_in.customer_of(sub), failing=False)
    assert api.charge_for_seats(sub, 5) == 200
    assert stand_in.seats(sub) == 5
    assert len(stand_in.subscription_writes()) == 1


def test_faults_apply_to_subscription_writes(
    stand_in: ProviderStandIn, plan: Plan, api: Api
) -> None:
    sub = stand_in.subscribe(1, plan, 3)
    stand_in.faults.fail_next(1, status=503)

    assert api.charge_for_seats(sub, 4) == 503
    assert stand_in.seats(sub) == 3 and stand_in.subscription_writes() == []
    assert api.charge_for_seats(sub, 4) == 200


def test_latency_delays_every_answer_and_outlives_cleared_faults(
    stand_in: ProviderStandIn, plan: Plan, api: Api
) -> None:
    sub = stand_in.subscribe(1, plan, 3)
    stand_in.faults.set_latency(0.3)
    stand_in.faults.fail_next(1, status=503)
    stand_in.faults.clear()

    started = time.monotonic()
    assert api.charge_for_seats(sub, 4) == 200
    assert time.monotonic() - started >= 0.3  # a floor: the answer waited for the latency
    assert stand_in.seats(sub) == 4
    with pytest.raises(ValueError, match="latency must be >= 0"):
        stand_in.faults.set_latency(-1)


def test_reset_forgets_subscriptions_requests_and_events(
    stand_in: ProviderStandIn, plan: Plan, api: Api
) -> None:
    sub = stand_in.subscribe(1, plan, 3)
    api.charge_for_seats(sub, 4)

    stand_in.reset()

    assert len(stand_in.requests) == 0 and stand_in.webhooks.events() == []
    with pytest.raises(Exception):  # noqa: B017 - each provider has its own "not found"
        stand_in.seats(sub)


def test_app_config_and_capabilities_name_the_provider(stand_in: ProviderStandIn) -> None:
    config = stand_in.app_config("secret")
    assert config["SEAT_BILLING_PROVIDER"] == stand_in.provider_name
    assert stand_in.url in config.values() and "secret" in config.values()
    caps = stand_in.capabilities
    assert caps.separate_seat_price == (stand_in.provider_name == "stripe")
    assert caps.has("proration:none") == (stand_in.provider_name == "stripe")
    if not caps.invoice_preview:
        assert "invoice preview" in caps.why_not("invoice_preview")
    with pytest.raises(ValueError):
        caps.why_not("pause")


def test_events_of_names_each_kind_as_the_provider_does(
    stand_in: ProviderStandIn, plan: Plan
) -> None:
    sub = stand_in.subscribe("org-1", plan, 2)
    stand_in.set_seats(sub, 3)

    assert dict(stand_in.event_types) == EVENTS[stand_in.provider_name]
    created = EVENTS[stand_in.provider_name]["created"]
    assert [e["type"] for e in stand_in.events_of("created")] == [created]
    [updated] = stand_in.events_of("updated")
    assert updated["id"] in {e["id"] for e in stand_in.events()}


def test_webhook_headers_verify_with_the_providers_sdk(
    stand_in: ProviderStandIn, plan: Plan
) -> None:
    stand_in.subscribe("org-1", plan, 2)
    [created] = stand_in.events_of("created")
    secret = stand_in.new_webhook_secret()

    if isinstance(stand_in, StripeStandIn):
        body = json.dumps(created).encode()
        headers = stand_in.webhook_headers(body, secret, event_id=created["id"])
        event = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], secret)
        assert event["id"] == created["id"]
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(body, headers["Stripe-Signature"], secret + "x")
    else:
        from polar.v2026_10.webhooks import PolarWebhookVerificationError, validate_event

        body = json.dumps({k: v for k, v in created.items() if k != "id"}).encode()
        headers = stand_in.webhook_headers(body, secret, event_id=created["id"])
        assert headers["webhook-id"] == created["id"]
        assert validate_event(body, headers, secret).type == created["type"]
        with pytest.raises(PolarWebhookVerificationError):
            validate_event(body, headers, secret + "x")
