"""``flask --app demo_app seed-demo``: the seeded users and organizations, idempotently."""

from __future__ import annotations

from dataclasses import dataclass

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from .models import Invitation, Membership, Organization, User, db
from .offline import offline_stripe

USERS = [
    ("olivia@example.com", "Olivia Owner"),
    ("adam@example.com", "Adam Admin"),
    ("mia@example.com", "Mia Member"),
    ("ivy@example.com", "Ivy Invitee"),
    ("noah@example.com", "Noah Newcomer"),
    ("ruth@example.com", "Ruth Recruit"),
]
ORGANIZATIONS = {
    # Acme is full (3 of 3 seats once subscribed); Globex starts with one seat.
    "Acme": [("olivia@example.com", "owner"), ("adam@example.com", "admin"),
             ("mia@example.com", "member")],
    "Globex": [("olivia@example.com", "owner")],
}
BILLING_TABLES = ("seat_billing_seat_changes", "seat_billing_outbox", "seat_billing_webhook_events",
                  "seat_billing_owner_tags", "seat_billing_subscriptions")


@dataclass
class SeedReport:
    users: int = 0
    organizations: int = 0
    forgotten_billing: bool = False


def seed(reset: bool = False) -> SeedReport:
    """Create what is missing. An organization gets its seeded members when it is created only,
    so people who left or joined during a demo stay as they are unless ``reset``."""
    report = SeedReport()
    if reset:
        for model in (Invitation, Membership, Organization, User):
            db.session.execute(sa.delete(model))
    if reset or offline_stripe(current_app) is not None:
        # Offline, the stand-in's account lives in memory: last run's subscriptions are gone.
        for name in BILLING_TABLES:
            db.session.execute(db.metadata.tables[name].delete())
        report.forgotten_billing = True
    users: dict[str, User] = {}
    for email, name in USERS:
        user = db.session.execute(db.select(User).filter_by(email=email)).scalar_one_or_none()
        if user is None:
            user = User(email=email, name=name)
            db.session.add(user)
            report.users += 1
        users[email] = user
    for org_name, members in ORGANIZATIONS.items():
        exists = db.session.execute(
            db.select(Organization).filter_by(name=org_name)
        ).scalar_one_or_none()
        if exists is not None:
            continue
        org = Organization(name=org_name)
        db.session.add(org)
        for email, role in members:
            db.session.add(Membership(organization=org, user=users[email], role=role))
        report.organizations += 1
    db.session.commit()
    return report


@click.command("seed-demo")
@click.option("--reset", is_flag=True, help="Delete the demo's data first, then seed it again.")
@with_appcontext
def seed_demo_command(reset: bool) -> None:
    """Create the demo users (owner, admin, member, invitees) and organizations (Acme, Globex)."""
    report = seed(reset=reset)
    click.echo(f"Seeded {report.users} users and {report.organizations} organizations "
               "(existing ones kept).")
    if report.forgotten_billing:
        click.echo("Local billing state cleared: the offline Stripe stand-in starts empty.")
    click.echo("Sign in as " + ", ".join(email for email, _ in USERS[:3]) + ".")
