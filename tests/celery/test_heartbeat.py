"""A task's Redis keys outlive their TTL while the task runs, and expire soon after it stops.

The SQLite stand-in for PostgreSQL's advisory lock is a Redis key with a short TTL; a sync may
take far longer (passes x retries x timeout). The heartbeat renews it (and the task's
``running`` marker) for as long as the task is alive.
"""

from __future__ import annotations

import time

import redis

from flask_seat_billing.dispatch.heartbeat import Heartbeat
from flask_seat_billing.dispatch.markers import Markers, OrganizationLocks
from tests.helpers import wait_for


def test_the_heartbeat_keeps_the_lock_and_running_marker_past_their_ttl(
    redis_url: str, tag: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    markers = Markers(client, tag, "app", grace_seconds=5)
    locks = OrganizationLocks(markers)
    ttl = 1.0
    try:
        assert locks.acquire("org1", "mine", ttl)
        markers.start("sync", "org1", ttl)
        with Heartbeat(ttl) as beat:
            beat.add(lambda: locks.extend("org1", "mine", ttl))
            beat.add(lambda: markers.renew("sync", "org1", ttl))
            time.sleep(3 * ttl)  # three TTLs: without renewal both keys would be gone
            assert not locks.acquire("org1", "theirs", ttl)  # still held
            assert "sync:org1" in markers.running()
        # The holder died without releasing: both expire within a TTL of the last renewal.
        assert wait_for(lambda: locks.acquire("org1", "theirs", ttl), timeout=3 * ttl)
        assert wait_for(lambda: "sync:org1" not in markers.running(), timeout=3 * ttl)
        assert not locks.extend("org1", "mine", ttl)  # a lost lock is not taken back
    finally:
        keys = list(client.scan_iter(match=f"{tag}*"))
        if keys:
            client.delete(*keys)
