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
from ..locks import organization_lock
from ..state import SeatBillingState, get_state
from ..tables import utcnow
from ..webhooks import queued
from .celery_queue import SWEEP, SYNC, WEBHOOK, CeleryDispatcher, log
from .heartbeat import Heartbeat
from .markers import Markers
from .redaction import redact

TASK_NAMES = {SYNC: "flask_seat_billing.sync", WEBHOOK: "flask_seat_billing.webhook",
              SWEEP: "flask_seat_billing.sweep"}
EARLY_SLACK_SECONDS = 0.05
BUSY_RETRY_SECONDS = 1.0
# Strong references: a worker module may build its app inside a function and keep only the
# Celery app; the tasks must still find the Flask app when they run.
_APPS: dict[str, Flask] = {}
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
            # The last registration wins (an app factory called again, a test building a fresh
            # app): tasks run in the newest app. Two live apps meant to run side by side need
            # their own SEAT_BILLING_CELERY_APP_ID.
            log.warning("another app was registered with Celery as %r; tasks now run in the "
                        "latest one (give apps that run side by side their own "
                        "SEAT_BILLING_CELERY_APP_ID)", app_id)
        _APPS[app_id] = app
        tasks = _TASKS.get(celery_app)
        if tasks is None:
            tasks = _TASKS[celery_app] = _register(celery_app)
    markers = _markers(celery_app, state, app_id)
    with app.app_context():
        dialect = state.sql_engine().dialect.name
    if markers is None and dialect != "postgresql":
        raise ConfigurationError(
            f"Celery dispatch on {dialect} needs a Redis for the per-organization sync lock "
            "(only PostgreSQL's advisory locks work across worker processes): use a Redis "
            "broker or set SEAT_BILLING_CELERY_REDIS_URL."
        )
    dispatcher.bind(celery_app, tasks, markers)
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
        if broker.startswith("redis+socket://"):  # kombu's unix socket form; redis-py's
            broker = "unix://" + broker[len("redis+socket://"):]
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


def sweep_task(app_id: str, ident: str = "all") -> str:
    with _app_state(app_id) as state:
        if state is None:
            return "unknown_app"
        markers = _dispatcher(state).markers
        # Its marker goes as it starts, like any task's: a nudge after this runs is heard.
        _start(markers, SWEEP, ident, _running_ttl(state))
        outcome = "noop"
        try:
            synced, events = sweep(state)
            outcome = "ran"
            return f"{synced} syncs, {events} events"
        finally:
            _finish(markers, SWEEP, ident, outcome)


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
    """How long a running marker lasts unless the task's heartbeat renews it."""
    return 2 * state.settings.provider_timeout + 10


def _start(markers: Markers | None, kind: str, ident: str, ttl: float) -> None:
    """Best effort: a Redis that cannot be reached costs the bookkeeping, never the work."""
    if markers is None:
        return
    try:
        markers.start(kind, ident, ttl)
    except Exception as error:
        task_log.warning("could not record the start of a %s task in Redis: %s", kind,
                         redact(str(error)))


def _heartbeat(markers: Markers | None, kind: str, ident: str, ttl: float) -> Heartbeat:
    beat = Heartbeat(ttl)
    if markers is not None:
        beat.add(lambda: markers.renew(kind, ident, ttl))
    return beat


def _finish(markers: Markers | None, kind: str, ident: str, outcome: str) -> None:
    if markers is None:
        return
    try:
        markers.finish(kind, ident, outcome)
    except Exception as error:
        task_log.warning("could not record the end of a %s task in Redis: %s", kind,
                         redact(str(error)))


def _lock_ttl(state: SeatBillingState) -> float:
    """Longer than a sync (a read and a write, each within the provider timeout)."""
    return 2 * state.settings.provider_timeout + 10


def run_sync(state: SeatBillingState, key: str) -> str:
    """The sync task's body; returns its outcome (``ran``, ``noop``, ``early``, ``busy``)."""
    dispatcher = _dispatcher(state)
    markers = dispatcher.markers
    ttl = _running_ttl(state)
    _start(markers, SYNC, key, ttl)
    outcome = "noop"
    try:
        with _heartbeat(markers, SYNC, key, ttl) as beat:
            outcome = _sync_once(state, dispatcher, key, beat)
        return outcome
    finally:
        _finish(markers, SYNC, key, outcome)


def _sync_once(
    state: SeatBillingState, dispatcher: CeleryDispatcher, key: str, beat: Heartbeat
) -> str:
    entry = _due_entry(state, key)
    if entry is None:
        return "noop"  # synced already (a duplicate task), or held/failed until released
    wait = (entry.next_attempt_at - utcnow()).total_seconds()
    if wait > EARLY_SLACK_SECONDS:
        if entry.status == outbox.SCHEDULED:
            # A decrease waiting for the period's end, maybe weeks away: no ETA message waits
            # that long in the broker (visibility timeouts redeliver it); the sweep publishes
            # the row once it is due.
            return "noop"
        dispatcher.schedule(SYNC, key, wait)
        return "early"
    with _cross_process_lock(state, dispatcher, key, beat) as held:
        if not held:
            dispatcher.schedule(SYNC, key, BUSY_RETRY_SECONDS)
            return "busy"
        # Read again under the organization's lock: a duplicate task that waited for another
        # sync of the same row finds it done and costs no provider call.
        with organization_lock(state.sql_engine(), key) as conn:
            entry = outbox.read(conn, state.tables, key)
        if (entry is None or entry.status not in outbox.DUE_STATUSES
                or (entry.next_attempt_at - utcnow()).total_seconds() > EARLY_SLACK_SECONDS):
            return "noop"
        state.engine.sync(key)
    with state.sql_engine().connect() as conn:
        after = outbox.read(conn, state.tables, key)
    if after is not None and after.status == outbox.PENDING:
        # A failure waits for its backoff, a change that arrived meanwhile for its window. A
        # decrease scheduled for the period's end (weeks away) is left to the sweep, which
        # publishes it once due: no ETA message sits in the broker for a whole period.
        dispatcher.schedule(SYNC, key, (after.next_attempt_at - utcnow()).total_seconds())
    return "ran"


