"""``seat_billing.use_celery(celery)``: the tasks, and the app each of them runs in.

Three tasks, registered once per Celery app under fixed names; their first argument is the id
of the Flask app that published them (``SEAT_BILLING_CELERY_APP_ID``, default ``app.name``):

- ``flask_seat_billing.sync`` (app id, organization key): one organization through the sync
  engine (lock, read, idempotency, ledger, signals);
- ``flask_seat_billing.webhook`` (app id, queued event id): one recorded webhook event;
- ``flask_seat_billing.sweep`` (app id): publish every due outbox row and recorded event; the
  beat schedule entry ``seat-billing-sweep:<app id>`` runs it every
  ``SEAT_BILLING_SWEEP_SECONDS``.

Each task runs inside the app context of the app registered under its id in the worker process
(Flask's Celery pattern), so several apps served by one worker never share a database, a
provider or a signal receiver. Failures are never left to Celery's retry policy: the outbox (or
the queued event) records the next attempt time, and the task publishes its retry for exactly
then. A task that finds its row not due yet publishes itself for the due time; one that finds
no row does nothing (``noop``).
"""

from __future__ import annotations

import logging
import threading
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask

from .. import outbox
from ..errors import ConfigurationError
from ..state import SeatBillingState, get_state
from ..tables import utcnow
from ..webhooks import queued
from .celery_queue import SWEEP, SYNC, WEBHOOK, CeleryDispatcher, log, redact
from .markers import Markers

TASK_NAMES = {SYNC: "flask_seat_billing.sync", WEBHOOK: "flask_seat_billing.webhook",
              SWEEP: "flask_seat_billing.sweep"}
EARLY_SLACK_SECONDS = 0.05
BUSY_RETRY_SECONDS = 1.0
_APPS: weakref.WeakValueDictionary[str, Flask] = weakref.WeakValueDictionary()
_TASKS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()
task_log = logging.getLogger("flask_seat_billing.tasks")


def use_celery(celery_app: Any, app: Flask) -> None:
    """Register the tasks on ``celery_app`` and publish ``app``'s work there."""
    state = get_state(app)
    dispatcher = state.dispatcher
    if not isinstance(dispatcher, CeleryDispatcher):
        raise ConfigurationError(
            'use_celery needs SEAT_BILLING_DISPATCH = "celery" in the app\'s config before '
            "init_app; with the default (\"thread\") the app syncs on a thread of its own."
        )
    app_id = dispatcher.app_id
    with _GUARD:
        other = _APPS.get(app_id)
        if other is not None and other is not app:
            raise ConfigurationError(
                f"Another app is already registered with Celery as {app_id!r}: give each app "
                "its own SEAT_BILLING_CELERY_APP_ID, so that tasks run in the app that queued "
                "them."
            )
        _APPS[app_id] = app
        tasks = _TASKS.get(celery_app)
        if tasks is None:
            tasks = _TASKS[celery_app] = _register(celery_app)
    dispatcher.bind(celery_app, tasks, _markers(celery_app, state, app_id))
    entry: dict[str, Any] = {"task": TASK_NAMES[SWEEP], "schedule": state.settings.sweep_seconds,
                             "args": (app_id, "all")}
    if state.settings.celery_queue:
        entry["options"] = {"queue": state.settings.celery_queue}
    schedule = dict(celery_app.conf.beat_schedule or {})
    schedule[f"seat-billing-sweep:{app_id}"] = entry
    celery_app.conf.beat_schedule = schedule


def _markers(celery_app: Any, state: SeatBillingState, app_id: str) -> Markers | None:
    """Markers on ``SEAT_BILLING_CELERY_REDIS_URL``, else on the broker when it is Redis."""
    url = state.settings.celery_redis_url
    if url is None:
        broker = str(celery_app.conf.broker_url or "")
        url = broker if broker.startswith(("redis://", "rediss://", "unix://")) else None
    if url is None:
        log.warning("no Redis for seat billing's task markers (the broker is not Redis and "
                    "SEAT_BILLING_CELERY_REDIS_URL is not set): every commit publishes a task")
        return None
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
    grace = 2 * state.settings.sweep_seconds + 10  # two sweeps may pass before it expires
    return Markers(client, state.settings.celery_key_prefix, app_id, grace)


def sync_task(app_id: str, key: str) -> str:
    with _app_state(app_id) as state:
        return run_sync(state, key) if state is not None else "unknown_app"


def webhook_task(app_id: str, row_id: str) -> str:
    with _app_state(app_id) as state:
        return run_webhook(state, row_id) if state is not None else "unknown_app"


def sweep_task(app_id: str, _all: str = "all") -> str:
    with _app_state(app_id) as state:
        if state is None:
            return "unknown_app"
        synced, events = sweep(state)
        return f"{synced} syncs, {events} events"


def _register(celery_app: Any) -> dict[str, Any]:
    from celery.signals import worker_process_init

    worker_process_init.connect(_fresh_connections, weak=False)
    bodies = {SYNC: sync_task, WEBHOOK: webhook_task, SWEEP: sweep_task}
    return {kind: celery_app.task(name=TASK_NAMES[kind], ignore_result=True,
                                  acks_late=False)(body)
            for kind, body in bodies.items()}


