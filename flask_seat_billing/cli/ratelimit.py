"""A client-side rate limit for long CLI runs, so a resync stays under the provider's limits.

Each provider's settings name a safe rate under its limits (``requests_per_second``): Stripe
allows about 100 requests/s live and 25/s in test mode, and a 429 is not retried by the SDK.
Pacing requests below those limits costs little; when a 429 still comes (other traffic on the
same account), the limiter halves its rate and waits out ``Retry-After`` instead of failing,
then creeps back up after a run of successes (additive increase, multiplicative decrease).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..settings import Settings

RECOVER_AFTER = 20  # successes before the rate climbs back one step


def default_rate(settings: Settings) -> float:
    """``SEAT_BILLING_MAX_REQUESTS_PER_SECOND``, or a safe margin under the provider's limit."""
    if settings.max_requests_per_second is not None:
        return settings.max_requests_per_second
    return settings.provider_settings.requests_per_second()


class RateLimiter:
    """Spaces calls at least ``1 / rate`` seconds apart; counts them for the run's summary."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.ceiling = float(rate)
        self.rate = float(rate)
        self.requests = 0
        self.slowdowns = 0
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._streak = 0

    def acquire(self) -> None:
        """Wait for the next slot, then count one request."""
        now = self._clock()
        if self._next > now:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + 1.0 / self.rate
        self.requests += 1

    def succeeded(self) -> None:
        """A request went through: after a streak, step the rate back up toward the ceiling."""
        self._streak += 1
        if self._streak >= RECOVER_AFTER and self.rate < self.ceiling:
            self.rate = min(self.ceiling, self.rate * 1.5)
            self._streak = 0

    def slow_down(self, retry_after: float | None = None) -> float:
        """A 429 or outage: halve the rate, hold the next slot back; return the wait."""
        self.slowdowns += 1
        self._streak = 0
        self.rate = max(self.ceiling / 32, self.rate / 2)
        wait = max(retry_after or 0.0, 1.0 / self.rate)
        self._next = max(self._next, self._clock() + wait)
        return wait
