"""``flask seats status`` under Celery dispatch: the work queued, and ``flask seats sweep``."""

from __future__ import annotations

import re
from typing import Any

from tests.celery.conftest import Cluster
from tests.conftest import AppFactory


def test_status_lists_queued_syncs_and_waiting_webhooks_and_sweep_publishes_due_rows(
    make_celery_app: AppFactory, cluster: Cluster, stripe: Any
) -> None:
    t = make_celery_app({"SEAT_BILLING_SYNC_MODE": "deferred",
                         "SEAT_BILLING_SYNC_DEBOUNCE_SECONDS": 30})
    with t.app.app_context():
        first = t.add_organization("A").id
        second = t.add_organization("B").id
        t.add_members(first, 2)
        t.add_members(first, 1)
        t.add_members(second, 1)
    cli = t.app.test_cli_runner()
    out = cli.invoke(args=["seats", "status"]).output
    assert f"dispatch: celery (app id {cluster.tag}, queue {cluster.tag})" in out
    assert "queued tasks: 2\n" in out
    for org in (first, second):  # due one debounce window (30 s) after the first change
        assert re.search(rf"^  sync:{org} in (29|30)\.\ds$", out, re.M), out
    assert "running tasks: 0" in out
    assert "webhook events waiting: 0 (0 failing)" in out
    assert "tasks published 2, coalesced 1," in out

    swept = cli.invoke(args=["seats", "sweep"])
    assert swept.exit_code == 0 and swept.output == "published 0 syncs, 0 webhook events\n"
