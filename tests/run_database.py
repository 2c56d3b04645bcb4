"""A PostgreSQL database of its own for each test run, so two runs on one machine never meet.

``SEAT_BILLING_TEST_POSTGRES_URL`` names the server and the prefix: a run on
``.../seat_billing_test`` creates ``seat_billing_test_run_<unix time>_<pid>_<host>_<random>``
at start, points the variable at it (subprocesses the tests spawn inherit it) and drops it at
the end.
A run that crashed leaves its database behind; the next run drops it when its process is gone
(same host) or when it is more than a day old (any host).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import time

import sqlalchemy as sa

STALE_SECONDS = 24 * 3600
MAX_NAME = 63  # PostgreSQL's identifier limit


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def _server(url: sa.URL) -> sa.Engine:
    """An autocommit engine on the server's maintenance database (CREATE DATABASE needs one)."""
    return sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _drop(conn: sa.Connection, name: str) -> None:
    quoted = '"' + name.replace('"', '""') + '"'
    try:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
    except sa.exc.ProgrammingError:  # before PostgreSQL 13: no FORCE
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}"))


def _drop_stale(conn: sa.Connection, prefix: str) -> None:
    pattern = re.compile(re.escape(prefix) + r"_run_(\d+)_(\d+)_([0-9a-f]{6})_[0-9a-f]{4}")
    names = conn.execute(sa.text("SELECT datname FROM pg_database")).scalars().all()
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        started, pid, host = int(match[1]), int(match[2]), match[3]
        dead = host == _host_tag() and not _alive(pid)
        if dead or time.time() - started > STALE_SECONDS:
            _drop(conn, name)


def create(base_url: str) -> str | None:
    """Create this run's database on ``base_url``'s server; its URL, or None if unreachable."""
    url = sa.make_url(base_url)
    prefix = url.database or "seat_billing_test"
    suffix = f"_run_{int(time.time())}_{os.getpid()}_{_host_tag()}_{secrets.token_hex(2)}"
    name = prefix[: MAX_NAME - len(suffix)] + suffix
    engine = _server(url)
    try:
        with engine.connect() as conn:
            _drop_stale(conn, prefix[: MAX_NAME - len(suffix)])
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError:
        return None
    finally:
        engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop(run_url: str) -> None:
    """Drop this run's database (connections left open by a test are closed by FORCE)."""
    url = sa.make_url(run_url)
    engine = _server(url)
    try:
        with engine.connect() as conn:
            _drop(conn, str(url.database))
    finally:
        engine.dispose()
