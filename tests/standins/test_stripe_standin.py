"""The Stripe stand-in, driven only through the real ``stripe`` SDK (plus its Python test API).

Each test asserts what a caller can observe: SDK return values and exceptions, recorded requests,
webhooks as a receiver sees them.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import stripe

from flask_seat_billing import Plan
from flask_seat_billing.testing._standin import StandInServer
from flask_seat_billing.testing.stripe_server import StripeStandIn

#: Seats are the quantity of the "price_seat" item.
SEAT_PLAN = Plan(name="seat", plan_id="price_base", seat_price_id="price_seat")
#: A plan of the seat price alone: one item.
SEAT_ONLY_PLAN = Plan(name="seat-only", plan_id="price_seat", seat_price_id="price_seat")

MONTH_START = 1_767_225_600  # 2026-01-01T00:00:00Z; January has 31 days
MONTH_END = 1_769_904_000  # 2026-02-01T00:00:00Z
MIDPOINT = (MONTH_START + MONTH_END) // 2
SECRET = "whsec_test_secret"


@pytest.fixture
def fake() -> Iterator[StripeStandIn]:
    with StripeStandIn() as server:
        server.freeze_time(MONTH_START)
        server.create_product(name="Team plan", id="prod_base")
        server.create_product(name="Seat", id="prod_seat")
        server.create_price(id="price_base", product="prod_base", unit_amount=5000)
        server.create_price(id="price_seat", product="prod_seat", unit_amount=1000)
        server.create_price(
            id="price_seat_yearly", product="prod_seat", unit_amount=10000, interval="year"
        )
        yield server


@pytest.fixture
def client(fake: StripeStandIn) -> stripe.StripeClient:
    return fake.client(max_network_retries=0)


def seat_subscription(fake: StripeStandIn, quantity: int = 5, **kwargs: Any) -> tuple[str, str]:
    sub = fake.create_subscription(
        items=[
            {"price": "price_base", "quantity": 1},
            {"price": "price_seat", "quantity": quantity},
        ],
        **kwargs,
    )
    seat = next(i for i in sub["items"]["data"] if i["price"]["id"] == "price_seat")
    return sub["id"], seat["id"]


# -- lists and pagination -------------------------------------------------------------------------
def test_list_paginates_newest_first_over_more_than_100(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    ids = fake.bulk_subscribe(range(130), SEAT_ONLY_PLAN, seats=2)
    first = client.v1.subscriptions.list({"limit": 100})
    assert [s.id for s in first.data] == ids[::-1][:100]
    assert first.has_more is True
    second = client.v1.subscriptions.list({"limit": 100, "starting_after": first.data[-1].id})
    assert [s.id for s in second.data] == ids[::-1][100:]
    assert second.has_more is False
    back = client.v1.subscriptions.list({"limit": 5, "ending_before": ids[-10]})
    assert [s.id for s in back.data] == ids[::-1][4:9]
    assert [s.id for s in first.auto_paging_iter()] == ids[::-1]
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.list({"limit": 101})
    assert info.value.param == "limit"


def test_list_filters_by_status_customer_and_price(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    kept, _ = seat_subscription(fake)
    gone, _ = seat_subscription(fake)
    other = fake.create_subscription(items=[{"price": "price_base", "quantity": 1}])
    client.v1.subscriptions.cancel(gone)
    default = [s.id for s in client.v1.subscriptions.list().data]
    assert default == [other["id"], kept]
    assert {s.id for s in client.v1.subscriptions.list({"status": "all"}).data} == {
        kept,
        gone,
        other["id"],
    }
    assert [s.id for s in client.v1.subscriptions.list({"status": "canceled"}).data] == [gone]
    assert [s.id for s in client.v1.subscriptions.list({"price": "price_seat"}).data] == [kept]
    customer = other["customer"]
    by_customer = client.v1.subscriptions.list({"customer": customer, "status": "all"})
    assert [s.id for s in by_customer.data] == [other["id"]]


def test_subscription_shape_has_periods_on_items(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    sub_id, _ = seat_subscription(fake, metadata={"org": "acme"})
    sub = client.v1.subscriptions.retrieve(sub_id)
    assert sub.object == "subscription" and sub.status == "active" and sub.livemode is False
    assert sub.metadata.to_dict() == {"org": "acme"}
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (MONTH_START, MONTH_END)
    assert item.price.unit_amount == 5000 and item.price.recurring.interval == "month"
    assert "current_period_end" not in sub
    assert sub.latest_invoice == fake.invoices(sub_id)[0]["id"]


# -- quantity changes and prorations --------------------------------------------------------------
def test_create_prorations_adds_pending_invoice_item(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    sub_id, si = seat_subscription(fake, quantity=5)
    item = client.v1.subscription_items.update(
        si, {"quantity": 8, "proration_behavior": "create_prorations", "proration_date": MIDPOINT}
    )
    assert item.quantity == 8
    assert fake.seats(sub_id, SEAT_PLAN) == 8
    pending = client.v1.invoice_items.list({"pending": True}).data
    assert [(i.amount, i.proration, i.quantity) for i in pending] == [(1500, True, 3)]
    parent: Any = pending[0].parent
    assert parent.subscription_details.subscription == sub_id
    assert parent.subscription_details.subscription_item == si
    assert len(fake.invoices(sub_id)) == 1  # only the first invoice


def test_decrease_creates_a_credit(fake: StripeStandIn, client: stripe.StripeClient) -> None:
    _, si = seat_subscription(fake, quantity=5)
    client.v1.subscription_items.update(si, {"quantity": 1, "proration_date": MIDPOINT})
    assert [i.amount for i in client.v1.invoice_items.list().data] == [-2000]


def test_always_invoice_bills_the_proration_now(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    sub_id, si = seat_subscription(fake, quantity=5)
    client.v1.subscription_items.update(si, {"quantity": 6, "proration_date": MIDPOINT})
    client.v1.subscription_items.update(
        si, {"quantity": 8, "proration_behavior": "always_invoice", "proration_date": MIDPOINT}
    )
    invoice = client.v1.invoices.list({"subscription": sub_id, "limit": 1}).data[0]
    assert invoice.status == "paid" and invoice.billing_reason == "subscription_update"
    # the earlier pending proration (1 seat) is swept onto it with the new one (2 seats)
    assert sorted(line.amount for line in invoice.lines.data) == [500, 1000]
    assert invoice.amount_paid == 1500
    assert client.v1.invoice_items.list({"pending": True}).data == []
    assert client.v1.subscriptions.retrieve(sub_id).latest_invoice == invoice.id


def test_proration_none_creates_nothing(fake: StripeStandIn, client: stripe.StripeClient) -> None:
    sub_id, si = seat_subscription(fake, quantity=5)
    client.v1.subscription_items.update(si, {"quantity": 9, "proration_behavior": "none"})
    assert fake.seats(sub_id, SEAT_PLAN) == 9
    assert client.v1.invoice_items.list().data == []
    assert len(fake.invoices(sub_id)) == 1


def test_update_via_subscription_items_param_and_zero_quantity(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    sub_id, si = seat_subscription(fake, quantity=5)
    sub = client.v1.subscriptions.update(
        sub_id, {"items": [{"id": si, "quantity": 0}], "metadata": {"org": "o1"}}
    )
    assert sub.metadata.to_dict() == {"org": "o1"}
    assert fake.seats(sub_id, SEAT_PLAN) == 0
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscription_items.update(si, {"quantity": -1})
    assert info.value.param == "quantity"
    event = fake.events("customer.subscription.updated")[-1]
    previous_items = event["data"]["previous_attributes"]["items"]["data"]
    assert [i["quantity"] for i in previous_items if i["id"] == si] == [5]


def test_canceled_subscription_refuses_item_updates(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    sub_id, si = seat_subscription(fake)
    assert client.v1.subscriptions.cancel(sub_id).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscription_items.update(si, {"quantity": 9})
    assert info.value.http_status == 400
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(sub_id, {"items": [{"id": si, "quantity": 9}]})
    assert fake.seats(sub_id, SEAT_PLAN) == 5


def test_error_if_incomplete_with_failing_card_changes_nothing(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    sub_id, si = seat_subscription(fake, quantity=5)
    fake.fail_payments(fake.subscription(sub_id)["customer"])
    events_before = len(fake.events())
    with pytest.raises(stripe.CardError) as info:
        client.v1.subscription_items.update(
            si, {"quantity": 9, "payment_behavior": "error_if_incomplete"}
        )
    assert info.value.http_status == 402 and info.value.code == "card_declined"
    assert fake.seats(sub_id, SEAT_PLAN) == 5
    assert len(fake.events()) == events_before
    assert fake.invoice_items() == []


def test_always_invoice_with_failing_card_leaves_open_invoice(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    sub_id, si = seat_subscription(fake, quantity=5)
    fake.fail_payments(fake.subscription(sub_id)["customer"])
    client.v1.subscription_items.update(si, {"quantity": 6, "proration_behavior": "always_invoice"})
    assert fake.invoices(sub_id)[-1]["status"] == "open"
    assert fake.events("invoice.payment_failed")
    assert client.v1.subscriptions.retrieve(sub_id).status == "past_due"


# -- errors, idempotency --------------------------------------------------------------------------
def test_not_found_error_format(fake: StripeStandIn, client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.retrieve("sub_missing")
    error = info.value
    assert error.http_status == 404
    assert error.code == "resource_missing"
    assert error.user_message == "No such subscription: 'sub_missing'"
    body: Any = error.json_body
    assert body["error"]["type"] == "invalid_request_error"


def test_bad_api_key_is_401(fake: StripeStandIn) -> None:
    with pytest.raises(stripe.AuthenticationError) as info:
        fake.client(api_key="sk_live_nope_123456").v1.customers.list()
    assert info.value.http_status == 401


def test_unknown_parameters_rejected_like_stripe(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    sub_id, si = seat_subscription(fake)
    with pytest.raises(stripe.InvalidRequestError) as info:
        typo: Any = {"items": [{"id": si, "quantiy": 9}]}
        client.v1.subscriptions.update(sub_id, typo)
    assert info.value.code == "parameter_unknown"
    assert info.value.param == "items[0][quantiy]"
    assert info.value.user_message == "Received unknown parameter: items[0][quantiy]"
    with pytest.raises(stripe.InvalidRequestError) as top:
        top_level: Any = {"quantity": 9}
        client.v1.subscriptions.update(sub_id, top_level)
    assert top.value.param == "quantity"
    assert fake.seats(sub_id, SEAT_PLAN) == 5
    client.v1.subscriptions.retrieve(sub_id, {"expand": ["customer"]})  # expand always accepted


def test_idempotent_replay_and_mismatch(fake: StripeStandIn, client: stripe.StripeClient) -> None:
    sub_id, si = seat_subscription(fake, quantity=5)
    options: Any = {"idempotency_key": "seat-sync-1"}
    first = client.v1.subscription_items.update(si, {"quantity": 6}, options)
    fake.set_seats(sub_id, 7, SEAT_PLAN)  # someone else changes it meanwhile
    again = client.v1.subscription_items.update(si, {"quantity": 6}, options)
    assert again.to_dict() == first.to_dict()  # the stored answer, not a new change
    assert again.last_response is not None
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert fake.seats(sub_id, SEAT_PLAN) == 7
    posts = fake.requests.requests_to("POST", "/v1/subscription_items/")
    assert [(r.idempotency_key, r.replayed) for r in posts] == [
        ("seat-sync-1", False),
        ("seat-sync-1", True),
    ]
    assert len([w for w in fake.writes() if w.path.startswith("/v1/subscription_items/")]) == 1
    with pytest.raises(stripe.IdempotencyError) as info:
        client.v1.subscription_items.update(si, {"quantity": 8}, options)
    assert info.value.http_status == 400
    assert "same parameters" in str(info.value.user_message)


# -- faults ---------------------------------------------------------------------------------------
def test_an_endpoint_500_is_stored_under_its_key_and_replayed(fake: StripeStandIn) -> None:
    """Stripe stores the answer of a request whose endpoint began executing, a 500 included,
    and replays it to every request with the key: the SDK's retries get that 500 back, and
    only a new key is a new request."""
    sub_id, si = seat_subscription(fake)
    fake.faults.fail_next(1, status=500, path_prefix="/v1/subscription_items")
    client = fake.client(max_network_retries=2)
    with pytest.raises(stripe.APIError) as info:
        client.v1.subscription_items.update(si, {"quantity": 9}, {"idempotency_key": "k-500"})
    assert info.value.http_status == 500
    attempts = fake.requests.requests_to("POST", "/v1/subscription_items")
    assert [(r.status, r.fault, r.replayed) for r in attempts] == [
        (500, "fail", False), (500, None, True), (500, None, True)]
    assert fake.seats(sub_id, SEAT_PLAN) == 5
    update = client.v1.subscription_items.update(si, {"quantity": 9}, {"idempotency_key": "k-2"})
    assert update.quantity == 9 and fake.seats(sub_id, SEAT_PLAN) == 9


def test_an_endpoint_4xx_is_stored_but_a_parameter_error_is_not(fake: StripeStandIn) -> None:
    """A 4xx the endpoint raised (no such item) is replayed to its key; a request refused by
    parameter validation never began executing, so its key stays free."""
    sub_id, si = seat_subscription(fake)
    client = fake.client()
    key = "k-404"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscription_items.update("si_missing", {"quantity": 9}, {"idempotency_key": key})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscription_items.update("si_missing", {"quantity": 9}, {"idempotency_key": key})
    replays = [r.replayed for r in fake.requests.requests_to("POST", "/v1/subscription_items")]
    assert replays == [False, True]
    unknown: Any = {"quantity": 9, "seats": 9}  # parameter_unknown: refused before executing
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscription_items.update(si, unknown, {"idempotency_key": "k-bad"})
    client.v1.subscription_items.update(si, {"quantity": 9}, {"idempotency_key": "k-bad"})
    assert fake.seats(sub_id, SEAT_PLAN) == 9


def test_a_dropped_connection_stores_nothing_under_its_key(fake: StripeStandIn) -> None:
    sub_id, si = seat_subscription(fake)
    fake.faults.drop_next(1, method="POST")  # not applied, no answer
    client = fake.client(max_network_retries=1)
    update = client.v1.subscription_items.update(si, {"quantity": 9}, {"idempotency_key": "k-d"})
    assert update.quantity == 9 and fake.seats(sub_id, SEAT_PLAN) == 9
    attempts = fake.requests.requests_to("POST", "/v1/subscription_items")
    assert [(r.status, r.replayed) for r in attempts] == [(0, False), (200, False)]


def test_500_without_retries_raises_api_error(fake: StripeStandIn, client: Any) -> None:
    fake.faults.fail_next(1, status=503)
    with pytest.raises(stripe.APIError) as info:
        client.v1.customers.list()
    assert info.value.http_status == 503


def test_rate_limit_raises_with_retry_after(fake: StripeStandIn) -> None:
    _, si = seat_subscription(fake)
    fake.faults.rate_limit_next(1, retry_after=2, method="POST")
    client = fake.client(max_network_retries=2)  # the SDK does not retry a plain 429
    with pytest.raises(stripe.RateLimitError) as info:
        client.v1.subscription_items.update(si, {"quantity": 9})
    assert info.value.http_status == 429
    assert info.value.headers is not None and info.value.headers.get("Retry-After") == "2"
    assert info.value.error is not None and info.value.error.type == "rate_limit_error"
    assert client.v1.subscription_items.update(si, {"quantity": 9}).quantity == 9


def test_stall_after_applying_times_out_then_replays(fake: StripeStandIn) -> None:
    sub_id, si = seat_subscription(fake, quantity=5)
    fake.faults.stall_next(1, seconds=1.5, apply=True, method="POST")
    client = fake.client(max_network_retries=0, timeout=0.3)
    key: Any = {"idempotency_key": "stall-1"}
    with pytest.raises(stripe.APIConnectionError):
        client.v1.subscription_items.update(si, {"quantity": 6}, key)
    assert fake.seats(sub_id, SEAT_PLAN) == 6  # applied although the client gave up
    retried = client.v1.subscription_items.update(si, {"quantity": 6}, key)
    assert retried.last_response is not None
    assert retried.last_response.headers.get("Idempotent-Replayed") == "true"
    assert len(fake.invoice_items()) == 1  # billed once


def test_stall_without_applying(fake: StripeStandIn) -> None:
    sub_id, si = seat_subscription(fake, quantity=5)
    fake.faults.stall_next(1, seconds=1.0, apply=False, method="POST")
    client = fake.client(max_network_retries=0, timeout=0.3)
    with pytest.raises(stripe.APIConnectionError):
        client.v1.subscription_items.update(si, {"quantity": 6})
    time.sleep(1.2)
    assert fake.seats(sub_id, SEAT_PLAN) == 5
    assert fake.writes() == []


def test_dropped_connection(fake: StripeStandIn, client: stripe.StripeClient) -> None:
    sub_id, si = seat_subscription(fake, quantity=5)
    fake.faults.drop_next(1, apply=True, method="POST")
    with pytest.raises(stripe.APIConnectionError):
        client.v1.subscription_items.update(si, {"quantity": 6})
    assert fake.seats(sub_id, SEAT_PLAN) == 6
    dropped = fake.requests[-1]
    assert (dropped.status, dropped.fault, dropped.changed) == (0, "drop", True)
    fake.faults.drop_next(1)  # not applied
    with pytest.raises(stripe.APIConnectionError):
        client.v1.subscription_items.update(si, {"quantity": 7})
    assert fake.seats(sub_id, SEAT_PLAN) == 6
    retrying = fake.client(max_network_retries=2)
    fake.faults.drop_next(1)
    assert retrying.v1.subscription_items.update(si, {"quantity": 7}).quantity == 7


# -- checkout, portal, preview --------------------------------------------------------------------
def checkout_params(**overrides: Any) -> Any:
    params: dict[str, Any] = {
        "mode": "subscription",
        "line_items": [
            {"price": "price_base", "quantity": 1},
            {"price": "price_seat", "quantity": 4},
        ],
        "customer_email": "owner@example.com",
        "client_reference_id": "org_42",
        "subscription_data": {"metadata": {"org_id": "42"}},
        "metadata": {"source": "test"},
        "success_url": "https://app.example/done?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://app.example/cancel",
    }
    params.update(overrides)
    return params


def test_checkout_create_complete_retrieve(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    session = client.v1.checkout.sessions.create(checkout_params())
    assert session.status == "open" and session.url == f"{fake.url}/checkout/{session.id}"
    assert session.amount_total == 9000 and session.subscription is None
    fake.complete_checkout(session.id)
    done = client.v1.checkout.sessions.retrieve(session.id, {"expand": ["subscription"]})
    assert done.status == "complete" and done.payment_status == "paid"
    assert done.client_reference_id == "org_42"
    sub = done.subscription
    assert isinstance(sub, stripe.Subscription)
    assert sub.metadata.to_dict() == {"org_id": "42"}
    assert sub.customer == done.customer
    assert sorted((i.price.id, i.quantity) for i in sub["items"].data) == [
        ("price_base", 1),
        ("price_seat", 4),
    ]
    types = [e.type for e in client.v1.events.list({"limit": 10}).data][::-1]
    assert types[-3:] == [
        "customer.subscription.created",
        "invoice.paid",
        "checkout.session.completed",
    ]
    with pytest.raises(stripe.InvalidRequestError):
        fake.client().v1.checkout.sessions.expire(session.id)


def test_hosted_checkout_page_pays_and_redirects(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    session = client.v1.checkout.sessions.create(checkout_params())
    host = urllib.parse.urlsplit(fake.url).netloc
    conn = http.client.HTTPConnection(host, timeout=5)
    conn.request("GET", f"/checkout/{session.id}")
    page = conn.getresponse().read().decode()
    assert 'id="pay"' in page and "Seat × 4" in page and "90.00 USD" in page
    conn = http.client.HTTPConnection(host, timeout=5)
    conn.request("POST", f"/checkout/{session.id}/pay")
    response = conn.getresponse()
    assert response.status == 303
    assert response.getheader("Location") == f"https://app.example/done?session={session.id}"
    assert client.v1.checkout.sessions.retrieve(session.id).status == "complete"


def test_checkout_rejects_mixed_intervals_and_zero_quantity(client: stripe.StripeClient) -> None:
    mixed = [{"price": "price_base", "quantity": 1}, {"price": "price_seat_yearly", "quantity": 2}]
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.create(checkout_params(line_items=mixed))
    assert "interval" in str(info.value.user_message) and info.value.param == "line_items"
    zero = [{"price": "price_seat", "quantity": 0}]
    with pytest.raises(stripe.InvalidRequestError) as low:
        client.v1.checkout.sessions.create(checkout_params(line_items=zero))
    assert low.value.param == "line_items[0][quantity]"
    assert client.v1.checkout.sessions.list().data == []


def test_portal_session(fake: StripeStandIn, client: stripe.StripeClient) -> None:
    sub_id, _ = seat_subscription(fake)
    customer = fake.subscription(sub_id)["customer"]
    portal = client.v1.billing_portal.sessions.create(
        {"customer": customer, "return_url": "https://app.example/billing"}
    )
    assert portal.url == f"{fake.url}/portal/{portal.id}"
    conn = http.client.HTTPConnection(urllib.parse.urlsplit(fake.url).netloc, timeout=5)
    conn.request("GET", f"/portal/{portal.id}")
    page = conn.getresponse().read().decode()
    assert sub_id in page and "https://app.example/billing" in page


def test_invoice_preview_shows_prorations_without_changing_state(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    sub_id, si = seat_subscription(fake, quantity=5)
    preview = client.v1.invoices.create_preview(
        {
            "customer": fake.subscription(sub_id)["customer"],
            "subscription": sub_id,
            "subscription_details": {
                "items": [{"id": si, "quantity": 7}],
                "proration_behavior": "create_prorations",
                "proration_date": MIDPOINT,
            },
        }
    )
    lines: list[Any] = list(preview.lines.data)
    prorations = [line for line in lines if line.parent.subscription_item_details.proration]
    assert [line.amount for line in prorations] == [1000]
    regular = sorted(line.amount for line in preview.lines.data if line not in prorations)
    assert regular == [5000, 7000]  # next period at the new quantity
    assert preview.amount_due == 13000
    assert fake.seats(sub_id, SEAT_PLAN) == 5
    assert fake.invoice_items() == [] and fake.writes() == []


# -- events and webhooks --------------------------------------------------------------------------
def test_events_list_filters_and_paginates(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    sub_id, si = seat_subscription(fake)
    for quantity in (6, 7, 8):
        client.v1.subscription_items.update(
            si, {"quantity": quantity}, {"idempotency_key": f"k{quantity}"}
        )
    updated = client.v1.events.list({"type": "customer.subscription.updated", "limit": 2})
    assert len(updated.data) == 2 and updated.has_more
    assert updated.data[0].data.object["items"]["data"][1]["quantity"] == 8
    request: Any = updated.data[0].request
    assert request.idempotency_key == "k8"
    all_updates = list(updated.auto_paging_iter())
    assert len(all_updates) == 3
    assert client.v1.events.retrieve(all_updates[0].id).type == "customer.subscription.updated"
    wildcard = client.v1.events.list({"type": "customer.subscription.*", "limit": 100})
    assert {e.type for e in wildcard.data} == {
        "customer.subscription.created",
        "customer.subscription.updated",
    }
    assert all(e.data.object["id"] == sub_id for e in wildcard.data)


class Receiver:
    """A tiny webhook endpoint that verifies signatures the way an app would."""

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []
        self.rejected = 0
        self.lock = threading.Lock()
        self.server = StandInServer(self.app)

    def app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        try:
            event = stripe.Webhook.construct_event(
                body.decode(), environ.get("HTTP_STRIPE_SIGNATURE", ""), SECRET
            )
        except (stripe.SignatureVerificationError, ValueError):
            with self.lock:
                self.rejected += 1
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"bad signature"]
        with self.lock:
            self.accepted.append(json.loads(body))
        assert event.id
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    with r.server:
        yield r


def test_webhooks_delivered_signed_duplicated_and_reversed(
    fake: StripeStandIn, client: stripe.StripeClient, receiver: Receiver
) -> None:
    fake.add_webhook_endpoint(receiver.server.url + "/hooks", SECRET)
    sub_id, si = seat_subscription(fake)
    client.v1.subscription_items.update(si, {"quantity": 9})
    created = [e["id"] for e in fake.events()]
    deliveries = fake.deliver_pending(times=2, order="reversed")
    assert [d.event_id for d in deliveries] == (created + created)[::-1]
    assert all(d.status_code == 200 for d in deliveries)
    assert [e["id"] for e in receiver.accepted] == (created + created)[::-1]
    assert receiver.accepted[0]["type"] == "customer.subscription.updated"
    assert receiver.accepted[0]["data"]["object"]["id"] == sub_id
    assert {d.attempt for d in deliveries} == {1, 2}
    assert fake.deliver_pending() == []  # all acknowledged


def test_webhook_rejections(fake: StripeStandIn, receiver: Receiver) -> None:
    fake.add_webhook_endpoint(receiver.server.url, SECRET)
    fake.create_customer(email="x@example.com")
    event_id: str = fake.events()[-1]["id"]
    assert [d.status_code for d in fake.deliver(event_id, signature="bad")] == [400]
    assert [d.status_code for d in fake.deliver(event_id, signature="missing")] == [400]
    assert [d.status_code for d in fake.deliver(event_id, timestamp_offset=-600)] == [400]
    assert receiver.rejected == 3 and receiver.accepted == []
    assert [e.id for e in fake.webhooks.pending()] == [event_id]  # still owed
    assert [d.status_code for d in fake.deliver_pending()] == [200]


def test_webhook_shuffled_is_deterministic_and_failures_stay_pending(
    fake: StripeStandIn, receiver: Receiver
) -> None:
    fake.add_webhook_endpoint(receiver.server.url, SECRET)
    for i in range(6):
        fake.create_customer(email=f"c{i}@example.com")
    order_a = [e["id"] for e in fake.events()]
    broken = fake.add_webhook_endpoint("http://127.0.0.1:9/nowhere", SECRET)
    fake.create_customer(email="late@example.com")
    shuffled = fake.deliver_pending(order="shuffled", seed=7)
    delivered_ok = [d.event_id for d in shuffled if d.ok]
    assert sorted(delivered_ok) == sorted(order_a + [fake.events()[-1]["id"]])
    assert delivered_ok != order_a + [fake.events()[-1]["id"]]
    failed = [d for d in shuffled if not d.ok]
    assert len(failed) == 1 and failed[0].status_code == 0 and failed[0].error
    assert [e.id for e in fake.webhooks.pending()] == [fake.events()[-1]["id"]]
    fake.webhooks.remove_webhook_endpoint(broken.id)
    assert fake.webhooks.pending() == []


def test_auto_deliver_from_background_thread(
    fake: StripeStandIn, client: stripe.StripeClient, receiver: Receiver
) -> None:
    fake.add_webhook_endpoint(receiver.server.url, SECRET)
    fake.auto_deliver = True
    _, si = seat_subscription(fake)
    client.v1.subscription_items.update(si, {"quantity": 11})
    assert fake.webhooks.wait_idle(timeout=5)
    assert [e["type"] for e in receiver.accepted][-1] == "customer.subscription.updated"
    assert len(receiver.accepted) == len(fake.events())


# -- time -----------------------------------------------------------------------------------------
def test_advance_time_renews_and_bills_pending_prorations(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    sub_id, si = seat_subscription(fake, quantity=5)
    client.v1.subscription_items.update(si, {"quantity": 6, "proration_date": MIDPOINT})
    assert fake.advance_time(MONTH_END - MONTH_START) == [sub_id]
    renewal = fake.invoices(sub_id)[-1]
    assert renewal["billing_reason"] == "subscription_cycle"
    assert sorted(line["amount"] for line in renewal["lines"]["data"]) == [500, 5000, 6000]
    item = client.v1.subscription_items.retrieve(si)
    assert item.current_period_start == MONTH_END
