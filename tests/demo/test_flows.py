"""The demo's flows through the Flask test client, billing through the offline Stripe stand-in."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from demo_app.billing import seat_billing
from tests.demo.conftest import flashes, org_id, sign_in, stand_in, text_of

OLIVIA, ADAM, MIA = "olivia@example.com", "adam@example.com", "mia@example.com"
IVY, NOAH, RUTH = "ivy@example.com", "noah@example.com", "ruth@example.com"


def subscribe(client: FlaskClient, app: Flask, org: int) -> str:
    """Start checkout as the signed-in manager, pay in the stand-in, land on the success page."""
    response = client.post("/billing/checkout", data={
        "plan": "team-monthly",
        "organization_id": str(org),
        "success_url": f"http://localhost/orgs/{org}/billing/done",
        "cancel_url": f"http://localhost/orgs/{org}",
    })
    assert response.status_code == 303
    stripe = stand_in(app)
    assert response.location.startswith(stripe.url + "/checkout/")
    session_id = response.location.rsplit("/", 1)[1]
    session = stripe.checkout_session(session_id)
    assert session["success_url"].endswith("session_id={CHECKOUT_SESSION_ID}")
    stripe.complete_checkout(session_id)
    done = client.get(f"/orgs/{org}/billing/done?session_id={session_id}")
    assert done.status_code == 200
    assert "is subscribed" in done.get_data(as_text=True)
    return session_id


def dashboard(client: FlaskClient, org: int) -> str:
    response = client.get(f"/orgs/{org}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def invite(client: FlaskClient, org: int, email: str) -> list[str]:
    response = client.post(f"/orgs/{org}/invitations", data={"email": email, "role": "member"},
                           follow_redirects=True)
    return flashes(response.get_data(as_text=True))


def accept_as(client: FlaskClient, email: str) -> list[str]:
    client.post("/signout")
    sign_in(client, email)
    home = client.get("/").get_data(as_text=True)
    invitation = home.split("/invitations/")[1].split("/accept")[0]
    response = client.post(f"/invitations/{invitation}/accept", follow_redirects=True)
    return flashes(response.get_data(as_text=True))


def test_sign_in_is_required_and_lists_seeded_users(client: FlaskClient) -> None:
    assert client.get("/").status_code == 302
    page = client.get("/signin").get_data(as_text=True)
    for email in (OLIVIA, ADAM, MIA):
        assert email in page
    sign_in(client, OLIVIA)
    home = client.get("/").get_data(as_text=True)
    assert "Acme" in home and "Globex" in home


def test_dashboard_shows_members_plan_and_seats(client: FlaskClient, demo: Flask) -> None:
    sign_in(client, OLIVIA)
    page = dashboard(client, org_id(demo, "Acme"))
    for email in (OLIVIA, ADAM, MIA):
        assert email in page
    assert text_of(page, "subscription-status") == "none"
    assert text_of(page, "seats-billable") == "3"
    assert 'id="subscribe"' in page
    assert "No seat changes yet" in page


def test_outsiders_do_not_see_an_organization(client: FlaskClient, demo: Flask) -> None:
    sign_in(client, IVY)
    assert client.get(f"/orgs/{org_id(demo, 'Acme')}").status_code == 404


def test_checkout_redirects_and_success_page_records_subscription(
    client: FlaskClient, demo: Flask
) -> None:
    org = org_id(demo, "Globex")
    sign_in(client, OLIVIA)
    subscribe(client, demo, org)
    page = dashboard(client, org)
    assert text_of(page, "subscription-status") == "active"
    assert text_of(page, "seats-billed") == "1"
    assert 'id="manage-billing"' in page
    assert "$10.00" in text_of(page, "invite-cost")  # one more seat, prorated, right after paying
    portal = client.post("/billing/portal", data={"organization_id": str(org)})
    assert portal.status_code == 303
    assert portal.location.startswith(stand_in(demo).url + "/portal/")
    again = client.post("/billing/checkout", data={"plan": "team-monthly",
                                                   "organization_id": str(org)})
    assert again.status_code == 409


def test_members_cannot_bill_or_invite(client: FlaskClient, demo: Flask) -> None:
    org = org_id(demo, "Acme")
    sign_in(client, MIA)
    page = dashboard(client, org)
    assert 'id="subscribe"' not in page and 'id="invite"' not in page
    denied = client.post("/billing/checkout", data={"plan": "team-monthly",
                                                    "organization_id": str(org)})
    assert denied.status_code == 403
    assert invite(client, org, IVY) == ["Only owners and admins can invite members."]
    mia_page = dashboard(client, org)
    assert "Remove" not in mia_page


def test_admin_may_subscribe(client: FlaskClient, demo: Flask) -> None:
    org = org_id(demo, "Acme")
    sign_in(client, ADAM)
    subscribe(client, demo, org)
    assert text_of(dashboard(client, org), "seats-billed") == "3"


def test_invite_accept_remove_moves_seats_with_prorations(
    client: FlaskClient, demo: Flask
) -> None:
    org = org_id(demo, "Globex")
    sign_in(client, OLIVIA)
    subscribe(client, demo, org)
    assert invite(client, org, IVY) == [f"Invited {IVY}."]
    page = dashboard(client, org)
    assert IVY in text_of(page, "invitations")
    assert text_of(page, "seats-billed") == "1"  # pending invitations are not billed

    assert accept_as(client, IVY) == ["You joined Globex."]
    page = dashboard(client, org)
    assert text_of(page, "seats-billed") == "2"
    ledger = text_of(page, "ledger")
    assert "1 → 2" in ledger and "$10.00" in ledger
    with demo.app_context():
        changes = seat_billing.seat_changes(org)
    assert [(c.from_seats, c.to_seats) for c in changes] == [(1, 2)]
    assert changes[0].prorated_amount == 1000 and changes[0].currency == "usd"

    client.post("/signout")
    sign_in(client, OLIVIA)
    page = dashboard(client, org)
    # the next seat costs one seat, not one plus the proration still pending from Ivy's
    assert text_of(page, "preview-amount").startswith("$10.00 prorated")
    ivy_member = page.split('id="remove-ivy"')[0].rsplit("/members/", 1)[1].split("/")[0]
    response = client.post(f"/orgs/{org}/members/{ivy_member}/remove", follow_redirects=True)
    assert flashes(response.get_data(as_text=True)) == [f"Removed {IVY} from Globex."]
    page = dashboard(client, org)
    assert text_of(page, "seats-billed") == "1"
    assert "2 → 1" in text_of(page, "ledger") and "-$10.00" in text_of(page, "ledger")


def test_invite_is_refused_at_the_seat_limit(client: FlaskClient, demo: Flask) -> None:
    org = org_id(demo, "Globex")
    sign_in(client, OLIVIA)
    subscribe(client, demo, org)
    assert invite(client, org, IVY) == [f"Invited {IVY}."]
    assert invite(client, org, NOAH) == [f"Invited {NOAH}."]
    assert invite(client, org, IVY) == [f"Invitation resent to {IVY}."]  # holds its seat already
    refused = invite(client, org, RUTH)
    assert len(refused) == 1 and refused[0].startswith("All 3 seats of this organization's plan")
    assert RUTH not in text_of(dashboard(client, org), "invitations")


def test_full_organization_refuses_invitations_right_after_subscribing(
    client: FlaskClient, demo: Flask
) -> None:
    org = org_id(demo, "Acme")
    sign_in(client, OLIVIA)
    subscribe(client, demo, org)
    (message,) = invite(client, org, IVY)
    assert "All 3 seats" in message and "3 members" in message


def test_leave_and_the_last_owner_stays(client: FlaskClient, demo: Flask) -> None:
    acme = org_id(demo, "Acme")
    sign_in(client, MIA)
    response = client.post(f"/orgs/{acme}/leave", follow_redirects=True)
    assert flashes(response.get_data(as_text=True)) == ["You left Acme."]
    assert client.get(f"/orgs/{acme}").status_code == 404
    client.post("/signout")
    sign_in(client, OLIVIA)
    response = client.post(f"/orgs/{org_id(demo, 'Globex')}/leave", follow_redirects=True)
    (message,) = flashes(response.get_data(as_text=True))
    assert message.startswith("An organization needs an owner")


def test_admin_cannot_remove_the_owner(client: FlaskClient, demo: Flask) -> None:
    acme = org_id(demo, "Acme")
    sign_in(client, ADAM)
    page = dashboard(client, acme)
    owner = page.split('id="remove-olivia"')[0].rsplit("/members/", 1)[1].split("/")[0]
    response = client.post(f"/orgs/{acme}/members/{owner}/remove", follow_redirects=True)
    assert flashes(response.get_data(as_text=True)) == ["Only an owner can remove another owner."]


def test_seed_is_idempotent(demo: Flask) -> None:
    runner = demo.test_cli_runner()
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "Seeded 0 users and 0 organizations" in result.output
    assert offline_not_started(demo)


def offline_not_started(app: Flask) -> bool:
    from demo_app.offline import offline_stripe

    offline = offline_stripe(app)
    return offline is not None and offline.stand_in is None
