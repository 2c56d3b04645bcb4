"""A small Flask app wired to flask-seat-billing the way the README tells users to.

Run it with ``python3 tasks.py demo`` (or ``flask --app demo_app db upgrade --directory
migrations && flask --app demo_app seed-demo && flask --app demo_app run``). Offline by default:
without ``SEAT_BILLING_STRIPE_SECRET_KEY`` it bills through the project's Stripe stand-in.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask_migrate import Migrate

from . import offline
from .auth import bp as auth_bp
from .billing import products, seat_billing, seat_type
from .formatting import register_filters
from .models import Invitation, Membership, db
from .orgs import bp as orgs_bp
from .seed import seed_demo_command

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")
FROM_ENVIRONMENT = (
    "SEAT_BILLING_STRIPE_SECRET_KEY",
    "SEAT_BILLING_STRIPE_WEBHOOK_SECRET",
    "SEAT_BILLING_STRIPE_API_BASE",
)

migrate = Migrate()
log = logging.getLogger("demo_app")


def database_url(instance_path: str) -> str:
    """``DATABASE_URL`` (``postgres://`` URLs get the psycopg 3 driver), else instance SQLite."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{Path(instance_path) / 'demo.sqlite'}"
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    return url


def demo_hosts(public_url: str | None) -> list[str]:
    """Loopback names, plus the host of ``DEMO_PUBLIC_URL`` when the demo is served elsewhere."""
    hosts = ["127.0.0.1", "localhost"]
    public_host = urlsplit(public_url).hostname if public_url else None
    if public_host:
        hosts.append(public_host)
    return hosts


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("SECRET_KEY", "demo-only-not-secret"),
        SESSION_COOKIE_SAMESITE="Lax",
        SQLALCHEMY_DATABASE_URI=database_url(app.instance_path),
        DEMO_PRICE_ID=os.environ.get("STRIPE_PRICE_TEAM_MONTHLY"),
        DEMO_SEAT_PRICE_ID=os.environ.get("STRIPE_SEAT_PRICE_TEAM_MONTHLY"),
        DEMO_SEAT_LIMIT=int(os.environ.get("DEMO_SEAT_LIMIT", "3")),
        # Optional in Stripe test mode: the studio plan (editor and viewer seats).
        DEMO_STUDIO_PRICE_ID=os.environ.get("STRIPE_PRICE_STUDIO_MONTHLY"),
        DEMO_EDITOR_PRICE_ID=os.environ.get("STRIPE_EDITOR_PRICE_STUDIO_MONTHLY"),
        DEMO_VIEWER_PRICE_ID=os.environ.get("STRIPE_VIEWER_PRICE_STUDIO_MONTHLY"),
        DEMO_PUBLIC_URL=os.environ.get("DEMO_PUBLIC_URL"),
        DEMO_STAND_IN_WEBHOOKS=True,
        # Where checkout and the portal may send the browser back to: the demo's own addresses.
        SEAT_BILLING_ALLOWED_REDIRECT_HOSTS=demo_hosts(os.environ.get("DEMO_PUBLIC_URL")),
    )
    for key in FROM_ENVIRONMENT:
        if os.environ.get(key):
            app.config[key] = os.environ[key]
    if test_config:
        app.config.from_mapping(test_config)

    offline.configure(app)
    if not (app.config["DEMO_PRICE_ID"] and app.config["DEMO_SEAT_PRICE_ID"]):
        raise RuntimeError(
            "SEAT_BILLING_STRIPE_SECRET_KEY is set, so the demo uses Stripe: set "
            "STRIPE_PRICE_TEAM_MONTHLY (base price) and STRIPE_SEAT_PRICE_TEAM_MONTHLY (per-seat "
            "price) to recurring monthly prices of your Stripe test account."
        )
    if not app.config.get("SEAT_BILLING_STRIPE_WEBHOOK_SECRET"):
        log.warning("SEAT_BILLING_STRIPE_WEBHOOK_SECRET is not set: Stripe webhooks are refused.")

    db.init_app(app)
    seat_billing.init_app(
        app,
        db=db,
        member_model=Membership,
        organization_key="organization_id",
        products=products(app.config),
        invitation_model=Invitation,
        seat_type=seat_type,
    )
    migrate.init_app(app, db, directory=MIGRATIONS, render_as_batch=True, compare_type=True)

    app.register_blueprint(auth_bp)
    app.register_blueprint(orgs_bp)
    app.cli.add_command(seed_demo_command)
    register_filters(app)
    return app
