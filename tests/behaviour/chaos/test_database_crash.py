"""The database server killed right after an inline sync, before its last commit reached the disk.

A sync's write is recorded (the copy's quantity, the ledger row, the outbox row deleted) by a
commit that does not wait for the disk; the mark before the request left did wait. A server
crash in between loses the record and keeps the mark and the outbox row: the state a crash of
the app's process after the request leaves, which the next pass resolves. On a server of the
test's own (:mod:`tests.private_postgres`), crashed with SIGKILL while its WAL writer is held,
so the loss is certain rather than a matter of timing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.behaviour.chaos.invariants import seat_writes
from tests.behaviour.conftest import AppFactory, World
from tests.helpers import ledger_rows, outbox_rows
from tests.private_postgres import PrivatePostgres


@pytest.fixture
def crashable() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        yield server.start()
    finally:
        server.close()


def test_a_database_crash_after_a_sync_loses_its_record_and_the_next_pass_restores_it(
    crashable: PrivatePostgres, make_app: AppFactory, provider: World
) -> None:
    t = make_app(database_url=crashable.url)
    with t.app.app_context():
        org = t.add_organization().id
        t.add_members(org, 2)
        sub = provider.subscribe(t, org)
        assert outbox_rows(t) == []
    writes = len(seat_writes(provider))

    crashable.hold_wal()
    with t.app.app_context():
        t.add_members(org, 1)  # inline: written, and recorded without waiting for the disk
        assert [(r["from_seats"], r["to_seats"]) for r in ledger_rows(t)] == [(2, 3)]
        assert outbox_rows(t) == []
    assert provider.seats(sub) == 3

    crashable.crash()
    crashable.start()
    with t.app.app_context():
        t.db.engine.dispose()  # the pool's connections died with the server
        # The member and the mark were committed durably; the record was not.
        assert t.billing.billable_seats(org) == 3
        assert [r["organization_key"] for r in outbox_rows(t)] == [str(org)]
        assert ledger_rows(t) == []
        local = t.billing.subscription_for(org)
        assert local is not None and local.seats == 2

        results = t.billing.sync_pending()
        rows = ledger_rows(t)
        assert outbox_rows(t) == []
        local = t.billing.subscription_for(org)
        assert local is not None and local.seats == 3
    assert [r.action for r in results] == ["unchanged"]  # nothing is applied twice
    assert provider.seats(sub) == 3
    assert len(seat_writes(provider)) == writes + 1
    assert [(r["from_seats"], r["to_seats"], r["reason"]) for r in rows] == [(2, 3, "observed")]
