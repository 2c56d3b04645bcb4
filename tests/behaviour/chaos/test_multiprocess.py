"""Several processes change members of shared and separate organizations at once, on PostgreSQL.

Threads share one process's locks and connection pool; only separate processes show whether the
advisory lock and the outbox generation really serialise syncs. Half of the children sync inline
(on the committing thread), half in deferred mode (a debounced background worker that may still
be waiting when the child exits, leaving rows for the next process to drain).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter

from tests.behaviour.chaos.invariants import (
    ROOT,
    drain,
    key_reuse,
    ledger_doubles,
    mismatches,
    seat_writes,
    write_summary,
)
from tests.behaviour.conftest import AppFactory, World
from tests.helpers import outbox_rows

# Runs after the world's ``attach_source``, which has built the app as ``t``.
CHILD = """
import json, random, sys
from tests.behaviour.chaos.invariants import membership_op

seed, orgs, steps = int(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
ops, conflicts = {}, 0
with t.app.app_context():
    for step in range(steps):
        try:
            op = membership_op(t, rng, orgs, f"p{seed}-{step}")
            ops[op] = ops.get(op, 0) + 1
        except Exception:  # another process removed the member first: the app's own conflict
            t.db.session.rollback()
            conflicts += 1
    t.db.session.remove()
print(json.dumps({"ops": ops, "conflicts": conflicts}))
"""


def test_processes_inline_and_deferred_converge(
    make_app: AppFactory, provider: World, postgres_url: str
) -> None:
    t = make_app({"SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 5, "max_overflow": 5}},
                 database_url=postgres_url)
    with t.app.app_context():
        orgs = [t.add_organization(f"org{i}").id for i in range(4)]
        subs = {}
        for org in orgs:
            t.add_members(org, 2)
            subs[org] = provider.subscribe(t, org)
        t.billing.sync_pending()
    shared = orgs[0]
    plan = [(n, "inline" if n % 2 == 0 else "deferred", [shared, orgs[1 + n % 3]])
            for n in range(4)]
    started = time.monotonic()
    def source(mode: str) -> str:
        return provider.attach_source(
            postgres_url, SEAT_BILLING_SYNC_MODE=mode, SEAT_BILLING_SYNC_DEBOUNCE_SECONDS=0.2,
            SEAT_BILLING_RETRY_BASE_SECONDS=0.05, SEAT_BILLING_POLL_SECONDS=0.1,
            SEAT_BILLING_STRIPE_MAX_NETWORK_RETRIES=1,
        ) + textwrap.dedent(CHILD)

    children = [
        subprocess.Popen(
            [sys.executable, "-c", source(mode), str(seed), json.dumps(mine), "40"],
            cwd=ROOT, env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        for seed, mode, mine in plan
    ]
    ops: Counter[str] = Counter()
    conflicts = 0
    for child in children:
        out, err = child.communicate(timeout=90)
        assert child.returncode == 0, err[-3000:]
        report = json.loads(out.strip().splitlines()[-1])
        ops.update(report["ops"])
        conflicts += report["conflicts"]
    churn_seconds = time.monotonic() - started
    with t.app.app_context():
        left_by_children = len(outbox_rows(t))
    passes = drain(t, timeout=30)

    with t.app.app_context():
        wrong = mismatches(t, provider, subs)
        doubles = ledger_doubles(t)
        leftover = outbox_rows(t)
    reused = key_reuse(provider)
    write_summary("multiprocess", provider, {
        "database": "postgresql", "processes": len(children),
        "modes": [mode for _, mode, _ in plan], "organizations": len(orgs),
        "membership_operations": sum(ops.values()), "operations": dict(ops),
        "app_conflicts_rolled_back": conflicts, "outbox_rows_left_by_children": left_by_children,
        "final_drain_passes": passes, "applied_seat_writes": len(seat_writes(provider)),
        "final_mismatches": len(wrong), "ledger_double_entries": len(doubles),
        "idempotency_keys_reused_for_other_quantity": len(reused),
        "churn_seconds": round(churn_seconds, 1),
    })
    assert sum(ops.values()) > 100
    assert leftover == []
    assert wrong == {}
    assert doubles == []
    assert reused == {}
