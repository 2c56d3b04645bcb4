"""The Polar stand-in, exercised only through the real ``polar`` SDK (``polar.v2026_10``).

What matters is that code written against the SDK sees what it would see against Polar: typed
results that deserialize, typed errors for each refusal, ``retry_after`` on 429, and webhooks that
``validate_event`` accepts (and rejects when tampered with).
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from polar import PolarClientError, PolarNetworkError, PolarServerError, deserialize
from polar.base import PolarRateLimitError
from polar.v2026_10 import Polar
from polar.v2026_10 import outputs as out
from polar.v2026_10.errors import (
    AlreadyCanceledSubscription,
    HTTPValidationError,
    ResourceNotFound,
    SubscriptionsUpdate402Error,
    SubscriptionsUpdate403Error,
    SubscriptionsUpdate409Error,
)
from polar.v2026_10.webhooks import (
    PolarWebhookVerificationError,
    WebhookPayload,
    WebhookSubscriptionUpdatedPayload,
    validate_event,
)

from flask_seat_billing import Plan
from flask_seat_billing.testing.polar_server import (
    PolarAPIError,
    PolarStandIn,
    SeatTier,
    generate_webhook_secret,
    sign_webhook,
)

START = datetime(2026, 1, 1, tzinfo=timezone.utc)  # period: Jan 1 .. Feb 1 (31 days)


class Clock:
    """A settable clock, so proration amounts are exact."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


_CLOCK = Clock(START)


@pytest.fixture(scope="module")
def _server() -> Iterator[PolarStandIn]:
    """One server for the module (starting and stopping one costs ~0.5 s); tests get it reset."""
    with PolarStandIn(access_token="polar_oat_test", clock=_CLOCK) as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    _CLOCK.now = START
    return _CLOCK


@pytest.fixture
def standin(_server: PolarStandIn, clock: Clock) -> Iterator[PolarStandIn]:
    _server.reset()
    yield _server
    for endpoint in _server.webhooks.endpoints():
        _server.webhooks.remove_webhook_endpoint(endpoint.id)


@pytest.fixture
def polar(standin: PolarStandIn) -> Iterator[Polar]:
    with Polar("polar_oat_test", base_url=standin.url) as client:
        yield client


@pytest.fixture
def product(standin: PolarStandIn) -> dict[str, Any]:
    return standin.create_product(
        "Team", price_per_seat=1000, fixed_price=2000, minimum_seats=2, maximum_seats=20
    )


@pytest.fixture
def sub(standin: PolarStandIn, product: dict[str, Any]) -> dict[str, Any]:
    return standin.create_subscription(
        product["id"], seats=3, external_customer_id="org_1", metadata={"org": "1"}
    )


# -- reads --------------------------------------------------------------------------------------
def test_get_subscription_is_a_typed_sdk_object(polar: Polar, sub: dict[str, Any]) -> None:
    got = polar.subscriptions.get(sub["id"])
    assert isinstance(got, out.Subscription)
    assert (got.seats, got.status, got.metadata) == (3, "active", {"org": "1"})
    assert got.customer.external_id == "org_1"
    assert got.amount == 2000 + 3 * 1000
    seat_price = next(p for p in got.product.prices if isinstance(p, out.ProductPriceSeatBased))
    assert (seat_price.seat_tiers.minimum_seats, seat_price.seat_tiers.maximum_seats) == (2, 20)
    assert got.current_period_end.startswith("2026-02-01")


def test_unknown_subscription_is_resource_not_found(polar: Polar) -> None:
    with pytest.raises(ResourceNotFound) as caught:
        polar.subscriptions.get("00000000-0000-4000-8000-000000000000")
    assert caught.value.status_code == 404
    assert caught.value.error.error == "ResourceNotFound"


def test_wrong_or_missing_token_is_401(standin: PolarStandIn, sub: dict[str, Any]) -> None:
    with Polar("wrong", base_url=standin.url) as client, pytest.raises(PolarClientError) as caught:
        client.subscriptions.get(sub["id"])
    assert caught.value.status_code == 401
    assert httpx.get(f"{standin.url}/v1/subscriptions/").status_code == 401


