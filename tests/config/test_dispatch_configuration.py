"""Choosing Celery dispatch: what init_app and use_celery refuse, and that no thread starts.

These need no broker: nothing here publishes a task (see tests/celery/ for the real thing).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from celery import Celery

from flask_seat_billing import ConfigurationError
from tests.apps import build_app, teardown_app

LOCAL = {"SEAT_BILLING_STRIPE_API_BASE": "http://127.0.0.1:9"}
NOWHERE = "redis://127.0.0.1:9/0"  # never connected to by these tests


def _app(tmp_path: Any, **config: Any) -> Any:
    return build_app(f"sqlite:///{tmp_path / 'd.db'}", config={**LOCAL, **config})


@pytest.mark.parametrize(("config", "message"), [
    ({"SEAT_BILLING_DISPATCH": "rabbit"}, "SEAT_BILLING_DISPATCH"),
    ({"SEAT_BILLING_WEBHOOK_PROCESSING": "later"}, "SEAT_BILLING_WEBHOOK_PROCESSING"),
    ({"SEAT_BILLING_WEBHOOK_PROCESSING": "queued"}, 'SEAT_BILLING_DISPATCH = "celery"'),
    ({"SEAT_BILLING_DISPATCH": "celery", "SEAT_BILLING_CELERY_QUEUE": ""},
     "SEAT_BILLING_CELERY_QUEUE"),
    ({"SEAT_BILLING_SWEEP_SECONDS": -1}, "SEAT_BILLING_SWEEP_SECONDS"),
    ({"SEAT_BILLING_SWEEP_SECONDS": 0}, "SEAT_BILLING_SWEEP_SECONDS must be a number of "
                                        "seconds > 0"),
])
def test_bad_dispatch_keys_are_named(tmp_path: Any, config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _app(tmp_path, **config)


def test_use_celery_needs_celery_dispatch(tmp_path: Any) -> None:
    t = _app(tmp_path)
    try:
        with pytest.raises(ConfigurationError, match='SEAT_BILLING_DISPATCH = "celery"'):
            t.billing.use_celery(Celery("x", broker=NOWHERE, set_as_current=False), t.app)
    finally:
        teardown_app(t)


def test_a_second_app_under_one_app_id_wins_with_a_warning(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    celery = Celery("x", broker=NOWHERE, set_as_current=False)
    config = {"SEAT_BILLING_DISPATCH": "celery", "SEAT_BILLING_CELERY_APP_ID": "same-id-test"}
    first = build_app(f"sqlite:///{tmp_path / 'a.db'}", config={**LOCAL, **config})
    second = build_app(f"sqlite:///{tmp_path / 'b.db'}", config={**LOCAL, **config})
    try:
        first.billing.use_celery(celery, first.app)
        with caplog.at_level(logging.WARNING, logger="flask_seat_billing.dispatch"):
            second.billing.use_celery(celery, second.app)
        assert "tasks now run in the latest one" in caplog.text
        assert "SEAT_BILLING_CELERY_APP_ID" in caplog.text
        sweep = celery.conf.beat_schedule["seat-billing-sweep:same-id-test"]
        assert sweep["task"] == "flask_seat_billing.sweep"
        assert sweep["args"] == ("same-id-test", "all")
    finally:
        teardown_app(first)
        teardown_app(second)


def test_use_celery_on_sqlite_without_any_redis_is_refused(tmp_path: Any) -> None:
    t = _app(tmp_path, SEAT_BILLING_DISPATCH="celery")
    try:
        with pytest.raises(ConfigurationError, match="SEAT_BILLING_CELERY_REDIS_URL"):
            t.billing.use_celery(Celery("x", broker="memory://", set_as_current=False), t.app)
    finally:
        teardown_app(t)


def test_celery_dispatch_starts_no_thread_and_a_commit_never_fails_for_it(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def workers() -> int:
        return sum(1 for th in threading.enumerate()
                   if th.name == "flask-seat-billing-worker" and th.is_alive())

    t = _app(tmp_path, SEAT_BILLING_DISPATCH="celery", SEAT_BILLING_SYNC_MODE="deferred")
    before = workers()
    try:
        with caplog.at_level(logging.ERROR), t.app.app_context():
            org = t.add_organization().id
            t.add_members(org, 2)  # use_celery was never called: logged, nothing published
            t.app.test_client().get("/")  # a first request starts the thread in thread mode
            assert t.billing.billable_seats(org) == 2
            assert [e.organization_key for e in t.billing.pending_syncs()] == [str(org)]
        assert "use_celery" in caplog.text
        assert workers() <= before
    finally:
        teardown_app(t)


@pytest.mark.parametrize("url", [
    "redis://:s3cret@127.0.0.1:6379/0",
    "redis://user:p@ss/w0rd@redis.internal:6379/0",
    "rediss://:a/b@c@redis.internal:6380",
    "redis+socket://:pw@/var/run/redis.sock",
])
def test_redact_cuts_any_password_out_of_a_url(url: str) -> None:
    from flask_seat_billing.dispatch.redaction import redact

    message = redact(f"Error 111 connecting to {url}. Connection refused.")
    assert "***@" in message
    for secret in ("s3cret", "p@ss", "w0rd", "a/b@c", ":pw"):
        assert secret not in message, message
