"""POST /billing/portal over HTTP on every provider: only for allowed callers, only for
organizations that pay, and always to the provider's own customer portal."""

from __future__ import annotations

from typing import Any

from tests.behaviour.conftest import World
from tests.web_helpers import Answer, Served


def _portal(web: Served, org_id: Any, **extra: Any) -> Answer:
    return web.post(
        f"{web.prefix}/portal", json_body={"organization_id": org_id, **extra},
        headers={"X-User-Org": str(org_id)},
    )


def test_subscribed_organization_is_sent_to_its_customer_portal(
    web: Served, provider: World
) -> None:
    org = web.t.add_organization()
    sub = provider.subscribe(web.t, org.id, seats=1)

    answer = _portal(web, org.id, return_url="/settings/billing")

    assert answer.status == 200, answer.text
    assert answer.json["url"].startswith(provider.stand_in.url + provider.dialect.portal_page)
    [post] = provider.portal_posts()
    assert provider.dialect.portal_customer(post) == provider.stand_in.customer_of(sub)
    assert post.params["return_url"] == f"{web.url}/settings/billing"


def test_browser_gets_a_303(web: Served, provider: World) -> None:
    org = web.t.add_organization()
    provider.subscribe(web.t, org.id, seats=1)

    answer = web.post(
        f"{web.prefix}/portal", form={"organization_id": org.id},
        headers={"X-User-Org": str(org.id), "Accept": "text/html"},
    )

    assert answer.status == 303
    page = provider.stand_in.url + provider.dialect.portal_page
    assert answer.headers["Location"].startswith(page)


def test_organization_without_a_customer_is_404(web: Served, provider: World) -> None:
    org = web.t.add_organization()

    answer = _portal(web, org.id)

    assert (answer.status, answer.json["code"]) == (404, "NO_CUSTOMER")
    assert provider.portal_posts() == []


def test_other_callers_are_403(web: Served, provider: World) -> None:
    org = web.t.add_organization()
    provider.subscribe(web.t, org.id, seats=1)

    answer = web.post(f"{web.prefix}/portal", json_body={"organization_id": org.id},
                      headers={"X-User-Org": "intruder"})

    assert answer.status == 403
    assert provider.portal_posts() == []


def test_off_host_return_url_is_400(web: Served, provider: World) -> None:
    org = web.t.add_organization()
    provider.subscribe(web.t, org.id, seats=1)

    answer = _portal(web, org.id, return_url="https://evil.example/")

    assert answer.status == 400
    assert provider.portal_posts() == []


def test_provider_failure_is_502(web: Served, provider: World) -> None:
    org = web.t.add_organization()
    provider.subscribe(web.t, org.id, seats=1)
    provider.stand_in.faults.fail_next(1, status=503, path_prefix=provider.dialect.portal_path)

    assert _portal(web, org.id).status == 502
