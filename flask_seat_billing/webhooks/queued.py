"""Queued webhook processing (``SEAT_BILLING_WEBHOOK_PROCESSING = "queued"``).

The request does only what must happen before the provider hears 2xx: the signature is verified
(by the route, as in inline mode) and the event is recorded durably in
``seat_billing_webhook_queue``; then it is answered. A Celery task does the rest through the
same dispatcher as inline processing (:func:`.dispatch.handle`): dedupe against the processed
events, re-read the subscription from the provider under the organization's lock, store it,
send the signals. So ordering guarantees do not change: whichever event is processed last, the
local copy ends equal to the provider's current state.

A delivery of an event already recorded here or already processed enqueues nothing (the unique
``(provider, event_id)`` decides). A task that fails leaves the row, with its attempts, last
error and next attempt time (the sync backoff's), and publishes its own retry for that time;
the periodic sweep publishes any row whose time has come, so a lost message loses nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from ..backoff import retry_at, retry_delay
from ..dispatch.redaction import redact
from ..providers.events import WebhookEvent
from ..state import SeatBillingState
from ..tables import Tables, utcnow
from . import dispatch

log = logging.getLogger("flask_seat_billing.webhooks")
EARLY_SLACK_SECONDS = 0.05


@dataclass(frozen=True)
class QueuedEvent:
    """One recorded, not yet processed event."""

    id: int
    event: WebhookEvent
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


def accept(state: SeatBillingState, event: WebhookEvent) -> str:
    """Record a verified event for a worker: ``queued``, or ``duplicate`` if it already was."""
    table = state.tables.webhook_queue
    processed = state.tables.webhook_events
    now = utcnow()
    try:
        with state.sql_engine().begin() as conn:  # one round of the pool for both statements
            if conn.execute(sa.select(processed.c.id).where(
                    processed.c.provider == event.provider,
                    processed.c.event_id == event.id)).first() is not None:
                return "duplicate"  # processed already (and its queue row deleted)
            result = conn.execute(table.insert().values(
                provider=event.provider, event_id=event.id, event_type=event.type,
                action=event.action, subscription_id=event.subscription_id,
                checkout_id=event.checkout_id, malformed=event.malformed, attempts=0,
                next_attempt_at=now, created_at=now,
            ))
            row_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    except sa.exc.IntegrityError:
        # A concurrent delivery of the same event recorded it first. Anything else (a column
        # the event cannot fill, a schema out of date) is a server error: the route answers
        # 500 and the provider retries.
        if _recorded(state, event):
            return "duplicate"
        raise
    if row_id is not None:
        state.dispatcher.publish_webhook(str(row_id))  # after the commit; failures are logged
    return "queued"


def _recorded(state: SeatBillingState, event: WebhookEvent) -> bool:
    table = state.tables.webhook_queue
    with state.sql_engine().connect() as conn:
        return conn.execute(sa.select(table.c.id).where(
            table.c.provider == event.provider,
            table.c.event_id == event.id)).first() is not None


def load(state: SeatBillingState, row_id: int) -> QueuedEvent | None:
    table = state.tables.webhook_queue
    with state.sql_engine().connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == row_id)).first()
    if row is None:
        return None
    m = row._mapping
    event = WebhookEvent(
        provider=m["provider"], id=m["event_id"], type=m["event_type"], action=m["action"],
        subscription_id=m["subscription_id"], checkout_id=m["checkout_id"],
        malformed=m["malformed"],
    )
    return QueuedEvent(int(m["id"]), event, int(m["attempts"]), m["next_attempt_at"],
                       m["last_error"])


def process(state: SeatBillingState, row_id: int) -> tuple[str, float | None]:
    """Process one recorded event; returns (outcome, seconds until it should run again).

    Outcomes: ``processed``/``duplicate``/``ignored`` (done: the row is deleted), ``noop`` (no
    row: done already), ``early`` (not due yet), ``retrying`` (failed; the row keeps it).
    """
    queued = load(state, row_id)
    if queued is None:
        return "noop", None
    wait = (queued.next_attempt_at - utcnow()).total_seconds()
    if wait > EARLY_SLACK_SECONDS:
        return "early", wait
    table = state.tables.webhook_queue
    try:
        outcome = dispatch.handle(state, queued.event)
    except Exception as error:
        attempts = queued.attempts + 1
        settings = state.settings
        delay = retry_delay(attempts, base=settings.retry_base_seconds,
                            cap=settings.retry_max_seconds)
        message = redact(f"{type(error).__name__}: {error}")[:2000]
        with state.sql_engine().begin() as conn:
            conn.execute(table.update().where(table.c.id == row_id).values(
                attempts=attempts, next_attempt_at=retry_at(utcnow(), delay),
                last_error=message))
        log.warning("%s event %s (%s) failed (attempt %d, retry in %.1fs): %s",
                    queued.event.provider, queued.event.id, queued.event.type, attempts, delay,
                    message)
        return "retrying", delay
    with state.sql_engine().begin() as conn:
        conn.execute(table.delete().where(table.c.id == row_id))
    return outcome, None


def due_ids(conn: sa.Connection, tables: Tables, now: datetime, limit: int = 500) -> list[str]:
    """Recorded events whose (next) attempt is due, oldest first: what the sweep publishes."""
    table = tables.webhook_queue
    rows = conn.execute(sa.select(table.c.id).where(table.c.next_attempt_at <= now)
                        .order_by(table.c.next_attempt_at).limit(limit))
    return [str(r[0]) for r in rows]


def waiting(conn: sa.Connection, tables: Tables) -> tuple[int, int]:
    """(events waiting, of which failed at least once), for ``flask seats status``."""
    table = tables.webhook_queue
    failing = sa.func.coalesce(sa.func.sum(sa.case((table.c.attempts > 0, 1), else_=0)), 0)
    row = conn.execute(sa.select(sa.func.count(), failing).select_from(table)).first()
    return (int(row[0]), int(row[1])) if row is not None else (0, 0)
