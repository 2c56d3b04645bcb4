"""Fixtures for the demo app: a fresh demo per test, migrated and seeded, billing offline.

The demo runs on SQLite, or on PostgreSQL when the suite does (``SEAT_BILLING_TEST_DATABASE=
postgresql``); each PostgreSQL use gets its own schema, dropped afterwards, so that the demo's
tables never meet the other tests' tables of the same names.
"""

from __future__ import annotations

import html
import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from demo_app import MIGRATIONS, create_app
from demo_app.billing import seat_billing
from demo_app.models import Organization, db
from demo_app.offline import OfflineStripe, offline_stripe
from demo_app.seed import seed
from tests.conftest import reachable_postgres

DEMO_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/seat_billing_demo"
TEST_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/seat_billing_test"
# Environment the demo reads; tests start from none of it (offline, instance-less).
DEMO_ENVIRONMENT = (
    "DATABASE_URL",
    "SEAT_BILLING_STRIPE_SECRET_KEY",
    "SEAT_BILLING_STRIPE_WEBHOOK_SECRET",
    "SEAT_BILLING_STRIPE_API_BASE",
    "STRIPE_PRICE_TEAM_MONTHLY",
    "STRIPE_SEAT_PRICE_TEAM_MONTHLY",
    "DEMO_PUBLIC_URL",
    "DEMO_SEAT_LIMIT",
)


@pytest.fixture(autouse=True)
def _offline_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DEMO_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A URL on a new, empty schema of that database (via ``search_path``); dropped afterwards."""
    name = f"demo_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    try:
        scoped = sa.make_url(url).update_query_dict({"options": f"-csearch_path={name}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        engine.dispose()


@pytest.fixture
def demo_database(tmp_path: Path) -> Iterator[str]:
    """An empty database for one demo app."""
    if os.environ.get("SEAT_BILLING_TEST_DATABASE", "sqlite") == "postgresql":
        url = reachable_postgres(os.environ.get("SEAT_BILLING_TEST_POSTGRES_URL", TEST_PG))
        with postgres_schema(url) as scoped:
            yield scoped
    else:
        yield f"sqlite:///{tmp_path / 'demo.sqlite'}"


DemoFactory = Callable[..., Flask]


@pytest.fixture
def make_demo(demo_database: str, tmp_path: Path) -> Iterator[DemoFactory]:
    """Build demo apps on ``demo_database``: migrated, seeded, torn down (stand-in, worker)."""
    built: list[Flask] = []

    def factory(**config: Any) -> Flask:
        settings = {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": demo_database,
            "SEAT_BILLING_STRIPE_MAX_NETWORK_RETRIES": 0,
            "SEAT_BILLING_PROVIDER_TIMEOUT_SECONDS": 5,
            **config,
        }
        app = create_app(settings)
        built.append(app)
        with app.app_context():
            upgrade(directory=MIGRATIONS)
            seed()
        return app

    yield factory
    for app in built:
        offline = offline_stripe(app)
        if offline is not None:
            offline.stop()
        with app.app_context():
            seat_billing.stop_worker()
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def demo(make_demo: DemoFactory) -> Flask:
    """The demo with the test client's fake host: the stand-in sends it no webhooks."""
    return make_demo(DEMO_STAND_IN_WEBHOOKS=False)


@pytest.fixture
def client(demo: Flask) -> FlaskClient:
    return demo.test_client()


def org_id(app: Flask, name: str) -> int:
    with app.app_context():
        org = db.session.execute(db.select(Organization).filter_by(name=name)).scalar_one()
        return int(org.id)


def stand_in(app: Flask) -> Any:
    offline: OfflineStripe | None = offline_stripe(app)
    assert offline is not None and offline.stand_in is not None, "the stand-in has not started"
    return offline.stand_in


def sign_in(client: FlaskClient, email: str) -> None:
    response = client.post("/signin", data={"email": email})
    assert response.status_code == 302, response.get_data(as_text=True)


def flashes(page: str) -> list[str]:
    found = re.findall(r'class="flash [^"]*"[^>]*>([^<]*)<', page)
    return [html.unescape(m.strip()) for m in found]


def text_of(page: str, element_id: str) -> str:
    """The text inside the element with that id (tags stripped, spaces collapsed)."""
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</(?:dd|p|span|table)>', page, re.S)
    assert match is not None, f"no element #{element_id}"
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split()))
