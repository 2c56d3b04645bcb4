"""Each test run gets its own PostgreSQL database; a crashed run's database is cleaned up."""

from __future__ import annotations

import os
import time

import sqlalchemy as sa

from tests import run_database


def _names(url: str) -> set[str]:
    engine = sa.create_engine(sa.make_url(url).set(database="postgres"))
    with engine.connect() as conn:
        names = set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())
    engine.dispose()
    return names


def test_this_run_uses_its_own_database(postgres_url: str) -> None:
    database = sa.make_url(postgres_url).database or ""
    assert f"_run_{int(database.split('_run_')[1].split('_')[0])}_{os.getpid()}_" in database


def test_a_second_run_gets_another_database_and_a_dead_runs_is_dropped(
    postgres_url: str,
) -> None:
    prefix = "seat_billing_probe"
    base = sa.make_url(postgres_url).set(database=prefix).render_as_string(hide_password=False)
    engine = sa.create_engine(sa.make_url(postgres_url).set(database="postgres"),
                              isolation_level="AUTOCOMMIT")
    dead = f"{prefix}_run_{int(time.time())}_999999999_{run_database._host_tag()}_0000"
    old = f"{prefix}_run_{int(time.time()) - 2 * 86400}_{os.getpid()}_abcdef_0000"
    with engine.connect() as conn:
        for name in (dead, old):
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()

    first, second = run_database.create(base), run_database.create(base)
    try:
        assert first and second and first != second
        names = _names(postgres_url)
        assert {sa.make_url(first).database, sa.make_url(second).database} <= names
        assert dead not in names and old not in names
    finally:
        for url in (first, second):
            if url:
                run_database.drop(url)
    assert sa.make_url(first or "").database not in _names(postgres_url)
