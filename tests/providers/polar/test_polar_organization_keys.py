"""Polar: a member saved with the organization id in another spelling is billed to it."""

from __future__ import annotations

import pytest

from tests.apps import AppUnderTest
from tests.providers.polar.conftest import PolarWorld, subscribe


@pytest.mark.parametrize("spelling", ["01", " 1", "+1"])
def test_integer_id_spellings_raise_the_seats(
    t: AppUnderTest, polar: PolarWorld, spelling: str
) -> None:
    t.db.session.add(t.Organization(id=1, name="Acme"))
    t.db.session.commit()
    t.add_members(1, 2)
    sub = subscribe(t, polar, 1)

    t.db.session.add(t.Membership(organization_id=spelling, email="new@x.io"))
    t.db.session.commit()

    assert polar.api.seats(sub) == 3
    assert t.billing.billable_seats(spelling) == 3
    assert t.billing.pending_syncs() == []

