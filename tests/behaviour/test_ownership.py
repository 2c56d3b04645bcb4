"""Of several subscriptions linked to an organization, the billable one on a configured plan is
the organization's, on every provider: an ended one and one on a plan the app does not know are
never written to, and the portal opens for the chosen one's customer."""

from __future__ import annotations

from tests.behaviour.conftest import World
from tests.web_helpers import Served


def test_the_billable_subscription_of_a_configured_plan_is_the_organizations(
    web: Served, provider: World
) -> None:
    t = web.t
    s = provider.stand_in
    org = t.add_organization()
    t.add_members(org.id, 2)
    old = provider.subscribe(t, org.id)
    s.cancel_subscription(old)
    provider.delivered()
    t.billing.link_subscription(org.id, old)
    current = provider.subscribe(t, org.id, plan=provider.other_plan.name)
    unrelated = s.subscribe("stranger", provider.unconfigured_plan(), 1, metadata={})
    t.billing.link_subscription(org.id, unrelated)  # newest row, but no configured plan

    t.add_members(org.id, 1)

    chosen = t.billing.subscription_for(org.id)
    assert chosen is not None and chosen.provider_subscription_id == current
    assert provider.seats(current, plan=provider.other_plan.name) == 3
    assert provider.writes_to(unrelated) == [] and provider.writes_to(old) == []
    portal = web.post(f"{web.prefix}/portal", json_body={"organization_id": org.id},
                      headers={"X-User-Org": str(org.id)})
    assert portal.status == 200, portal.text
    [post] = provider.portal_posts()
    assert provider.dialect.portal_customer(post) == s.customer_of(current)