def test_list_paginates_over_more_than_100(
    standin: PolarStandIn, polar: Polar, product: dict[str, Any]
) -> None:
    ids = standin.bulk_subscribe(range(150), Plan(name="team", plan_id=product["id"]), seats=2)
    first = polar.subscriptions.list(limit=100)
    assert (first.pagination.total_count, first.pagination.max_page) == (150, 2)
    assert len(first.items) == 100
    assert first.items[0].id == ids[-1]  # default sorting: -started_at
    second = polar.subscriptions.list(limit=100, page=2)
    assert len(second.items) == 50
    seen = [s.id for s in polar.subscriptions.iter_list(limit=100)]
    assert sorted(seen) == sorted(ids)
    oldest_first = polar.subscriptions.list(limit=3, sorting=["started_at"])
    assert [s.id for s in oldest_first.items] == ids[:3]
    with pytest.raises(HTTPValidationError):
        polar.subscriptions.list(limit=101)


def test_list_filters(
    standin: PolarStandIn, polar: Polar, product: dict[str, Any], sub: dict[str, Any]
) -> None:
    other = standin.create_product("Other", price_per_seat=500)
    standin.create_subscription(other["id"], seats=1, external_customer_id="org_2")
    gone = standin.create_subscription(product["id"], 2, "org_3", metadata={"org": "3"})
    standin.revoke_subscription(gone["id"])

    def ids(**filters: Any) -> set[str]:
        return {s.id for s in polar.subscriptions.iter_list(**filters)}

    assert ids(external_customer_id="org_1") == {sub["id"]}
    assert ids(customer_id=sub["customer_id"]) == {sub["id"]}
    assert ids(product_id=product["id"]) == {sub["id"], gone["id"]}
    assert ids(product_id=product["id"], active=True) == {sub["id"]}
    assert ids(status="canceled") == {gone["id"]}
    assert ids(metadata={"org": ["1", "3"]}) == {sub["id"], gone["id"]}
    assert ids(external_customer_id="nobody") == set()


# -- seat updates -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("behavior", "billed"), [("invoice", "invoiced"), ("prorate", "next_invoice")]
)
def test_update_seats_applies_now_and_records_proration(
    standin: PolarStandIn,
    polar: Polar,
    clock: Clock,
    sub: dict[str, Any],
    behavior: str,
    billed: str,
) -> None:
    clock.now = START + timedelta(days=15)  # 16 of 31 days left
    updated = polar.subscriptions.update(sub["id"], seats=5, proration_behavior=behavior)
    assert updated.seats == 5 and standin.seats(sub["id"]) == 5
    (change,) = standin.seat_changes(sub["id"])
    assert (change.from_seats, change.to_seats, change.billed) == (3, 5, billed)
    assert change.amount == round(2 * 1000 * 16 / 31)
    assert [e["type"] for e in standin.events()][-1] == "subscription.updated"


def test_update_seats_next_period_is_pending_until_renewal(
    standin: PolarStandIn, polar: Polar, sub: dict[str, Any]
) -> None:
    updated = polar.subscriptions.update(sub["id"], seats=8, proration_behavior="next_period")
    assert updated.seats == 3
    assert updated.pending_update is not None and updated.pending_update.seats == 8
    assert standin.seat_changes(sub["id"])[0].amount == 0
    renewed = standin.renew_subscription(sub["id"])
    assert renewed["seats"] == 8 and renewed["pending_update"] is None
    assert renewed["current_period_start"].startswith("2026-02-01")


def test_decrease_is_a_credit(standin: PolarStandIn, polar: Polar, sub: dict[str, Any]) -> None:
    standin.fail_payments("org_1")  # a credit needs no charge
    polar.subscriptions.update(sub["id"], seats=2, proration_behavior="invoice")
    assert standin.seat_changes(sub["id"])[0].amount == -1000


