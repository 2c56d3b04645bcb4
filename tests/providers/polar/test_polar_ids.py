"""Polar ids go into API paths as given by the SDK: anything but a UUID is refused unsent."""

from __future__ import annotations

import uuid

import pytest

from flask_seat_billing import InvalidProviderId
from tests.apps import AppUnderTest
from tests.helpers import outbox_rows
from tests.providers.polar.conftest import PolarWorld, subscribe

HOSTILE = [
    "../customers/",
    "..",
    "",
    f"{uuid.uuid4()}/../../customers",
    f"{uuid.uuid4()}?organization_id=x",
    "{" + str(uuid.uuid4()) + "}",
    uuid.uuid4().hex,  # a UUID, but not in the form Polar's paths take
]


@pytest.mark.parametrize("checkout_id", HOSTILE)
def test_complete_checkout_refuses_a_bad_id_without_a_request(
    t: AppUnderTest, polar: PolarWorld, checkout_id: str
) -> None:
    before = len(polar.api.requests.all())

    with pytest.raises(InvalidProviderId, match="not a Polar checkout id"):
        t.billing.complete_checkout(checkout_id)

    assert polar.api.requests.all()[before:] == []


@pytest.mark.parametrize("subscription_id", HOSTILE)
def test_link_subscription_refuses_a_bad_id_without_a_request(
    t: AppUnderTest, polar: PolarWorld, subscription_id: str
) -> None:
    org = t.add_organization()
    before = len(polar.api.requests.all())

    with pytest.raises(ValueError, match="not a Polar subscription id"):
        t.billing.link_subscription(org.id, subscription_id)

    assert polar.api.requests.all()[before:] == []
    assert t.billing.subscription_for(org.id) is None


def test_upper_case_uuid_is_sent_in_canonical_form(t: AppUnderTest, polar: PolarWorld) -> None:
    org = t.add_organization()
    t.add_members(org.id, 1)
    sub = polar.api.create_subscription(polar.team, seats=1, external_customer_id=str(org.id),
                                        metadata={"organization_id": str(org.id)})

    local = t.billing.link_subscription(org.id, str(sub["id"]).upper())

    assert local.provider_subscription_id == sub["id"]
    assert polar.api.requests.all()[-1].path == f"/v1/subscriptions/{sub['id']}"


def test_sync_of_a_stored_bad_id_is_refused_for_good_without_a_request(
    t: AppUnderTest, polar: PolarWorld
) -> None:
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, polar, org.id)
    table = t.db.metadata.tables["seat_billing_subscriptions"]
    with t.db.engine.begin() as conn:
        conn.execute(
            table.update()
            .where(table.c.provider_subscription_id == sub)
            .values(provider_subscription_id="../customers/")
        )
    before = len(polar.api.requests.all())

    t.add_members(org.id, 1)  # inline sync

    assert polar.api.requests.all()[before:] == []
    (row,) = outbox_rows(t)
    assert "not a Polar subscription id" in str(row["last_error"])
    assert polar.api.subscription(sub)["seats"] == 2
