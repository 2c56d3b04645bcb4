"""Stop sending to a provider that is down: a circuit breaker per process.

Each organization's outbox row backs off on its own (:mod:`.backoff`), but during an outage
every organization that changes still sends its own first attempt, and every row that comes due
sends another, each waiting for its failure: requests the provider cannot answer and request
latency for the app's users. After ``threshold`` transient failures in a row (any organization:
unreachable, timed out, 5xx, 429), the process sends nothing for a backoff window that grows
with every further failure; passes meanwhile leave their rows due at the window's end
(``SyncEngine``). The first pass after the window is the probe: a success closes the circuit,
a failure opens it again for longer. A single failure between successes (one bad answer) never
opens it. Nothing is lost: the rows stay in the outbox and are synced once the provider
answers, as after any failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .backoff import retry_delay


class ProviderCircuit:
    """Counts consecutive transient provider failures; ``wait()`` > 0 while sending is off."""

    def __init__(
        self, threshold: int, *, base: float, cap: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold  # 0: never opens
        self.base = base
        self.cap = cap
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._open_until = 0.0

    @property
    def failures(self) -> int:
        """Transient failures since the last success."""
        return self._failures

    def wait(self) -> float:
        """Seconds until requests may be sent again (0: send now)."""
        if self.threshold <= 0:
            return 0.0
        with self._lock:
            return max(0.0, self._open_until - self._clock())

    def failed(self, retry_after: float | None = None) -> None:
        """A request failed transiently; opens (or reopens, longer) at the threshold."""
        with self._lock:
            self._failures += 1
            if self.threshold > 0 and self._failures >= self.threshold:
                delay = retry_delay(self._failures - self.threshold + 1, base=self.base,
                                    cap=self.cap, retry_after=retry_after)
                self._open_until = self._clock() + delay

    def succeeded(self) -> None:
        """The provider answered: close."""
        if self._failures:
            with self._lock:
                self._failures = 0
                self._open_until = 0.0
