"""A plan's ``trial_days`` gives the same trial on Polar as on Stripe."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask_seat_billing import Plan, Product
from tests.providers.polar.conftest import AppFactory, PolarWorld


def _checkout_posts(polar: PolarWorld) -> list[Any]:
    return [r for r in polar.api.requests if r.method == "POST" and r.path == "/v1/checkouts/"]


def test_trial_days_reach_polar_and_the_subscription_trials(
    make_app: AppFactory, polar: PolarWorld
) -> None:
    trial_plan = Plan(name="team-trial", plan_id=polar.team, cost=10, trial_days=14)
    t = make_app(products=[Product(id="team", name="Team", plans=[trial_plan])])
    with t.app.app_context():
        t.billing.authorize(lambda request, organization_id, action: True)
        org = t.add_organization()
        t.add_members(org.id, 2)

        answer = t.app.test_client().post(
            "/billing/checkout", json={"organization_id": org.id, "plan": "team-trial"}
        )
        assert answer.status_code == 200, answer.text
        [post] = _checkout_posts(polar)
        assert (post.params["trial_interval"], post.params["trial_interval_count"]) == ("day", 14)

        checkout_id = (answer.json or {})["id"]
        polar.api.complete_checkout(checkout_id)
        local = t.billing.complete_checkout(checkout_id)

    assert local is not None and (local.status, local.seats) == ("trialing", 2)
    assert local.trial_start is not None and local.trial_end is not None
    assert local.trial_end - local.trial_start == timedelta(days=14)


def test_plan_without_trial_sends_no_trial_fields(t: Any, polar: PolarWorld) -> None:
    t.billing.authorize(lambda request, organization_id, action: True)
    org = t.add_organization()
    t.add_members(org.id, 1)

    answer = t.app.test_client().post(
        "/billing/checkout", json={"organization_id": org.id, "plan": "team-monthly"}
    )

    assert answer.status_code == 200, answer.text
    [post] = _checkout_posts(polar)
    assert "trial_interval" not in post.params and "trial_interval_count" not in post.params
