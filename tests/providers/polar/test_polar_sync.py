"""What only Polar's seat writes do; the seats following membership on every provider is in
tests/behaviour/test_sync.py."""

from __future__ import annotations

import pytest

from tests.apps import AppUnderTest
from tests.providers.polar.conftest import AppFactory, PolarWorld, seat_writes, subscribe


def test_write_sends_seats_only(t: AppUnderTest, polar: PolarWorld) -> None:
    org = t.add_organization()
    t.add_members(org.id, 1)
    sub = subscribe(t, polar, org.id)

    t.add_members(org.id, 1)

    [write] = seat_writes(polar)
    assert write.method == "PATCH"
    assert write.params == {"seats": 2, "proration_behavior": "prorate"}
    assert polar.api.seats(sub) == 2


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [("create_prorations", "prorate"), ("always_invoice", "invoice"), ("none", "prorate")],
)
def test_proration_behaviour_is_mapped(
    make_app: AppFactory, polar: PolarWorld, ours: str, theirs: str
) -> None:
    t = make_app({"SEAT_BILLING_PRORATION_BEHAVIOR": ours})
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 1)
        sub = subscribe(t, polar, org.id)

        t.add_members(org.id, 2)

        [change] = polar.api.seat_changes(sub)
        assert (change.to_seats, change.proration_behavior) == (3, theirs)


def test_capabilities_say_what_polar_cannot_do(t: AppUnderTest) -> None:
    caps = t.app.extensions["seat_billing"].provider.capabilities
    assert caps.supports_subscription_updates and caps.billing_portal
    assert not caps.separate_seat_price
    assert not caps.idempotency_keys
    assert not caps.invoice_preview
    assert "none" not in caps.proration_behaviors