def _fresh_connections(**_: Any) -> None:
    """A forked pool process must not reuse the parent's database connections."""
    for app in list(_APPS.values()):
        state = app.extensions.get("seat_billing")
        if state is not None:
            with app.app_context():
                state.sql_engine().dispose(close=False)


@contextmanager
def _app_state(app_id: str) -> Iterator[SeatBillingState | None]:
    app = _APPS.get(app_id)
    if app is None:
        task_log.error("no app is registered with seat billing's Celery tasks as %r in this "
                       "worker; call seat_billing.use_celery(celery) in the worker's app module "
                       "(the outbox keeps the work)", app_id)
        yield None
        return
    with app.app_context():
        yield get_state(app)


def _dispatcher(state: SeatBillingState) -> CeleryDispatcher:
    dispatcher = state.dispatcher
    assert isinstance(dispatcher, CeleryDispatcher)
    return dispatcher


def _running_ttl(state: SeatBillingState) -> float:
    return 4 * state.settings.provider_timeout + 60


def _lock_ttl(state: SeatBillingState) -> float:
    """Longer than a sync (a read and a write, each within the provider timeout)."""
    return 2 * state.settings.provider_timeout + 10


def run_sync(state: SeatBillingState, key: str) -> str:
    """The sync task's body; returns its outcome (``ran``, ``noop``, ``early``, ``busy``)."""
    dispatcher = _dispatcher(state)
    markers = dispatcher.markers
    if markers is not None:
        markers.start(SYNC, key, _running_ttl(state))
    outcome = "noop"
    try:
        outcome = _sync_once(state, dispatcher, key)
        return outcome
    finally:
        if markers is not None:
            try:
                markers.finish(SYNC, key, outcome)
            except Exception as error:
                task_log.warning("could not record the end of a sync task in Redis: %s",
                                 redact(str(error)))


def _sync_once(state: SeatBillingState, dispatcher: CeleryDispatcher, key: str) -> str:
    with state.sql_engine().connect() as conn:
        entry = outbox.read(conn, state.tables, key)
    if entry is None or entry.status != outbox.PENDING:
        return "noop"  # synced already (a duplicate task), or held/failed until released
    wait = (entry.next_attempt_at - utcnow()).total_seconds()
    if wait > EARLY_SLACK_SECONDS:
        dispatcher.schedule(SYNC, key, wait)
        return "early"
    with _cross_process_lock(state, dispatcher, key) as held:
        if not held:
            dispatcher.schedule(SYNC, key, BUSY_RETRY_SECONDS)
            return "busy"
        state.engine.sync(key)
    with state.sql_engine().connect() as conn:
        after = outbox.read(conn, state.tables, key)
    if after is not None and after.status == outbox.PENDING:
        # A failure waits for its backoff, a change that arrived meanwhile for its window.
        dispatcher.schedule(SYNC, key, (after.next_attempt_at - utcnow()).total_seconds())
    return "ran"


@contextmanager
def _cross_process_lock(
    state: SeatBillingState, dispatcher: CeleryDispatcher, key: str
) -> Iterator[bool]:
    """PostgreSQL: the engine's advisory lock suffices. Elsewhere a Redis lock stands in for
    it, since several worker processes may take tasks of one organization at once."""
    locks = dispatcher.locks
    if locks is None or state.sql_engine().dialect.name == "postgresql":
        yield True
        return
    token = uuid.uuid4().hex
    if not locks.acquire(key, token, _lock_ttl(state)):
        yield False
        return
    try:
        yield True
    finally:
        locks.release(key, token)


def run_webhook(state: SeatBillingState, row_id: str) -> str:
    """The webhook task's body: process one recorded event, or publish its retry."""
    dispatcher = _dispatcher(state)
    markers = dispatcher.markers
    if markers is not None:
        markers.start(WEBHOOK, row_id, _running_ttl(state))
    outcome = "noop"
    try:
        result, again = queued.process(state, int(row_id))
        outcome = result if result in ("noop", "early") else "ran"
        if again is not None:
            dispatcher.schedule(WEBHOOK, row_id, again)
        return result
    finally:
        if markers is not None:
            try:
                markers.finish(WEBHOOK, row_id, outcome)
            except Exception as error:
                task_log.warning("could not record the end of a webhook task in Redis: %s",
                                 redact(str(error)))


def sweep(state: SeatBillingState) -> tuple[int, int]:
    """Publish every due outbox row and recorded webhook event (beat, ``flask seats sweep``).

    A row whose task is already queued is left alone (its marker); one whose message was lost,
    whose worker died, or whose commit found the broker down is published again.
    """
    dispatcher = _dispatcher(state)
    now = utcnow()
    with state.sql_engine().connect() as conn:
        keys = outbox.due_keys(conn, state.tables, now)
        events = queued.due_ids(conn, state.tables, now)
    synced = sum(dispatcher.schedule(SYNC, key, 0.0) == "enqueued" for key in keys)
    published = sum(dispatcher.schedule(WEBHOOK, ident, 0.0) == "enqueued" for ident in events)
    return synced, published