def _due_entry(state: SeatBillingState, key: str) -> outbox.OutboxEntry | None:
    with state.sql_engine().connect() as conn:
        entry = outbox.read(conn, state.tables, key)
    due = entry is not None and entry.status in outbox.DUE_STATUSES
    return entry if due else None


@contextmanager
def _cross_process_lock(
    state: SeatBillingState, dispatcher: CeleryDispatcher, key: str, beat: Heartbeat
) -> Iterator[bool]:
    """PostgreSQL: the engine's advisory lock suffices. Elsewhere a Redis lock stands in for
    it, since several worker processes may take tasks of one organization at once; the
    heartbeat extends it for as long as the sync runs (retries and passes included)."""
    locks = dispatcher.locks
    if locks is None or state.sql_engine().dialect.name == "postgresql":
        yield True
        return
    token = uuid.uuid4().hex
    ttl = _lock_ttl(state)
    try:
        acquired = locks.acquire(key, token, ttl)
    except Exception as error:
        # Redis is away: development databases only (use_celery insists on PostgreSQL or a
        # Redis). Sync without it rather than not at all; the sync reads the provider first.
        task_log.warning("could not take the Redis sync lock (%s); syncing without it",
                         redact(str(error)))
        yield True
        return
    if not acquired:
        yield False
        return
    def renew() -> None:
        locks.extend(key, token, ttl)
    beat.add(renew)
    try:
        yield True
    finally:
        beat.remove(renew)
        try:
            locks.release(key, token)
        except Exception as error:
            task_log.warning("could not release the Redis sync lock (it expires): %s",
                             redact(str(error)))


def run_webhook(state: SeatBillingState, row_id: str) -> str:
    """The webhook task's body: process one recorded event, or publish its retry."""
    dispatcher = _dispatcher(state)
    markers = dispatcher.markers
    ttl = _running_ttl(state)
    _start(markers, WEBHOOK, row_id, ttl)
    outcome = "noop"
    try:
        with _heartbeat(markers, WEBHOOK, row_id, ttl):
            result, again = queued.process(state, int(row_id))
        outcome = result if result in ("noop", "early") else "ran"
        if again is not None:
            dispatcher.schedule(WEBHOOK, row_id, again)
        return result
    finally:
        _finish(markers, WEBHOOK, row_id, outcome)


def sweep(state: SeatBillingState) -> tuple[int, int]:
    """Publish every due outbox row and recorded webhook event (beat, ``flask seats sweep``).

    A row whose task is already queued is left alone (its marker), and so is one whose task is
    running (a long sync is not duplicated by each sweep; a killed task's marker expires within
    ``2 x timeout + 10`` s). One whose message was lost, whose worker died, or whose commit found
    the broker down is published again. In ``manual`` sync mode outbox rows wait for
    ``sync_pending()`` / ``flask seats sync-pending``: only webhook events are published. The
    queue table is read only under queued webhook processing; each part fails on its own.
    """
    dispatcher = _dispatcher(state)
    running = _running_now(dispatcher.markers)
    synced = published = 0
    failures: list[BaseException] = []
    if state.settings.sync_mode != "manual":
        try:
            with state.sql_engine().connect() as conn:
                keys = outbox.due_keys(conn, state.tables, utcnow())
            synced = sum(dispatcher.schedule(SYNC, key, 0.0) == "enqueued"
                         for key in keys if f"{SYNC}:{key}" not in running)
        except Exception as error:
            task_log.error("the sweep could not publish due outbox rows: %s: %s",
                           type(error).__name__, redact(str(error)))
            failures.append(error)
    if state.settings.webhook_processing == "queued":
        try:
            with state.sql_engine().connect() as conn:
                events = queued.due_ids(conn, state.tables, utcnow())
            published = sum(dispatcher.schedule(WEBHOOK, ident, 0.0) == "enqueued"
                            for ident in events if f"{WEBHOOK}:{ident}" not in running)
        except Exception as error:
            task_log.error("the sweep could not publish recorded webhook events: %s: %s",
                           type(error).__name__, redact(str(error)))
            failures.append(error)
    if failures:
        raise failures[0]
    return synced, published


def _running_now(markers: Markers | None) -> set[str]:
    if markers is None:
        return set()
    try:
        return set(markers.running())
    except Exception:  # Redis away: publish everything (duplicates are counted no-ops)
        return set()
