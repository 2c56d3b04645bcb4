"""The CLI's client-side rate limit: pacing, defaults per key, slowing down on 429s."""

from __future__ import annotations

from dataclasses import replace

import pytest

from flask_seat_billing.cli import RateLimiter, default_rate
from flask_seat_billing.settings import DEFAULTS, read_settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_requests_are_spaced_by_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    for _ in range(11):
        limiter.acquire()
    assert clock.now == pytest.approx(1.0)
    assert limiter.requests == 11


def test_429_halves_the_rate_waits_retry_after_and_recovers() -> None:
    clock = FakeClock()
    limiter = RateLimiter(20, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    assert limiter.slow_down(retry_after=2.0) == 2.0
    assert limiter.rate == 10
    limiter.acquire()
    assert clock.now == pytest.approx(2.0)
    for _ in range(40):
        limiter.succeeded()
    assert limiter.rate == 20  # back to the ceiling, never above it
    for _ in range(20):
        limiter.slow_down()
    assert limiter.rate == pytest.approx(20 / 32)  # a floor: a long run still makes progress


def test_default_rates() -> None:
    base = read_settings({**DEFAULTS, "SEAT_BILLING_STRIPE_SECRET_KEY": "sk_test_x"})
    assert default_rate(base) == 20
    live = replace(base.provider_settings, secret_key="sk_live_x")  # type: ignore[call-arg]
    assert default_rate(replace(base, provider_settings=live)) == 80
    assert default_rate(replace(base, max_requests_per_second=3.5)) == 3.5
