"""Keep a running task's Redis keys alive for as long as the task runs.

A sync may take up to ``MAX_PASSES x (retries + 1) x timeout`` seconds; a fixed TTL long enough
for that would make a killed worker's keys block the organization for minutes. Instead the keys
(the ``running`` marker the sweep respects, and on SQLite the organization's lock) get a short
TTL, and a daemon thread renews them every third of it while the task is alive. A worker that
dies stops renewing, and the keys expire soon after.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger("flask_seat_billing.tasks")


class Heartbeat:
    """``with Heartbeat(ttl) as beat: beat.add(renew)``: calls each ``renew()`` every ttl/3 s."""

    def __init__(self, ttl_seconds: float) -> None:
        self.interval = max(0.2, ttl_seconds / 3)
        self._renewals: list[Callable[[], object]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, renew: Callable[[], object]) -> None:
        with self._lock:
            self._renewals.append(renew)

    def remove(self, renew: Callable[[], object]) -> None:
        with self._lock:
            if renew in self._renewals:
                self._renewals.remove(renew)

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name="flask-seat-billing-heartbeat",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                renewals = list(self._renewals)
            for renew in renewals:
                try:
                    renew()
                except Exception as error:  # Redis away: the keys expire; the work goes on
                    log.warning("could not renew a running task's Redis key: %s",
                                type(error).__name__)
