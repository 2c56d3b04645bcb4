"""Processes killed with SIGKILL at the worst moments: after the commit, and inside the write.

SIGKILL runs no cleanup (no ``finally``, no atexit, no socket close handshake from Python), so
what survives is exactly what the database committed and what the provider applied. A fresh drain
must then converge without applying any change twice, on every provider.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

from tests.behaviour.chaos.invariants import (
    ROOT,
    database_kind,
    drain,
    key_reuse,
    ledger_doubles,
    mismatches,
    seat_writes,
    write_summary,
)
from tests.behaviour.conftest import AppFactory, World
from tests.helpers import ledger_rows, outbox_rows, wait_for


def _child(script: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT,
                            env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _kill(child: subprocess.Popen[str]) -> str:
    child.send_signal(signal.SIGKILL)
    _, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, err
    return err


def _world(t: Any, provider: World, sizes: list[int]) -> tuple[list[Any], dict[Any, str]]:
    with t.app.app_context():
        orgs = [t.add_organization(f"org{i}").id for i in range(len(sizes))]
        subs = {}
        for org, size in zip(orgs, sizes, strict=True):
            t.add_members(org, size)
            subs[org] = provider.subscribe(t, org)
        t.billing.sync_pending()
        assert outbox_rows(t) == []
    return orgs, subs


def test_sigkill_between_commit_and_sync(
    make_app: AppFactory, provider: World, database_url: str
) -> None:
    """Deferred mode: the child commits changes to three organizations and is killed while its
    worker is still waiting out the debounce window; the rows become due and are drained."""
    t = make_app({"SEAT_BILLING_SYNC_MODE": "manual"})
    orgs, subs = _world(t, provider, [2, 3, 1])
    app = provider.attach_source(
        database_url, SEAT_BILLING_SYNC_MODE="deferred", SEAT_BILLING_SYNC_DEBOUNCE_SECONDS=3
    )
    child = _child(app + f"""
import time
with t.app.app_context():
    for org, n in zip({orgs!r}, (2, 2, 3)):
        t.add_members(org, n)
    first = t.Membership.query.filter_by(organization_id={orgs[1]!r}).first()
    t.db.session.delete(first)
    t.db.session.commit()
print("committed", flush=True)
time.sleep(60)
""")
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "committed"
    _kill(child)
    writes_before = len(seat_writes(provider))

    with t.app.app_context():
        assert sorted(r["organization_key"] for r in outbox_rows(t)) == sorted(map(str, orgs))
    passes = drain(t)

    with t.app.app_context():
        wrong = mismatches(t, provider, subs)
        doubles = ledger_doubles(t)
        rows = ledger_rows(t)
    new_writes = len(seat_writes(provider)) - writes_before
    write_summary("crash-after-commit", provider, {
        "database": database_kind(database_url), "organizations": len(orgs),
        "membership_operations": 8, "processes_killed": 1, "drain_passes": passes,
        "seat_writes_after_crash": new_writes, "final_mismatches": len(wrong),
        "ledger_double_entries": len(doubles),
    })
    assert wrong == {}
    assert doubles == []
    assert new_writes == 3  # one per organization, none repeated
    assert sorted((r["from_seats"], r["to_seats"]) for r in rows) == [(1, 4), (2, 4), (3, 4)]


def _kill_during_write(provider: World, database_url: str, *, apply: bool) -> None:
    """Run ``sync_pending`` in a child whose seat write stalls; SIGKILL it inside the call."""
    stand_in = provider.stand_in
    method, path = provider.dialect.seat_write
    stand_in.faults.stall_next(1, seconds=4, apply=apply, path_prefix=path, method=method)
    app = provider.attach_source(
        database_url, SEAT_BILLING_SYNC_MODE="manual", SEAT_BILLING_PROVIDER_TIMEOUT_SECONDS=60
    )
    child = _child(app + """
with t.app.app_context():
    t.billing.sync_pending()
""")
    # The stall fault is taken when the write arrives (and, with apply, applied right then).
    assert wait_for(lambda: not stand_in.faults.pending(), timeout=30), child.poll()
    time.sleep(0.2)
    _kill(child)
    # The stand-in logs a request when its (late) answer is ready: wait for that, not longer.
    assert wait_for(lambda: any(r.fault == "stall" for r in stand_in.requests.all()), timeout=15)


def test_sigkill_inside_the_provider_write_after_it_landed(
    make_app: AppFactory, provider: World, database_url: str
) -> None:
    t = make_app({"SEAT_BILLING_SYNC_MODE": "manual"})
    [org], subs = _world(t, provider, [2])
    with t.app.app_context():
        t.add_members(org, 3)  # manual: an outbox row, no sync
    _kill_during_write(provider, database_url, apply=True)
    assert provider.seats(subs[org]) == 5  # the provider did it; nobody recorded it
    with t.app.app_context():
        assert [r["organization_key"] for r in outbox_rows(t)] == [str(org)]
        assert ledger_rows(t) == []

    results = []
    with t.app.app_context():
        results = t.billing.sync_pending()
        rows = ledger_rows(t)
        wrong = mismatches(t, provider, subs)
    method, path = provider.dialect.seat_write
    applied = [r for r in provider.stand_in.requests.all()
               if r.method == method and r.path.startswith(path) and r.changed]
    write_summary("crash-inside-write-applied", provider, {
        "database": database_kind(database_url), "processes_killed": 1,
        "writes_applied_by_provider": len(applied), "resync_action": results[0].action,
        "final_mismatches": len(wrong), "ledger_rows": len(rows),
    })
    assert [r.action for r in results] == ["unchanged"]  # read first: nothing is sent again
    assert len(applied) == 1
    assert [(r["from_seats"], r["to_seats"], r["reason"]) for r in rows] == [(2, 5, "observed")]
    assert wrong == {}
    with t.app.app_context():
        assert outbox_rows(t) == []


def test_sigkill_inside_a_provider_write_that_never_landed_then_more_changes(
    make_app: AppFactory, provider: World, database_url: str
) -> None:
    t = make_app({"SEAT_BILLING_SYNC_MODE": "manual"})
    [org], subs = _world(t, provider, [2])
    with t.app.app_context():
        t.add_members(org, 1)
    _kill_during_write(provider, database_url, apply=False)
    assert provider.seats(subs[org]) == 2
    with t.app.app_context():
        t.add_members(org, 2)  # the count moved on while nobody was syncing
    drain(t)
    with t.app.app_context():
        rows = ledger_rows(t)
        assert mismatches(t, provider, subs) == {}
        assert ledger_doubles(t) == []
    assert key_reuse(provider) == {}
    assert [(r["from_seats"], r["to_seats"]) for r in rows] == [(2, 5)]
    assert len(seat_writes(provider)) == 1
