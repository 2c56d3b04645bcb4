"""Stop sending to a provider that is down: a circuit breaker per process.

Each organization's outbox row backs off on its own (:mod:`.backoff`), but during an outage
every organization that changes still sends its own first attempt, and every row that comes due
sends another, each waiting for its failure: requests the provider cannot answer, and latency
for the app's users. After ``threshold`` failures in a row that say the provider is down
(unreachable or timed out, a 5xx, a 429; any organization), the process's syncs send nothing
for a backoff window that grows with every further failure (capped at a minute, so a recovery
is noticed soon, unless a 429's ``Retry-After`` asks for longer).

A pass that would send raises :class:`CircuitOpen` instead, which the sync engine records like
any transient failure: the row stays pending, its attempt counted, due when the window ends
(spread over half a window more, so the rows do not return in one wave), and
``seat_sync_failed`` says "provider unavailable". Passes that need no request (nothing to
change, a hold, a decrease scheduled from the local copy) are not held back.

The first pass after the window is the probe: an answer other than a 5xx or 429 closes the
circuit, another failure opens it again for longer. An answer that concerns one request (a 4xx
other than 429, a 409 conflict, Stripe's ``lock_timeout`` 429, a replay) counts as the provider
being up, so one organization's trouble never opens it; an error raised before any answer (an
id refused before sending) says nothing either way.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from .backoff import retry_delay
from .errors import ProviderError, ProviderUnavailable, TransientProviderError

WINDOW_CAP_SECONDS = 60.0
"""The longest window: a provider back after a long outage is probed at least once a minute."""


class CircuitOpen(TransientProviderError):
    """Not sent: the provider failed too many times in a row (``retry_after``: when to try)."""


def means_down(error: ProviderError) -> bool:
    """Whether a failed request says the provider is down, not that this request was wrong."""
    if isinstance(error, ProviderUnavailable):
        return True
    status = error.status
    if error.code == "lock_timeout":  # Stripe's 429 for contention on one object
        return False
    return isinstance(error, TransientProviderError) and status is not None and (
        status >= 500 or status == 429)


class ProviderCircuit:
    """Counts failures in a row that mean the provider is down; :meth:`check` refuses to send
    while the circuit is open."""

    def __init__(
        self, threshold: int, *, base: float, cap: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold  # 0: never opens
        self.base = base
        self.cap = min(cap, WINDOW_CAP_SECONDS)
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._open_until = 0.0

    def wait(self) -> float:
        """Seconds until requests may be sent again (0: send now)."""
        if self.threshold <= 0:
            return 0.0
        with self._lock:
            return max(0.0, self._open_until - self._clock())

    def check(self) -> None:
        """Raise :class:`CircuitOpen` while the circuit is open; return when a request may go."""
        wait = self.wait()
        if wait > 0:
            with self._lock:
                failures = self._failures
            raise CircuitOpen(
                f"provider unavailable: {failures} failures in a row; nothing sent for "
                f"{wait:.1f}s", retry_after=wait * random.uniform(1.0, 1.5))

    def observe(self, error: ProviderError) -> None:
        """A request failed with ``error``: a failure if it means the provider is down, the
        provider up if it answered (a status); an error raised before any answer (an id
        refused before sending, a client-side surprise) says nothing either way."""
        if means_down(error):
            retry_after = error.retry_after if isinstance(error, TransientProviderError) else None
            self.failed(retry_after)
        elif error.status is not None:
            self.succeeded()

    def failed(self, retry_after: float | None = None) -> None:
        """The provider is down for a request; opens (or reopens, longer) at the threshold."""
        with self._lock:
            self._failures += 1
            if self.threshold > 0 and self._failures >= self.threshold:
                delay = retry_delay(self._failures - self.threshold + 1, base=self.base,
                                    cap=self.cap, retry_after=retry_after)
                self._open_until = self._clock() + delay

    def succeeded(self) -> None:
        """The provider answered: close."""
        with self._lock:
            self._failures = 0
            self._open_until = 0.0
