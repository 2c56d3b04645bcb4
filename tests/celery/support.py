"""What the Celery tests share with their worker processes: one Celery app per test run.

Every test gets a tag of its own; the broker's keys (``global_keyprefix``), the queue, the
extension's Redis markers and the Flask app id all carry it, so runs and tests sharing one Redis
never see each other's messages or markers.
"""

from __future__ import annotations

from typing import Any

from celery import Celery


def celery_app(broker: str, tag: str) -> Celery:
    """The Celery app of one test: the test process publishes with it, workers consume."""
    app = Celery(f"fsb-{tag}", broker=broker, set_as_current=False)
    app.conf.update(
        task_default_queue=tag,
        broker_transport_options={"global_keyprefix": f"{tag}:"},
        broker_connection_retry_on_startup=True,
        broker_pool_limit=4,
        worker_hijack_root_logger=False,
        task_ignore_result=True,
        beat_schedule={},
    )
    return app


def app_config(tag: str, **overrides: Any) -> dict[str, Any]:
    """Seat-billing configuration for Celery dispatch under ``tag``."""
    return {
        "SEAT_BILLING_DISPATCH": "celery",
        "SEAT_BILLING_CELERY_APP_ID": tag,
        "SEAT_BILLING_CELERY_QUEUE": tag,
        "SEAT_BILLING_CELERY_KEY_PREFIX": tag,
        "SEAT_BILLING_SWEEP_SECONDS": 1.0,
        **overrides,
    }
