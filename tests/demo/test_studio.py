"""The demo's studio plan: editor seats for owners and admins, viewer seats for members, and a
promotion moving one seat from viewer to editor in one subscription update."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from demo_app.billing import OFFLINE_EDITOR_PRICE, OFFLINE_VIEWER_PRICE, seat_billing
from tests.demo.conftest import flashes, org_id, sign_in, stand_in, text_of

OLIVIA = "olivia@example.com"


def _subscribe_studio(client: FlaskClient, app: Flask, org: int) -> str:
    response = client.post("/billing/checkout", data={
        "plan": "studio-monthly", "organization_id": str(org),
        "success_url": f"http://localhost/orgs/{org}/billing/done",
        "cancel_url": f"http://localhost/orgs/{org}",
    })
    assert response.status_code == 303, response.get_data(as_text=True)
    stripe = stand_in(app)
    session_id = response.location.rsplit("/", 1)[1]
    stripe.complete_checkout(session_id)
    assert client.get(f"/orgs/{org}/billing/done?session_id={session_id}").status_code == 200
    with app.app_context():
        local = seat_billing.subscription_for(org)
        assert local is not None
        return local.provider_subscription_id


def _quantities(app: Flask, sub: str) -> dict[str, int]:
    items = stand_in(app).subscription(sub)["items"]["data"]
    return {i["price"]["id"]: int(i["quantity"]) for i in items}


def test_a_promotion_moves_a_viewer_seat_to_an_editor_seat(
    demo: Flask, client: FlaskClient
) -> None:
    acme = org_id(demo, "Acme")  # Olivia (owner), Adam (admin): editors; Mia (member): viewer
    sign_in(client, OLIVIA)
    sub = _subscribe_studio(client, demo, acme)
    assert _quantities(demo, sub)[OFFLINE_EDITOR_PRICE] == 2
    assert _quantities(demo, sub)[OFFLINE_VIEWER_PRICE] == 1
    page = client.get(f"/orgs/{acme}").get_data(as_text=True)
    assert (text_of(page, "seats-editor"), text_of(page, "seats-viewer")) == ("2", "1")
    # an invitation (the member role) would take one more viewer seat: priced per type
    assert text_of(page, "preview-amount").startswith("$5.00")
    writes_before = len(stand_in(demo).writes())

    promote = re.search(r'action="([^"]+/role)"[^<]*<input[^>]+value="admin"[^<]*'
                        r'<button[^>]+id="promote-mia"', page)
    assert promote is not None
    answer = client.post(promote.group(1), data={"role": "admin"}, follow_redirects=True)

    page = answer.get_data(as_text=True)
    assert flashes(page) == ["mia@example.com is now admin."]
    assert _quantities(demo, sub)[OFFLINE_EDITOR_PRICE] == 3
    assert _quantities(demo, sub)[OFFLINE_VIEWER_PRICE] == 0
    writes = stand_in(demo).writes()[writes_before:]
    assert [w.path for w in writes] == [f"/v1/subscriptions/{sub}"]
    assert text_of(page, "seats-editor") == "3"
