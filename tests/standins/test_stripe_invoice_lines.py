"""The Stripe stand-in's invoice lines: pending prorations in previews, the embedded first page,
and ``GET /v1/invoices/{invoice}/lines`` for the rest, driven through the real ``stripe`` SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from flask_seat_billing import Plan
from flask_seat_billing.testing.stripe_server import StripeStandIn

MONTH_START = 1_767_225_600  # 2026-01-01T00:00:00Z; January has 31 days
DAY = 86_400
#: Seats are the quantity of the "price_seat" item.
SEAT_PLAN = Plan(name="seat", plan_id="price_base", seat_price_id="price_seat")


@pytest.fixture
def fake() -> Iterator[StripeStandIn]:
    with StripeStandIn() as server:
        server.freeze_time(MONTH_START)
        server.create_product(name="Team plan", id="prod_base")
        server.create_product(name="Seat", id="prod_seat")
        server.create_price(id="price_base", product="prod_base", unit_amount=5000)
        server.create_price(id="price_seat", product="prod_seat", unit_amount=3100)
        yield server


@pytest.fixture
def client(fake: StripeStandIn) -> stripe.StripeClient:
    return fake.client(max_network_retries=0)


def seat_subscription(fake: StripeStandIn, quantity: int) -> tuple[str, str, str]:
    sub = fake.create_subscription(
        items=[
            {"price": "price_base", "quantity": 1},
            {"price": "price_seat", "quantity": quantity},
        ]
    )
    seat = next(i for i in sub["items"]["data"] if i["price"]["id"] == "price_seat")
    return sub["id"], seat["id"], sub["customer"]


def add_seats_daily(fake: StripeStandIn, client: stripe.StripeClient, si: str, n: int) -> int:
    """``n`` one-seat increases, a day apart; each leaves a pending proration. Returns the time."""
    quantity = int(client.v1.subscription_items.retrieve(si).quantity)
    for _ in range(n):
        fake.advance_time(DAY)
        quantity += 1
        client.v1.subscription_items.update(si, {"quantity": quantity})
    return MONTH_START + n * DAY


def preview(
    client: stripe.StripeClient, sub: str, customer: str, si: str, seats: int, at: int
) -> Any:
    return client.v1.invoices.create_preview(
        {
            "customer": customer,
            "subscription": sub,
            "subscription_details": {
                "items": [{"id": si, "quantity": seats}],
                "proration_behavior": "create_prorations",
                "proration_date": at,
            },
        }
    )


def test_preview_holds_earlier_pending_prorations_newest_first(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    sub, si, customer = seat_subscription(fake, quantity=2)
    now = add_seats_daily(fake, client, si, 2)  # 2 -> 3 on day 1, 3 -> 4 on day 2

    invoice = preview(client, sub, customer, si, 5, now)

    lines = list(invoice.lines.data)
    prorations = [line for line in lines if line.parent.subscription_item_details.proration]
    # 30 of 31 days left: 3000; then 29 days: 2900 (this change), the earlier two after it
    assert [(line.period.start, line.amount) for line in prorations] == [
        (now, 2900), (MONTH_START + 2 * DAY, 2900), (MONTH_START + DAY, 3000),
    ]
    assert prorations[0].parent.subscription_item_details.invoice_item is None
    assert all(line.parent.subscription_item_details.invoice_item for line in prorations[1:])
    assert invoice.id.startswith("upcoming_in_")
    assert invoice.parent.subscription_details.subscription_proration_date == now
    assert fake.seats(sub, SEAT_PLAN) == 4  # a preview changes nothing


def test_invoice_embeds_ten_lines_and_lists_the_rest(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    sub, si, customer = seat_subscription(fake, quantity=1)
    now = add_seats_daily(fake, client, si, 12)

    invoice = preview(client, sub, customer, si, 14, now)  # 12 pending + 1 new + 2 regular

    assert len(invoice.lines.data) == 10 and invoice.lines.has_more
    assert invoice.lines.url == f"/v1/invoices/{invoice.id}/lines"
    embedded = [line.id for line in invoice.lines.data]
    first = client.v1.invoices.line_items.list(invoice.id)
    assert [line.id for line in first.data] == embedded and first.has_more
    rest = client.v1.invoices.line_items.list(invoice.id, {"starting_after": embedded[-1]})
    assert len(rest.data) == 5 and not rest.has_more
    every = client.v1.invoices.line_items.list(invoice.id, {"limit": 100})
    assert [line.id for line in every.data] == embedded + [line.id for line in rest.data]
    back = client.v1.invoices.line_items.list(
        invoice.id, {"ending_before": rest.data[0].id, "limit": 3}
    )
    assert [line.id for line in back.data] == embedded[-3:] and back.has_more
    total = sum(line.amount for line in every.data)
    assert total == invoice.total


def test_lines_of_unknown_invoice_or_line_are_refused(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    sub, si, customer = seat_subscription(fake, quantity=1)
    invoice = preview(client, sub, customer, si, 2, MONTH_START)
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.invoices.line_items.list("in_missing")
    assert missing.value.http_status == 404 and "No such invoice" in str(missing.value)
    with pytest.raises(stripe.InvalidRequestError) as cursor:
        client.v1.invoices.line_items.list(invoice.id, {"starting_after": "il_missing"})
    assert cursor.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError) as limit:
        client.v1.invoices.line_items.list(invoice.id, {"limit": 101})
    assert limit.value.http_status == 400


def test_finalized_invoice_lines_are_listable(
    fake: StripeStandIn, client: stripe.StripeClient
) -> None:
    sub, si, _ = seat_subscription(fake, quantity=1)
    fake.advance_time(DAY)
    client.v1.subscription_items.update(
        si, {"quantity": 2, "proration_behavior": "always_invoice"}
    )
    invoice_id = fake.subscription(sub)["latest_invoice"]

    lines = client.v1.invoices.line_items.list(invoice_id)

    assert [line.amount for line in lines.data] == [3000]
    assert client.v1.invoices.retrieve(invoice_id).lines.data[0].id == lines.data[0].id
