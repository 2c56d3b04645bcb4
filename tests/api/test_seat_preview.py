"""``preview_seat_change``: the cost of that one change, whatever else the period holds."""

from __future__ import annotations

from typing import Any

from tests.apps import PRO_MONTHLY, AppUnderTest
from tests.conftest import subscribe

ONE_SEAT = 1000  # the seat price, for a whole period (the subscription was just created)


def preview_line_requests(stripe: Any) -> list[Any]:
    return [r for r in stripe.requests.requests_to("GET", "/v1/invoices/") if "/lines" in r.path]


def test_second_change_in_a_period_previews_one_seat_not_two(
    t: AppUnderTest, stripe: Any
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    subscribe(t, stripe, org.id)
    t.add_members(org.id, 1)  # synced: 3 seats, and a proration pending on the next invoice

    preview = t.billing.preview_seat_change(org.id, 4)

    assert (preview.from_seats, preview.to_seats) == (3, 4)
    assert abs(preview.prorated_amount - ONE_SEAT) <= 1
    assert len(preview.lines) == 1
    assert preview.amount_due_now == 0


def test_preview_reads_every_page_of_lines(t: AppUnderTest, stripe: Any) -> None:
    org = t.add_organization()
    t.add_members(org.id, 1)
    sub = subscribe(t, stripe, org.id)
    for _ in range(12):  # twelve synced changes: twelve pending prorations, more than a page
        t.add_members(org.id, 1)
    assert stripe.seats(sub, PRO_MONTHLY) == 13
    before = len(preview_line_requests(stripe))

    preview = t.billing.preview_seat_change(org.id, 12)  # one seat fewer: a credit

    assert abs(preview.prorated_amount + ONE_SEAT) <= 1
    assert [line["quantity"] for line in preview.lines] == [1]
    pages = preview_line_requests(stripe)[before:]
    # one further page for each of the two previews (unchanged quantity, then the change)
    assert len(pages) == 2
    assert all(p.path.startswith("/v1/invoices/upcoming_in_") for p in pages)


def test_preview_with_nothing_pending_reads_no_further_page(
    t: AppUnderTest, stripe: Any
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    subscribe(t, stripe, org.id)
    before = len(stripe.requests.requests_to())

    preview = t.billing.preview_seat_change(org.id, 3)

    assert abs(preview.prorated_amount - ONE_SEAT) <= 1
    sent = stripe.requests.requests_to()[before:]
    assert [(r.method, r.path) for r in sent if "invoices" in r.path] == [
        ("POST", "/v1/invoices/create_preview")
    ] * 2