def test_seats_cannot_be_combined_with_metadata(polar: Polar, sub: dict[str, Any]) -> None:
    with pytest.raises(HTTPValidationError) as caught:
        polar.subscriptions.update(sub["id"], seats=4, metadata={"x": "y"})
    assert caught.value.status_code == 422
    assert caught.value.error.detail is not None
    assert caught.value.error.detail[0].type == "extra_forbidden"


@pytest.mark.parametrize("at_period_end", [False, True])
def test_canceled_or_canceling_is_403(
    standin: PolarStandIn, polar: Polar, sub: dict[str, Any], at_period_end: bool
) -> None:
    standin.cancel_subscription(sub["id"], at_period_end=at_period_end)
    with pytest.raises(SubscriptionsUpdate403Error) as caught:
        polar.subscriptions.update(sub["id"], seats=4, proration_behavior="invoice")
    assert caught.value.status_code == 403
    assert caught.value.error.error == "AlreadyCanceledSubscription"
    assert standin.seats(sub["id"]) == 3


@pytest.mark.parametrize("seats", [1, 21])
def test_below_minimum_or_above_maximum_is_422(
    standin: PolarStandIn, polar: Polar, sub: dict[str, Any], seats: int
) -> None:
    with pytest.raises(HTTPValidationError) as caught:
        polar.subscriptions.update(sub["id"], seats=seats)
    assert caught.value.status_code == 422
    assert caught.value.error.detail is not None
    assert caught.value.error.detail[0].loc == ["body", "seats"]
    assert standin.seats(sub["id"]) == 3


def test_below_assigned_seats_is_400(
    standin: PolarStandIn, polar: Polar, sub: dict[str, Any]
) -> None:
    standin.assign_seats(sub["id"], 3)
    with pytest.raises(PolarClientError) as caught:
        polar.subscriptions.update(sub["id"], seats=2)
    assert caught.value.status_code == 400
    assert json.loads(caught.value.error)["error"] == "BadRequest"


def test_failed_payment_is_402_and_changes_nothing(
    standin: PolarStandIn, polar: Polar, sub: dict[str, Any]
) -> None:
    standin.fail_payments(sub["customer_id"])
    events_before = len(standin.events())
    with pytest.raises(SubscriptionsUpdate402Error) as caught:
        polar.subscriptions.update(sub["id"], seats=6, proration_behavior="invoice")
    assert caught.value.status_code == 402
    assert caught.value.error.error == "PaymentFailed"
    assert standin.seats(sub["id"]) == 3
    assert standin.seat_changes() == [] and len(standin.events()) == events_before
    assert standin.writes() == []
    standin.fail_payments(sub["customer_id"], False)
    assert polar.subscriptions.update(sub["id"], seats=6).seats == 6


def test_python_side_refusals_match_the_api(standin: PolarStandIn, sub: dict[str, Any]) -> None:
    with pytest.raises(PolarAPIError) as caught:
        standin.update_seats(sub["id"], 99)
    assert caught.value.status == 422
    assert standin.set_seats(sub["id"], 99)["seats"] == 99  # the dashboard is not refused


def test_cancel_uncancel_and_revoke_through_the_sdk(
    standin: PolarStandIn, polar: Polar, sub: dict[str, Any]
) -> None:
    canceling = polar.subscriptions.update(sub["id"], cancel_at_period_end=True)
    assert canceling.cancel_at_period_end and canceling.status == "active"
    assert polar.subscriptions.update(sub["id"], cancel_at_period_end=False).ends_at is None
    with pytest.raises(SubscriptionsUpdate409Error):
        polar.subscriptions.update(sub["id"], cancel_at_period_end=False)
    assert polar.subscriptions.revoke(sub["id"]).status == "canceled"
    with pytest.raises(AlreadyCanceledSubscription):
        polar.subscriptions.revoke(sub["id"])
    types = [e["type"] for e in standin.events()]
    assert types[2:] == [
        "subscription.updated",
        "subscription.canceled",
        "subscription.updated",
        "subscription.uncanceled",
        "subscription.updated",
        "subscription.canceled",
        "subscription.revoked",
    ]


