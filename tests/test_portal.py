"""POST /billing/portal over HTTP: only for allowed callers, only for organizations that pay."""

from __future__ import annotations

from typing import Any

import pytest

from tests import web_helpers
from tests.conftest import subscribe
from tests.web_helpers import Served

_web = pytest.fixture(name="web")(web_helpers.web)


def _portal(web: Served, org_id: Any, **extra: Any) -> Any:
    return web.post(
        f"{web.prefix}/portal", json_body={"organization_id": org_id, **extra},
        headers={"X-User-Org": str(org_id)},
    )


def _portal_posts(stripe: Any) -> list[Any]:
    return [r for r in stripe.requests if r.path == "/v1/billing_portal/sessions"]


def test_subscribed_organization_is_sent_to_its_customer_portal(
    web: Served, stripe: Any
) -> None:
    org = web.t.add_organization()
    sub = subscribe(web.t, stripe, org.id, seats=1)

    answer = _portal(web, org.id, return_url="/settings/billing")

    assert answer.status == 200, answer.text
    assert answer.json["url"].startswith(f"{stripe.url}/portal/")
    [post] = _portal_posts(stripe)
    assert post.params["customer"] == stripe.subscription(sub)["customer"]
    assert post.params["return_url"] == f"{web.url}/settings/billing"


def test_browser_gets_a_303(web: Served, stripe: Any) -> None:
    org = web.t.add_organization()
    subscribe(web.t, stripe, org.id, seats=1)

    answer = web.post(
        f"{web.prefix}/portal", form={"organization_id": org.id},
        headers={"X-User-Org": str(org.id), "Accept": "text/html"},
    )

    assert answer.status == 303
    assert answer.headers["Location"].startswith(f"{stripe.url}/portal/")


def test_organization_without_a_customer_is_404(web: Served, stripe: Any) -> None:
    org = web.t.add_organization()

    answer = _portal(web, org.id)

    assert (answer.status, answer.json["code"]) == (404, "NO_CUSTOMER")
    assert _portal_posts(stripe) == []


def test_other_callers_are_403(web: Served, stripe: Any) -> None:
    org = web.t.add_organization()
    subscribe(web.t, stripe, org.id, seats=1)

    answer = web.post(f"{web.prefix}/portal", json_body={"organization_id": org.id},
                      headers={"X-User-Org": "intruder"})

    assert answer.status == 403
    assert _portal_posts(stripe) == []


def test_off_host_return_url_is_400(web: Served, stripe: Any) -> None:
    org = web.t.add_organization()
    subscribe(web.t, stripe, org.id, seats=1)

    answer = _portal(web, org.id, return_url="https://evil.example/")

    assert answer.status == 400
    assert _portal_posts(stripe) == []


def test_provider_failure_is_502(web: Served, stripe: Any) -> None:
    org = web.t.add_organization()
    subscribe(web.t, stripe, org.id, seats=1)
    stripe.faults.fail_next(1, status=503, path_prefix="/v1/billing_portal/sessions")

    assert _portal(web, org.id).status == 502
