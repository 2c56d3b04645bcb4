"""The Celery dispatcher: publish one task per organization after the commit, never before.

It runs in the web process, inside the session's ``after_commit``: the membership change and
its outbox row are committed by then. Publishing is best effort by design. When Redis or the
broker cannot be reached the error is logged (its class and a message with any credentials cut
out), the commit stands, and the outbox row waits for the periodic sweep
(:func:`.celery_tasks.sweep`), which publishes every due row again.

The sync mode still decides *when*: ``inline`` publishes a task due now, ``deferred`` one due
after the debounce window (Celery's ``countdown``), ``manual`` publishes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Flask

from ..settings import Settings
from .markers import Markers, OrganizationLocks
from .redaction import redact

log = logging.getLogger("flask_seat_billing.dispatch")
SYNC = "sync"
WEBHOOK = "webhook"
SWEEP = "sweep"
# A task this process published runs at its ETA, not before (give or take the clocks of two
# hosts): until then a commit due no earlier is seen by it without asking Redis.
LOCAL_MARGIN_SECONDS = 0.25
LOCAL_MEMO_LIMIT = 10_000


class CeleryDispatcher:
    """Publishes tasks to the Celery app given to ``use_celery``; runs nothing in this process."""

    name = "celery"

    def __init__(self, app: Flask, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.app_id = settings.celery_app_id or app.name
        self.celery: Any = None
        self.tasks: dict[str, Any] = {}
        self.markers: Markers | None = None
        self.locks: OrganizationLocks | None = None
        self._warned_unbound = False
        self._memo_lock = threading.Lock()
        self._published: dict[tuple[str, str], float] = {}
        self._coalesced_here = 0
        self.claim_failures = 0  # claims that found the markers' Redis unreachable

    def bind(self, celery_app: Any, tasks: dict[str, Any], markers: Markers | None) -> None:
        self.celery = celery_app
        self.tasks = tasks
        self.markers = markers
        self.locks = OrganizationLocks(markers) if markers is not None else None

    @property
    def running(self) -> bool:
        return False  # the work runs in Celery workers

    def after_commit(self, keys: set[str]) -> None:
        mode = self.settings.sync_mode
        if mode == "manual":
            return
        delay = self.settings.debounce_seconds if mode == "deferred" else 0.0
        for key in sorted(keys):
            self.schedule(SYNC, key, delay)

    def publish_webhook(self, row_id: str) -> None:
        """A queued webhook event was recorded (committed): publish its task."""
        self.schedule(WEBHOOK, row_id, 0.0)

    def retry(self, key: str, delay: float) -> None:
        """An explicit sync left ``key``'s row retrying: publish its task for that time."""
        if self.settings.sync_mode != "manual":
            self.schedule(SYNC, key, delay)

    def nudge(self, delay: float = 0.0) -> None:
        """Ask for a sweep: used where no organization is named (a retry, a joined session)."""
        if self.settings.sync_mode != "manual":
            self.schedule(SWEEP, "all", delay)

    def stop(self, timeout: float = 5.0) -> None:
        return None

    def schedule(self, kind: str, ident: str, delay: float) -> str:
        """Publish ``kind``'s task for ``ident`` in ``delay`` seconds, unless one is queued that
        runs no later. Returns ``enqueued``, ``coalesced``, ``failed`` or ``unbound``."""
        task = self.tasks.get(kind)
        if task is None:
            if not self._warned_unbound:
                self._warned_unbound = True
                log.error("SEAT_BILLING_DISPATCH is 'celery' but seat_billing.use_celery(celery) "
                          "was not called for app %r: nothing is published; the outbox keeps "
                          "the work", self.app_id)
            return "unbound"
        delay = max(0.0, delay)
        markers = self.markers
        now = time.time()
        due = now + delay
        with self._memo_lock:
            # A burst of commits inside one window costs no round trip at all: this process
            # published the task that will sync them, and it has not started yet.
            runs_at = self._published.get((kind, ident))
            if runs_at is not None and now < runs_at - LOCAL_MARGIN_SECONDS and runs_at <= due:
                self._coalesced_here += 1
                return "coalesced"
            coalesced_here, self._coalesced_here = self._coalesced_here, 0
        try:
            if markers is not None and not markers.claim(kind, ident, delay, coalesced_here):
                return "coalesced"
        except Exception as error:
            # The markers' Redis is away (it may not be the broker): publish anyway. A
            # duplicate task is a counted no-op; a task not published waits for the sweep.
            with self._memo_lock:
                self.claim_failures += 1
            log.warning("seat billing could not reach the markers' Redis for %s %s (%s: %s); "
                        "publishing without deduplication", kind, ident, type(error).__name__,
                        redact(str(error)))
            markers = None
        options: dict[str, Any] = {"retry": False}
        if delay > 0:
            options["countdown"] = delay
        if self.settings.celery_queue:
            options["queue"] = self.settings.celery_queue
        try:
            task.apply_async(args=(self.app_id, ident), **options)
        except Exception as error:
            log.error("seat billing could not publish %s %s (%s: %s); the outbox keeps it for "
                      "the sweep", kind, ident, type(error).__name__, redact(str(error)))
            if markers is not None:
                try:
                    markers.release(kind, ident)
                    markers.count("enqueue_failed")
                except Exception:  # Redis went too: the marker expires by itself
                    pass
            return "failed"
        if delay > LOCAL_MARGIN_SECONDS:
            self._remember(kind, ident, due, now)
        return "enqueued"

    def _remember(self, kind: str, ident: str, due: float, now: float) -> None:
        with self._memo_lock:
            if len(self._published) >= LOCAL_MEMO_LIMIT:
                self._published = {k: v for k, v in self._published.items() if v > now}
            self._published[(kind, ident)] = due