# -- faults -------------------------------------------------------------------------------------
def test_rate_limit_reaches_the_sdk_with_retry_after(
    standin: PolarStandIn, polar: Polar, sub: dict[str, Any]
) -> None:
    standin.faults.rate_limit_next(retry_after=7)
    with pytest.raises(PolarRateLimitError) as caught:
        polar.subscriptions.update(sub["id"], seats=4)
    assert (caught.value.status_code, caught.value.retry_after) == (429, 7)
    standin.faults.rate_limit_next(retry_after=0.5)  # Polar sends whole seconds
    with pytest.raises(PolarRateLimitError) as caught:
        polar.subscriptions.get(sub["id"])
    assert caught.value.retry_after == 1
    assert standin.seats(sub["id"]) == 3
    assert [r.fault for r in standin.requests] == ["rate_limit", "rate_limit"]


def test_server_error_is_not_applied(
    standin: PolarStandIn, polar: Polar, sub: dict[str, Any]
) -> None:
    standin.faults.fail_next(status=503, method="PATCH")
    with pytest.raises(PolarServerError) as caught:
        polar.subscriptions.update(sub["id"], seats=4)
    assert caught.value.status_code == 503
    assert standin.seats(sub["id"]) == 3
    assert polar.subscriptions.update(sub["id"], seats=4).seats == 4
    assert len(standin.writes()) == 1


def test_timeout_after_the_change_was_applied(standin: PolarStandIn, sub: dict[str, Any]) -> None:
    standin.faults.stall_next(seconds=0.5, apply=True)
    with Polar("polar_oat_test", base_url=standin.url, timeout=0.1) as impatient:
        with pytest.raises(PolarNetworkError):
            impatient.subscriptions.update(sub["id"], seats=4)
    assert standin.seats(sub["id"]) == 4


def test_dropped_connection_is_a_network_error(
    standin: PolarStandIn, polar: Polar, sub: dict[str, Any]
) -> None:
    standin.faults.drop_next()
    with pytest.raises(PolarNetworkError):
        polar.subscriptions.get(sub["id"])


# -- checkout and portal ------------------------------------------------------------------------
def test_checkout_create_get_and_complete(
    standin: PolarStandIn, polar: Polar, product: dict[str, Any]
) -> None:
    checkout = polar.checkouts.create(
        products=[product["id"]],
        seats=4,
        external_customer_id="org_9",
        metadata={"organization_id": "9"},
        success_url="https://app.test/billing/ok?checkout_id={CHECKOUT_ID}",
    )
    assert checkout.url == f"{standin.url}/checkout/{checkout.id}"
    assert (checkout.seats, checkout.status, checkout.amount) == (4, "open", 2000 + 4000)
    assert polar.checkouts.get(checkout.id).external_customer_id == "org_9"
    assert standin.checkout(checkout.id)["url"] == checkout.url

    created = standin.complete_checkout(checkout.id)
    assert (created["seats"], created["metadata"]) == (4, {"organization_id": "9"})
    assert created["customer"]["external_id"] == "org_9"
    done = polar.checkouts.get(checkout.id)
    assert (done.status, done.subscription_id) == ("succeeded", created["id"])
    listed = polar.subscriptions.list(external_customer_id="org_9")
    assert [s.id for s in listed.items] == [created["id"]]
    assert [e["type"] for e in standin.events()] == ["subscription.created", "subscription.active"]


def test_checkout_refuses_seats_outside_the_product_limits(
    polar: Polar, product: dict[str, Any]
) -> None:
    with pytest.raises(HTTPValidationError):
        polar.checkouts.create(products=[product["id"]], seats=21)


