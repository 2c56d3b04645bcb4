"""What one inline membership change costs: SQL statements, database round trips, provider
requests (issue 16's "report the SQL statements and round trips per inline change").

One subscribed organization; each change is a member added and committed in a request-like app
context, in inline mode, so the commit runs the whole sync (lock, count, read, write, record)
before it returns. Counted per change:

- SQL statements: every statement SQLAlchemy sends (a ``before_cursor_execute`` listener on the
  app's engine), the app's own INSERT included, plus the pass's first read when it travels with
  the advisory lock outside SQLAlchemy (PostgreSQL);
- round trips (PostgreSQL): every query or command psycopg sends, which also counts BEGIN,
  COMMIT and ROLLBACK, and statements sent on the driver connection outside SQLAlchemy (the
  advisory lock); on SQLite there is no network, so only statements are reported;
- provider requests: from the stand-in's request log.

The app's own work (BEGIN, INSERT, COMMIT: 3 round trips, 1 statement) is in the totals.

    python -m bench.inline_cost [--db sqlite|postgresql] [--changes 200]
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import sqlalchemy as sa

from bench.common import make_app, stand_in, subscribe, teardown
from tests.apps import PRO_MONTHLY

WARM_UP = 20


class RoundTrips:
    """Counts what psycopg sends: queries (plain, prepared, and the preparing of one, each a
    round trip outside a pipeline; a query of several statements, sent with client-side
    binding, is one) and commands (BEGIN, COMMIT...). Private psycopg methods:
    a benchmark's instrument, not library code."""

    def __init__(self) -> None:
        self.count = 0
        self.outside = 0
        self.inside_sqlalchemy = False  # set by the engine's cursor-execute events
        self._undo: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> RoundTrips:
        try:
            from psycopg import _connection_base, _cursor_base, client_cursor
        except ImportError:  # no psycopg: nothing to count
            return self
        sends = [(_cursor_base.BaseCursor, name) for name in
                 ("_execute_send", "_send_prepare", "_send_query_prepared")]
        # ClientCursor (the lock sent with the pass's first read) has its own send
        sends.append((client_cursor.ClientCursorMixin, "_execute_send"))
        for owner, name in [*sends, (_connection_base.BaseConnection, "_exec_command")]:
            original = getattr(owner, name)
            self._undo.append((owner, name, original))
            setattr(owner, name, self._counting(original, query=name != "_exec_command"))
        return self

    def _counting(self, original: Any, query: bool) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            # a query the sync sends on the driver connection, outside SQLAlchemy (the first
            # read with the lock, the mark, the record with the release): one statement
            self.outside += query and not self.inside_sqlalchemy
            return original(*args, **kwargs)
        return counted

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in self._undo:
            setattr(owner, name, original)


def run(kind: str, changes: int) -> dict[str, float]:
    with stand_in() as stripe:
        t = make_app(kind, stripe, SEAT_BILLING_SYNC_MODE="inline")
        try:
            with t.app.app_context():
                org = t.add_organization()
                t.add_members(org.id, 1)
                subscribe(t, stripe, org.id, 1)
                t.billing.sync_pending()
                engine = t.db.engine
            statements = [0]

            def count(*args: Any, **kwargs: Any) -> None:
                statements[0] += 1

            sa.event.listen(engine, "before_cursor_execute", count)
            per_change: dict[str, list[int]] = {"statements": [], "round_trips": [],
                                                "provider_requests": []}
            with RoundTrips() as trips:
                def enter(*args: Any, **kwargs: Any) -> None:
                    trips.inside_sqlalchemy = True

                def leave(*args: Any, **kwargs: Any) -> None:
                    trips.inside_sqlalchemy = False

                sa.event.listen(engine, "before_cursor_execute", enter)
                sa.event.listen(engine, "after_cursor_execute", leave)
                sa.event.listen(engine, "handle_error", leave)
                for i in range(WARM_UP + changes):
                    s0, r0, p0 = statements[0] + trips.outside, trips.count, len(stripe.requests)
                    with t.app.app_context():
                        t.db.session.add(t.Membership(organization_id=org.id,
                                                      email=f"m{i}@bench.io"))
                        t.db.session.commit()
                    if i >= WARM_UP:
                        per_change["statements"].append(statements[0] + trips.outside - s0)
                        per_change["round_trips"].append(trips.count - r0)
                        per_change["provider_requests"].append(len(stripe.requests) - p0)
            sa.event.remove(engine, "before_cursor_execute", count)
            sa.event.remove(engine, "before_cursor_execute", enter)
            sa.event.remove(engine, "after_cursor_execute", leave)
            sa.event.remove(engine, "handle_error", leave)
            with t.app.app_context():
                final = (stripe.seats(_sub(t), PRO_MONTHLY),
                         t.billing.billable_seats(org.id))
            return {name: statistics.mean(values) for name, values in per_change.items()} | {
                "final_ok": float(final[0] == final[1])}
        finally:
            teardown(t)


def _sub(t: Any) -> str:
    local = t.billing.subscription_for(t.Organization.query.first().id)
    return str(local.provider_subscription_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--changes", type=int, default=200)
    args = parser.parse_args()
    result = run(args.db, args.changes)
    print(f"[{args.db}] one inline member insert + commit, mean of {args.changes} changes:")
    print(f"  SQL statements:     {result['statements']:.1f}")
    if args.db == "postgresql":
        print(f"  round trips:        {result['round_trips']:.1f}")
    print(f"  provider requests:  {result['provider_requests']:.2f}")
    print(f"  final quantity equals billable seats: {bool(result['final_ok'])}")


if __name__ == "__main__":
    main()
