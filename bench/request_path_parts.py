"""Where deferred mode's request-path cost lies on PostgreSQL (issue 16): CPU per hook, and
PostgreSQL's own work for the outbox row.

1. ``bench.request_path``'s request loop (plain app and deferred mode alternating, 1,000 changes
   each after 100 of warm-up), with the extension's hooks wrapped to add up their CPU
   (``time.thread_time()``; each wrapper adds a microsecond or two); prints the CPU of a change
   on each side and of each hook.
2. The same insert + commit on a raw psycopg connection, without and with the outbox upsert
   sent in the COMMIT's query as ``marks_at_commit`` sends it: the wall-time difference is
   PostgreSQL's work on the row plus the query's building, with no SQLAlchemy at all.

    python -m bench.request_path_parts [--ops 1000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg
import sqlalchemy as sa

import bench.request_path as rp
from bench.common import POSTGRES_URL
from flask_seat_billing import outbox
from flask_seat_billing.capture import after_commit, bulk, listeners, marks_at_commit
from flask_seat_billing.tables import define_tables

HOOKS: list[tuple[Any, list[str]]] = [
    (listeners, ["_before_flush", "_after_flush", "_before_insert", "_before_update"]),
    (after_commit, ["on_commit", "on_transaction_end"]),
    (bulk, ["on_execute"]),
    (marks_at_commit, ["_on_commit", "_query", "_on_reset", "_on_rollback", "accepts", "queue"]),
]
SCHEMA = "fsb_bench_parts"


def hook_cpu(ops: int) -> None:
    side = ["warm"]
    spent: dict[tuple[str, str], float] = {}

    def wrap(module: Any, name: str) -> None:
        function: Callable[..., Any] = getattr(module, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                key = (side[0], name)
                spent[key] = spent.get(key, 0.0) + time.thread_time() - started

        setattr(module, name, wrapped)

    for module, names in HOOKS:  # before any app is built: the listeners are the wrappers
        for name in names:
            wrap(module, name)
    totals: dict[str, list[float]] = {}

    def timed_insert(t: Any, org_id: Any, i: int) -> float:
        name = "deferred" if "seat_billing" in t.app.extensions else "plain"
        with t.app.app_context():
            session = t.db.session()
            side[0] = name if i >= rp.WARM_UP else "warm"
            started, cpu = time.perf_counter(), time.thread_time()
            session.add(t.Membership(organization_id=org_id, email=f"m{i}@bench.io"))
            session.commit()
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - started
            side[0] = "warm"
        if i >= rp.WARM_UP:
            totals.setdefault(name, []).append(cpu)
        return wall

    rp.timed_insert = timed_insert
    rp.timed_batch = lambda *args: [1.0]  # the script scenario is not measured here
    rp.run("postgresql", ops)
    for name in ("plain", "deferred"):
        print(f"{name}: CPU per change median {statistics.median(totals[name]) * 1e6:.0f} us")
        for (where, hook), value in sorted(spent.items()):
            if where == name:
                print(f"    {hook}: {value / ops * 1e6:.1f} us per change")


def upsert_wall(ops: int) -> None:
    url = sa.make_url(POSTGRES_URL)
    engine = sa.create_engine(url)
    metadata = sa.MetaData(schema=SCHEMA)
    tables = define_tables(metadata)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        conn.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
        metadata.create_all(conn)
        conn.execute(sa.text(f"CREATE TABLE {SCHEMA}.members (id serial PRIMARY KEY, "
                             "organization_id int, email text)"))
    template = outbox.mark_template(engine.dialect, tables.outbox)
    assert template is not None
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    raw = psycopg.connect(dsn, options=f"-csearch_path={SCHEMA}")
    insert = "INSERT INTO members (organization_id, email) VALUES (%s, %s) RETURNING id"

    def plain(i: int) -> float:
        started = time.perf_counter()
        raw.execute(insert, (1, f"m{i}"))
        raw.commit()
        return time.perf_counter() - started

    def marked(i: int) -> float:
        started = time.perf_counter()
        raw.execute(insert, (1, f"m{i}"))
        query = marks_at_commit._query(raw, {"o": (template, 2.0, {"1"})}) + ";\nCOMMIT"
        raw.execute(query.encode(), prepare=False)
        raw.commit()  # finds the transaction closed: sends nothing
        return time.perf_counter() - started

    try:
        a, b = [], []
        for i in range(ops + rp.WARM_UP):
            x, y = plain(i), marked(i)
            if i >= rp.WARM_UP:
                a.append(x)
                b.append(y)
        pa, pb = statistics.median(a), statistics.median(b)
        print(f"raw psycopg, {ops} each: insert + commit {pa * 1e3:.3f} ms; with the outbox "
              f"upsert in the COMMIT's query {pb * 1e3:.3f} ms; difference "
              f"{(pb - pa) * 1e6:.0f} us")
    finally:
        raw.close()
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {SCHEMA} CASCADE"))
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1000)
    args = parser.parse_args()
    hook_cpu(args.ops)
    upsert_wall(args.ops * 2)


if __name__ == "__main__":
    main()