def test_hosted_checkout_page_pays_and_redirects(
    standin: PolarStandIn, polar: Polar, product: dict[str, Any]
) -> None:
    checkout = polar.checkouts.create(
        products=[product["id"]],
        seats=2,
        external_customer_id="org_5",
        success_url="https://app.test/ok?checkout_id={CHECKOUT_ID}",
    )
    page = httpx.get(checkout.url)
    assert page.status_code == 200 and 'id="pay"' in page.text.replace("'", '"')
    paid = httpx.post(checkout.url)
    assert paid.status_code == 303
    assert paid.headers["location"] == f"https://app.test/ok?checkout_id={checkout.id}"
    assert polar.checkouts.get(checkout.id).status == "succeeded"


def test_checkout_payment_failure(
    standin: PolarStandIn, polar: Polar, product: dict[str, Any]
) -> None:
    checkout = polar.checkouts.create(products=[product["id"]], external_customer_id="org_6")
    standin.fail_payments("org_6")
    assert httpx.post(checkout.url).status_code == 402
    assert polar.checkouts.get(checkout.id).status == "open"


def test_customer_portal_url(standin: PolarStandIn, polar: Polar, sub: dict[str, Any]) -> None:
    session = polar.customer_sessions.create(
        external_customer_id="org_1", return_url="https://app.test/billing"
    )
    assert isinstance(session, out.CustomerSession)
    assert session.customer_portal_url.startswith(f"{standin.url}/portal?")
    assert session.customer.external_id == "org_1"
    page = httpx.get(session.customer_portal_url)
    assert page.status_code == 200 and sub["id"] in page.text
    by_id = polar.customer_sessions.create(customer_id=sub["customer_id"])
    assert by_id.customer_id == sub["customer_id"]
    with pytest.raises(HTTPValidationError):
        polar.customer_sessions.create(external_customer_id="nobody")
    assert httpx.get(f"{standin.url}/portal?customer_session_token=x").status_code == 401


def test_products_and_customers_deserialize(
    polar: Polar, product: dict[str, Any], sub: dict[str, Any]
) -> None:
    assert polar.products.get(product["id"]).name == "Team"
    assert polar.products.list().pagination.total_count == 1
    made = polar.products.create(
        name="Graduated",
        recurring_interval="month",
        prices=[
            {
                "amount_type": "seat_based",
                "seat_tiers": {
                    "seat_tier_type": "graduated",
                    "tiers": [
                        {"min_seats": 1, "max_seats": 5, "price_per_seat": 1000},
                        {"min_seats": 6, "price_per_seat": 800},
                    ],
                },
            }
        ],
    )
    assert polar.products.get(made.id).prices[0].amount_type == "seat_based"
    assert polar.customers.get_external("org_1").id == sub["customer_id"]
    created = polar.customers.create(email="new@example.com", external_id="org_7")
    assert polar.customers.get(created.id).external_id == "org_7"


