"""The embedded dispatcher: inline syncs on the committing thread, the rest on ``SyncWorker``.

This is the behaviour the extension always had (``SEAT_BILLING_DISPATCH = "thread"``, the
default): no broker, one daemon thread per app process, started on demand.
"""

from __future__ import annotations

from flask import Flask

from ..settings import Settings
from ..sync import SyncEngine
from ..worker import SyncWorker


class ThreadDispatcher:
    """Per sync mode: inline drains now, deferred nudges the worker after the debounce."""

    name = "thread"

    def __init__(self, app: Flask, engine: SyncEngine, settings: Settings) -> None:
        self.app = app
        self.engine = engine
        self.settings = settings
        self.worker = SyncWorker(app, engine, settings.poll_seconds)

    @property
    def running(self) -> bool:
        return self.worker.running

    def after_commit(self, keys: set[str]) -> None:
        mode = self.settings.sync_mode
        if mode == "manual":
            return
        if mode == "deferred":
            self.worker.nudge(self.settings.debounce_seconds)
            return
        # A fresh app context gives receivers, policies and custom counting rules a fresh
        # ``db.session``: the one that just committed may not emit SQL inside its after_commit.
        with self.app.app_context():
            results = self.engine.drain(keys)
        if any(r.action == "retrying" for r in results):
            self.worker.nudge()  # retries happen in the background while the app runs

    def publish_webhook(self, row_id: str) -> None:
        return None  # queued webhook processing needs Celery dispatch (settings refuse it)

    def retry(self, key: str, delay: float) -> None:
        if self.settings.sync_mode != "manual":
            self.worker.nudge()  # the worker's poll finds the row when its time comes

    def nudge(self, delay: float = 0.0) -> None:
        self.worker.nudge(delay)

    def stop(self, timeout: float = 5.0) -> None:
        self.worker.stop(timeout)
