"""What ``flask seats status`` adds under Celery dispatch: queued and running work.

Read from Redis (the markers of :mod:`..dispatch.markers`) and the recorded webhook events; a
Redis that cannot be reached is reported as such rather than failing the whole status.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..dispatch.celery_queue import CeleryDispatcher
from ..dispatch.redaction import redact
from ..state import SeatBillingState
from ..webhooks import queued


@dataclass
class QueueStatus:
    """Celery dispatch as seen now: tasks queued (``kind:id`` -> seconds until they run),
    tasks running (-> seconds since they started), waiting webhook events, counters."""

    app_id: str
    queue: str | None
    scheduled: dict[str, float] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    webhooks_waiting: int = 0
    webhooks_failing: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def lines(self) -> list[str]:
        out = [f"dispatch: celery (app id {self.app_id}, queue {self.queue or 'default'})"]
        if self.error:
            out.append(f"redis unreachable: {self.error}")
        queued_now = sorted(self.scheduled.items())
        out.append(f"queued tasks: {len(queued_now)}" + "".join(
            f"\n  {name} in {max(0.0, wait):.1f}s" for name, wait in queued_now))
        out.append(f"running tasks: {len(self.running)}" + "".join(
            f"\n  {name} for {age:.1f}s" for name, age in sorted(self.running.items())))
        out.append(f"webhook events waiting: {self.webhooks_waiting} "
                   f"({self.webhooks_failing} failing)")
        if self.counters:
            c = self.counters
            out.append(f"tasks published {c.get('enqueued', 0)}, coalesced "
                       f"{c.get('coalesced', 0)}, ran {c.get('ran', 0)}, no-op "
                       f"{c.get('noop', 0)}, early {c.get('early', 0)}, publish failures "
                       f"{c.get('enqueue_failed', 0)}")
        return out


def queue_status(state: SeatBillingState) -> QueueStatus | None:
    """None under thread dispatch (the work is in each process's own thread)."""
    dispatcher = state.dispatcher
    if not isinstance(dispatcher, CeleryDispatcher):
        return None
    status = QueueStatus(dispatcher.app_id, state.settings.celery_queue)
    if state.settings.webhook_processing == "queued":  # else the table may not exist
        with state.sql_engine().connect() as conn:
            status.webhooks_waiting, status.webhooks_failing = queued.waiting(conn, state.tables)
    markers = dispatcher.markers
    if markers is None:
        status.error = "no Redis configured for task markers"
        return status
    now = time.time()
    try:
        status.scheduled = {k: at - now for k, at in markers.scheduled().items()}
        status.running = {k: now - at for k, at in markers.running().items()}
        status.counters = markers.counters()
    except Exception as error:
        status.error = f"{type(error).__name__}: {redact(str(error))}"
    return status