# -- webhooks -----------------------------------------------------------------------------------
class Receiver:
    """A tiny webhook endpoint that verifies each delivery with the SDK's ``validate_event``."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.accepted: list[tuple[str, WebhookPayload]] = []
        self.rejected = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    event = validate_event(body, dict(self.headers.items()), receiver.secret)
                except PolarWebhookVerificationError:
                    receiver.rejected += 1
                    self.send_response(403)
                else:
                    receiver.accepted.append((self.headers["webhook-id"], event))
                    self.send_response(202)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhooks/polar"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(standin: PolarStandIn) -> Iterator[Receiver]:
    hook = Receiver(generate_webhook_secret())  # a Polar-style secret, used as is
    standin.add_webhook_endpoint(hook.url, hook.secret)
    # The SDK's first validate_event in a process builds its loader (seconds on a busy
    # machine): give deliveries to this receiver time for that, not the default 5 s.
    previous, standin.webhooks.timeout = standin.webhooks.timeout, 60.0
    yield hook
    standin.webhooks.timeout = previous
    hook.close()


def test_webhooks_validate_with_the_sdk(
    standin: PolarStandIn, polar: Polar, receiver: Receiver, product: dict[str, Any]
) -> None:
    created = standin.create_subscription(product["id"], seats=3, external_customer_id="org_1")
    polar.subscriptions.update(created["id"], seats=5, proration_behavior="invoice")
    deliveries = standin.deliver_pending()
    assert [d.status_code for d in deliveries] == [202, 202, 202]
    types = [event.type for _, event in receiver.accepted]
    assert types == ["subscription.created", "subscription.active", "subscription.updated"]
    last = receiver.accepted[-1][1]
    assert isinstance(last, WebhookSubscriptionUpdatedPayload)
    assert (last.data.id, last.data.seats) == (created["id"], 5)
    assert standin.deliver_pending() == []  # acknowledged events are not pending any more


def test_webhook_duplicates_keep_their_id_and_order_can_be_reversed(
    standin: PolarStandIn, receiver: Receiver, sub: dict[str, Any]
) -> None:
    standin.set_seats(sub["id"], 4)
    standin.deliver_pending(times=2, order="reversed")
    ids = [webhook_id for webhook_id, _ in receiver.accepted]
    assert len(ids) == 6 and len(set(ids)) == 3
    emitted = [e["id"] for e in standin.events()]
    assert ids[:3] == emitted[::-1]
    standin.deliver(emitted[0])
    assert receiver.accepted[-1][0] == emitted[0]


@pytest.mark.parametrize(
    ("signature", "offset"), [("bad", 0), ("missing", 0), ("valid", -600), ("valid", 600)]
)
def test_tampered_or_stale_webhooks_are_rejected(
    standin: PolarStandIn, receiver: Receiver, sub: dict[str, Any], signature: Any, offset: int
) -> None:
    event_id = standin.events()[0]["id"]
    (delivery,) = standin.deliver(event_id, signature=signature, timestamp_offset=offset)
    assert delivery.status_code == 403
    assert receiver.accepted == [] and receiver.rejected == 1


def test_event_payloads_deserialize_as_sdk_webhook_payloads(
    standin: PolarStandIn, sub: dict[str, Any]
) -> None:
    standin.set_status(sub["id"], "past_due")
    standin.set_status(sub["id"], "active")
    standin.cancel_subscription(sub["id"], at_period_end=True)
    standin.uncancel_subscription(sub["id"])
    standin.revoke_subscription(sub["id"])
    payloads = standin.events()
    loaded = [
        deserialize({k: v for k, v in p.items() if k != "id"}, WebhookPayload) for p in payloads
    ]
    assert {p.type for p in loaded} >= {
        "subscription.created",
        "subscription.active",
        "subscription.updated",
        "subscription.past_due",
        "subscription.canceled",
        "subscription.uncanceled",
        "subscription.revoked",
    }


def test_reset_forgets_everything(standin: PolarStandIn, polar: Polar, sub: dict[str, Any]) -> None:
    standin.reset()
    assert polar.subscriptions.list().pagination.total_count == 0
    assert standin.events() == [] and len(standin.requests) == 1


def test_graduated_tiers_price_each_range(standin: PolarStandIn) -> None:
    tiered = standin.create_product(
        "Tiered",
        seat_tiers=[SeatTier(1, 5, 1000), SeatTier(6, None, 800)],
        seat_tier_type="graduated",
    )
    created = standin.create_subscription(tiered["id"], seats=7)
    assert created["amount"] == 5 * 1000 + 2 * 800


def test_sign_webhook_matches_validate_event() -> None:
    secret = generate_webhook_secret()
    body = b'{"type":"unknown.event"}'
    now = int(datetime.now(timezone.utc).timestamp())
    headers = sign_webhook(body, secret, now, event_id="msg_1")
    assert headers["webhook-signature"].startswith("v1,")
    with pytest.raises(PolarWebhookVerificationError):
        validate_event(body, headers, secret + "x")
    with pytest.raises(Exception, match="Unknown webhook event type"):
        validate_event(body, headers, secret)  # signature accepted, type unknown
