"""Celery dispatch against each provider's stand-in: bursts over several organizations, synced
by two real ``celery worker`` processes through Redis, end at the billable count, with fewer
provider writes than commits (one per organization per window)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apps import AppUnderTest
from tests.behaviour.conftest import World
from tests.celery.conftest import Cluster, forget, redis_url, tag  # noqa: F401 (fixtures)
from tests.celery.support import app_config, celery_app
from tests.helpers import outbox_rows, wait_for


@pytest.fixture
def cluster(
    provider: World, redis_url: str, tag: str, database_url: str, tmp_path: Path  # noqa: F811
) -> Iterator[Cluster]:
    c = Cluster(redis_url, tag, database_url, "http://127.0.0.1:9", tmp_path,
                products=repr(provider.products))
    try:
        yield c
    finally:
        c.stop()
        forget(redis_url, tag)


def _app(provider: World, cluster: Cluster) -> AppUnderTest:
    config = app_config(cluster.tag, SEAT_BILLING_SYNC_MODE="deferred",
                        SEAT_BILLING_SYNC_DEBOUNCE_SECONDS=0.3)
    t = provider.make_app(config)
    cluster.config = {**provider.stand_in.app_config(provider.webhook_secret), **config}
    cluster.celery = celery_app(cluster.broker, cluster.tag)
    t.billing.use_celery(cluster.celery, t.app)
    return t


def _settled(t: AppUnderTest, provider: World, subs: dict[Any, str]) -> bool:
    with t.app.app_context():
        return not outbox_rows(t) and all(
            provider.seats(sub) == t.billing.billable_seats(org) for org, sub in subs.items())


def test_bursts_converge_on_two_celery_workers(provider: World, cluster: Cluster) -> None:
    rng = random.Random(1515)
    t = _app(provider, cluster)
    with t.app.app_context():
        orgs = [t.add_organization(f"org{i}").id for i in range(5)]
        subs = {}
        for org in orgs:
            t.add_members(org, 1)
            subs[org] = provider.subscribe(t, org)
    cluster.start_worker()
    cluster.start_worker()
    assert wait_for(lambda: _settled(t, provider, subs), timeout=60)
    writes_before = len(provider.seat_writes())

    commits = 0
    for _ in range(3):
        with t.app.app_context():
            for org in orgs:
                for _ in range(rng.randint(1, 3)):
                    t.add_members(org, 1)
                    commits += 1
        wait_for(lambda: False, timeout=0.5)
    assert wait_for(lambda: _settled(t, provider, subs), timeout=90)
    writes = len(provider.seat_writes()) - writes_before
    assert writes < commits  # bursts were coalesced, not one write per change
    with t.app.app_context():
        for org, sub in subs.items():
            assert provider.seats(sub) == t.billing.billable_seats(org)
    assert cluster.tasks_run(0) + cluster.tasks_run(1) > 0
