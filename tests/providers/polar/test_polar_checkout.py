"""Checkout detail only Polar has: its customers are picked by the app's own id on the account,
so the library never lets Polar choose one by the organization's id."""

from __future__ import annotations

from typing import Any

from tests.apps import AppUnderTest
from tests.providers.polar.conftest import AppFactory, PolarWorld


def _allow_all(t: AppUnderTest) -> None:
    t.billing.authorize(lambda request, organization_id, action: True)


def test_two_apps_with_the_same_organization_id_never_share_a_polar_customer(
    make_app: AppFactory, polar: PolarWorld, tmp_path: Any
) -> None:
    """Production and staging on one Polar account, each with its own database and namespace:
    both have an organization 1, which are two companies. Staging's portal opens staging's
    customer, never the one production's organization 1 pays with."""
    production = make_app({"SEAT_BILLING_NAMESPACE": "production"})
    staging = make_app({"SEAT_BILLING_NAMESPACE": "staging"},
                       database_url=f"sqlite:///{tmp_path / 'staging.db'}")
    paid: dict[str, str | None] = {}
    organizations: list[str] = []
    for name, app, members in (("production", production, 5), ("staging", staging, 1)):
        with app.app.app_context():
            _allow_all(app)
            org = app.add_organization()
            organizations.append(str(org.id))
            app.add_members(org.id, members)
            answer = app.app.test_client().post(
                "/billing/checkout", json={"organization_id": org.id, "plan": "team-monthly"})
            assert answer.status_code == 200, answer.text
            checkout_id = (answer.json or {})["id"]
            polar.api.complete_checkout(checkout_id)
            local = app.billing.complete_checkout(checkout_id)
            assert local is not None
            paid[name] = local.provider_customer_id
            portal = app.app.test_client().post(
                "/billing/portal", json={"organization_id": org.id})
            assert portal.status_code == 200, portal.text
    sessions = [r.params["customer_id"] for r in polar.api.requests
                if r.path.startswith("/v1/customer-sessions")]
    assert organizations[0] == organizations[1]  # the same id in both databases
    assert paid["staging"] != paid["production"]
    assert sessions == [paid["production"], paid["staging"]]
