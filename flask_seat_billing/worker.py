"""The in-process background worker: deferred syncs after their debounce window, and retries.

Due times live in the outbox table, not in this thread's memory, so a crash loses nothing: the
next process's worker (or ``flask seats sync-pending``) finds the rows and acts on them. The
thread only decides when to look: at the earliest due row, when nudged after a commit, and at
least every ``SEAT_BILLING_POLL_SECONDS`` while rows remain. After a few empty polls it exits;
the next nudge starts it again. A decrease ``scheduled`` for the period's end is a row that
remains, so while one waits the thread keeps polling (every ``SEAT_BILLING_POLL_SECONDS``) until
it is due.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from flask import Flask

from . import outbox
from .tables import utcnow

if TYPE_CHECKING:
    from .sync import SyncEngine

log = logging.getLogger("flask_seat_billing.worker")
# Empty polls before the thread exits: rows committed a little after a nudge (by a transaction
# the nudging session only joined) are still picked up.
IDLE_ROUNDS = 3


class SyncWorker:
    """One daemon thread per app that drains due outbox rows."""

    def __init__(self, app: Flask, engine: SyncEngine, poll_seconds: float) -> None:
        self._app = app
        self._engine = engine
        self._poll = max(0.05, poll_seconds)
        self._wake = threading.Condition()
        self._wake_at: float | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def nudge(self, delay: float = 0.0) -> None:
        """Look at the outbox in ``delay`` seconds (or sooner if already due to)."""
        with self._wake:
            when = time.monotonic() + delay
            self._stopping = False
            if not self.running:
                self._wake_at = when
                self._thread = threading.Thread(
                    target=self._run, name="flask-seat-billing-worker", daemon=True
                )
                self._thread.start()
            elif self._wake_at is None or when < self._wake_at:
                # Only an earlier wake-up is news: a burst of commits inside one debounce
                # window must not wake the thread (and query the outbox) once per commit.
                self._wake_at = when
                self._wake.notify_all()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (tests, shutdown); rows stay in the outbox for the next run."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _seconds_until_due(self) -> float | None:
        with self._engine.engine().connect() as conn:
            due = outbox.next_due_at(conn, self._engine.tables)
        if due is None:
            return None
        return max(0.0, (due - utcnow()).total_seconds())

    def _run(self) -> None:
        idle_rounds = 0
        with self._app.app_context():
            while True:
                with self._wake:
                    if self._stopping:
                        return
                    hint = None if self._wake_at is None else self._wake_at - time.monotonic()
                try:
                    until_due = self._seconds_until_due()
                except Exception:
                    log.exception("seat billing worker could not read the outbox")
                    until_due = self._poll
                idle = until_due is None and (hint is None or hint <= 0)
                idle_rounds = idle_rounds + 1 if idle else 0
                if idle_rounds > IDLE_ROUNDS:
                    with self._wake:
                        if self._wake_at is None or self._wake_at <= time.monotonic():
                            self._thread = None
                            return  # nothing left for a while: exit, a nudge restarts us
                waits = [w for w in (until_due, hint, self._poll) if w is not None]
                wait = max(0.0, min(waits))
                if wait > 0:
                    with self._wake:
                        if self._stopping:
                            return
                        self._wake.wait(wait)
                        if self._stopping:
                            return
                with self._wake:
                    if self._wake_at is not None and self._wake_at <= time.monotonic():
                        self._wake_at = None
                try:
                    self._engine.drain()
                except Exception:
                    log.exception("seat billing worker failed to drain the outbox")
