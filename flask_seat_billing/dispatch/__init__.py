"""Where background work runs: a thread in each app process, or Celery workers.

The state holds one :class:`Dispatcher`; the capture code and the state call
``after_commit(keys)`` and ``nudge(delay)`` without knowing which one it is. The outbox stays the
single source of truth either way: a dispatcher only decides *when* somebody looks at a row.

- :mod:`.thread`: today's embedded default (``SEAT_BILLING_DISPATCH = "thread"``).
- :mod:`.celery_queue`: tasks on a Celery broker (``"celery"``), deduplicated per organization
  and window by :mod:`.markers`; :mod:`.celery_tasks` registers the tasks (``use_celery``).
"""

from __future__ import annotations

from typing import Protocol


class Dispatcher(Protocol):
    """Hands committed work to whoever runs it."""

    name: str

    def after_commit(self, keys: set[str]) -> None:
        """A transaction that changed these organizations committed: act per sync mode."""

    def publish_webhook(self, row_id: str) -> None:
        """A queued webhook event was recorded: have it processed."""

    def retry(self, key: str, delay: float) -> None:
        """An explicit sync left ``key``'s row retrying in ``delay`` seconds (not in manual
        mode): make sure somebody comes back for it."""

    def nudge(self, delay: float = 0.0) -> None:
        """Make sure somebody looks at the outbox within ``delay`` seconds."""

    def stop(self, timeout: float = 5.0) -> None:
        """Stop whatever this process runs (the outbox keeps what is pending)."""

    @property
    def running(self) -> bool:
        """True while this process runs background work of its own."""
