"""``migrations/`` builds exactly the demo's schema (its models and the extension's tables)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_migrate import downgrade, upgrade

from demo_app import MIGRATIONS, create_app
from demo_app.models import db
from demo_app.offline import offline_stripe
from tests.conftest import reachable_postgres
from tests.demo.conftest import DEMO_PG, postgres_schema


def migrated_app(url: str) -> Flask:
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade(directory=MIGRATIONS)
    return app


def assert_schema_matches_models(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["db", "check", "--directory", MIGRATIONS])
    assert result.exit_code == 0, result.output
    with app.app_context():
        tables = set(sa.inspect(db.engine).get_table_names())
        expected = set(db.metadata.tables) | {"alembic_version"}
        assert tables == expected
        assert {"seat_billing_subscriptions", "seat_billing_seat_changes"} <= tables
        downgrade(directory=MIGRATIONS, revision="base")
        assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.engine.dispose()
    offline = offline_stripe(app)
    assert offline is not None and offline.stand_in is None, "db commands started the stand-in"


def test_upgrade_from_empty_sqlite_gives_the_models_schema(tmp_path: Path) -> None:
    assert_schema_matches_models(migrated_app(f"sqlite:///{tmp_path / 'empty.sqlite'}"))


@pytest.mark.postgres
def test_upgrade_from_empty_postgresql_gives_the_models_schema() -> None:
    url = reachable_postgres(os.environ.get("SEAT_BILLING_TEST_POSTGRES_URL", DEMO_PG))
    with postgres_schema(url) as empty:
        assert_schema_matches_models(migrated_app(empty))
