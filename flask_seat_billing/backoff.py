"""When to try a failed sync again: exponential backoff with jitter, never sooner than asked.

Jitter spreads the retries of many organizations after an outage so they do not hit the provider
in one wave; a 429's ``Retry-After`` is a floor because the provider said so.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta


def retry_delay(
    attempts: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after the ``attempts``-th failure (1 for the first)."""
    rng = rng or random.Random()
    # The exponent is capped: past ~1,000 attempts 2**n overflows a float (OverflowError).
    exponential = min(cap, base * (2 ** min(max(0, attempts - 1), 60)))
    delay = float(exponential * rng.uniform(0.5, 1.0))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def retry_at(now: datetime, delay: float) -> datetime:
    return now + timedelta(seconds=delay)
