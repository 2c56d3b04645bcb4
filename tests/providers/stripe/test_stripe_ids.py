"""Ids that go into Stripe API paths are checked first: a bad one sends no request at all."""

from __future__ import annotations

from typing import Any

import pytest

from flask_seat_billing import InvalidProviderId, PermanentProviderError
from tests.apps import PRO_MONTHLY, AppUnderTest
from tests.conftest import subscribe
from tests.helpers import outbox_rows

HOSTILE = ["../customers/", "..", ".", "", "cs_test_1/../../customers", "cs_test_1?expand[]=x"]


@pytest.mark.parametrize("session_id", HOSTILE + ["sub_123", "cs_test_1%2F..%2Fx"])
def test_complete_checkout_refuses_a_bad_session_id_without_a_request(
    t: AppUnderTest, stripe: Any, session_id: str
) -> None:
    before = len(stripe.requests.all())

    with pytest.raises(InvalidProviderId, match="not a Stripe checkout session id"):
        t.billing.complete_checkout(session_id)

    assert stripe.requests.all()[before:] == []


@pytest.mark.parametrize("subscription_id", HOSTILE + ["cus_123"])
def test_link_subscription_refuses_a_bad_id_without_a_request(
    t: AppUnderTest, stripe: Any, subscription_id: str
) -> None:
    org = t.add_organization()
    before = len(stripe.requests.all())

    with pytest.raises(ValueError, match="not a Stripe subscription id"):
        t.billing.link_subscription(org.id, subscription_id)

    assert stripe.requests.all()[before:] == []
    assert t.billing.subscription_for(org.id) is None


def test_sync_of_a_stored_bad_id_is_refused_for_good_without_a_request(
    t: AppUnderTest, stripe: Any
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)
    table = t.db.metadata.tables["seat_billing_subscriptions"]
    with t.db.engine.begin() as conn:
        conn.execute(
            table.update()
            .where(table.c.provider_subscription_id == sub)
            .values(provider_subscription_id="../customers/")
        )
    before = len(stripe.requests.all())

    t.add_members(org.id, 1)  # inline sync

    assert stripe.requests.all()[before:] == []
    (row,) = outbox_rows(t)
    assert "not a Stripe subscription id" in str(row["last_error"])
    result = t.billing.sync_organization(org.id)
    assert result.action == "refused" and "not a Stripe subscription id" in str(result.error)
    assert stripe.requests.all()[before:] == []
    assert stripe.seats(sub, PRO_MONTHLY) == 2


def test_invalid_id_is_a_permanent_provider_error_and_a_value_error() -> None:
    assert issubclass(InvalidProviderId, PermanentProviderError)
    assert issubclass(InvalidProviderId, ValueError)
