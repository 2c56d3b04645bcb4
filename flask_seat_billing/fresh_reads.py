"""When each subscription was last read from the provider and stored, in this process.

A webhook event only says "this subscription changed"; the handler re-reads it (the payload is
never trusted). Any read that *started* after the event arrived has seen that change, or a later
one. So events for one subscription that arrive together (one change makes several: the update,
invoice events, a retried delivery) share one read: the first to take the organization's lock
reads and stores, and the others, finding a stored read that started after they arrived, only
record themselves. The read that counts still happens after the latest event's arrival, so
ordering stays as safe as a read per event.

Only reads stored and committed are noted, and only in this process; a read in another process
is simply not known here (the event then reads again, as before). Times are monotonic.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

_KEEP = 10_000  # subscriptions remembered per process; the oldest are forgotten first


class FreshReads:
    """``{(scope, subscription id): start time of its last stored read}``, bounded."""

    def __init__(self, keep: int = _KEEP) -> None:
        self._lock = threading.Lock()
        self._started: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._keep = keep

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def stored(self, scope: str, subscription_id: str, started: float) -> None:
        """A read that started at ``started`` is committed to the database of ``scope``."""
        key = (scope, subscription_id)
        with self._lock:
            if started > self._started.get(key, float("-inf")):
                self._started[key] = started
                self._started.move_to_end(key)
                while len(self._started) > self._keep:
                    self._started.popitem(last=False)

    def read_since(self, scope: str, subscription_id: str, arrived: float) -> bool:
        """Whether a read stored in ``scope`` started after ``arrived`` (strictly)."""
        with self._lock:
            return self._started.get((scope, subscription_id), float("-inf")) > arrived


READS = FreshReads()
