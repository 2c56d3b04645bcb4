"""Redis markers: one queued task per organization (or webhook event) per window, and counters.

A commit that changed an organization claims ``<prefix>:<app>:due:<kind>:<id>`` before it
publishes a task. The marker holds the time the queued task will run; a later commit whose
work is due no earlier than that finds the marker and publishes nothing (``coalesced``): a burst
of changes inside one debounce window yields one task. Work due *earlier* than the queued task
(a member change while a retry waits out its backoff) publishes another task; the later one
then finds nothing to do (a counted no-op). A task deletes its marker when it starts, so a
change committed while it runs queues a task of its own.

The marker expires a grace period after its due time. A message the broker lost, or a worker
killed before it started the task, therefore blocks nothing for long: the periodic sweep finds
the due row once the marker is gone. Everything here is one round trip.
"""

from __future__ import annotations

import time
from typing import Any

# KEYS: marker, counters. ARGV: due (epoch ms), ttl (ms), kind, commits the caller coalesced by
# itself since its last claim (see ``CeleryDispatcher``). Counted in total and per kind.
_CLAIM = """
if tonumber(ARGV[4]) > 0 then
  redis.call('hincrby', KEYS[2], 'coalesced', ARGV[4])
  redis.call('hincrby', KEYS[2], ARGV[3] .. ':coalesced', ARGV[4])
end
local current = redis.call('get', KEYS[1])
if current and tonumber(current) <= tonumber(ARGV[1]) then
  redis.call('hincrby', KEYS[2], 'coalesced', 1)
  redis.call('hincrby', KEYS[2], ARGV[3] .. ':coalesced', 1)
  return 0
end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('hincrby', KEYS[2], 'enqueued', 1)
redis.call('hincrby', KEYS[2], ARGV[3] .. ':enqueued', 1)
return 1
"""

COUNTERS = ("enqueued", "coalesced", "ran", "noop", "early", "busy", "enqueue_failed")


class Markers:
    """The Redis side of one app's Celery dispatch; ``client`` is a ``redis.Redis``."""

    def __init__(self, client: Any, prefix: str, app_id: str, grace_seconds: float) -> None:
        self.client = client
        self.base = f"{prefix}:{app_id}"
        self.grace_ms = int(grace_seconds * 1000)
        self._claim = client.register_script(_CLAIM)

    def _marker(self, kind: str, ident: str) -> str:
        return f"{self.base}:due:{kind}:{ident}"

    def _running(self, kind: str, ident: str) -> str:
        return f"{self.base}:running:{kind}:{ident}"

    @property
    def _counters(self) -> str:
        return f"{self.base}:counters"

    def claim(self, kind: str, ident: str, delay: float, coalesced_here: int = 0) -> bool:
        """True when the caller should publish a task running in ``delay`` seconds.

        ``coalesced_here``: commits the caller coalesced without asking, added to the counters.
        """
        due_ms = int((time.time() + delay) * 1000)
        ttl = int(delay * 1000) + self.grace_ms
        return bool(self._claim(keys=[self._marker(kind, ident), self._counters],
                                args=[due_ms, ttl, kind, coalesced_here]))

    def release(self, kind: str, ident: str) -> None:
        """Forget a claim whose publish failed, so the next commit or the sweep tries again."""
        self.client.delete(self._marker(kind, ident))

    def start(self, kind: str, ident: str, ttl_seconds: float) -> None:
        """A task starts: its marker goes (later changes queue anew); it shows as running."""
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(self._marker(kind, ident))
        pipe.set(self._running(kind, ident), str(time.time()), ex=max(1, int(ttl_seconds)))
        pipe.execute()

    def renew(self, kind: str, ident: str, ttl_seconds: float) -> None:
        """The task is still running: keep its ``running`` marker (if it still exists)."""
        self.client.pexpire(self._running(kind, ident), max(1000, int(ttl_seconds * 1000)))

    def finish(self, kind: str, ident: str, outcome: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(self._running(kind, ident))
        pipe.hincrby(self._counters, outcome, 1)
        pipe.execute()

    def count(self, outcome: str) -> None:
        self.client.hincrby(self._counters, outcome, 1)

    def counters(self) -> dict[str, int]:
        raw = self.client.hgetall(self._counters)
        found = {_text(k): int(v) for k, v in raw.items()}
        return {name: found.get(name, 0) for name in COUNTERS} | found

    def scheduled(self) -> dict[str, float]:
        """``kind:id`` -> when its queued task runs (epoch seconds)."""
        return self._scan("due", lambda value: int(value) / 1000)

    def running(self) -> dict[str, float]:
        """``kind:id`` -> when its task started (epoch seconds); killed tasks expire."""
        return self._scan("running", float)

    def _scan(self, part: str, parse: Any) -> dict[str, float]:
        prefix = f"{self.base}:{part}:"
        keys = list(self.client.scan_iter(match=prefix + "*", count=500))
        if not keys:
            return {}
        values = self.client.mget(keys)
        return {_text(k)[len(prefix):]: parse(_text(v))
                for k, v in zip(keys, values, strict=True) if v is not None}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


class OrganizationLocks:
    """A Redis lock per organization, for databases without a cross-process lock (SQLite).

    On PostgreSQL the sync engine's advisory lock already serialises syncs across processes and
    this is not used. The lock expires after ``ttl`` seconds unless its holder extends it (a
    heartbeat does while the sync runs), so a worker killed while holding it delays the
    organization's next sync by at most that long.
    """

    def __init__(self, markers: Markers) -> None:
        self.client = markers.client
        self.base = markers.base
        self._unlock = markers.client.register_script(_UNLOCK)
        self._extend = markers.client.register_script(_EXTEND)

    def acquire(self, key: str, token: str, ttl_seconds: float) -> bool:
        return bool(self.client.set(f"{self.base}:lock:{key}", token, nx=True,
                                    ex=max(1, int(ttl_seconds))))

    def extend(self, key: str, token: str, ttl_seconds: float) -> bool:
        """Keep holding the lock for ``ttl`` more seconds; False if it was lost meanwhile."""
        return bool(self._extend(keys=[f"{self.base}:lock:{key}"],
                                 args=[token, max(1000, int(ttl_seconds * 1000))]))

    def release(self, key: str, token: str) -> None:
        self._unlock(keys=[f"{self.base}:lock:{key}"], args=[token])
