"""Stripe's exceptions sorted into retry-worthy and final, the one decision the engine needs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import stripe

from ...errors import (
    PermanentProviderError,
    ProviderError,
    ProviderUnavailable,
    TransientProviderError,
)

T = TypeVar("T")
TRANSIENT_CODES = {"lock_timeout", "rate_limit"}


def _retry_after(error: stripe.StripeError) -> float | None:
    headers = error.headers or {}
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def translate(error: stripe.StripeError) -> ProviderError:
    """The project's error for a Stripe error: transient ones are retried, the rest recorded."""
    status = error.http_status
    code = error.code
    message = error.user_message or str(error) or type(error).__name__
    if isinstance(error, stripe.APIConnectionError):
        return ProviderUnavailable(f"Stripe unreachable: {message}", status=status, code=code)
    if isinstance(error, stripe.RateLimitError) or status == 429 or code in TRANSIENT_CODES:
        return TransientProviderError(
            f"Stripe rate limit: {message}",
            status=status,
            code=code,
            retry_after=_retry_after(error),
        )
    if status is None or status >= 500 or status == 409:
        return TransientProviderError(f"Stripe error: {message}", status=status, code=code)
    return PermanentProviderError(f"Stripe refused: {message}", status=status, code=code)


@contextmanager
def stripe_errors() -> Iterator[None]:
    """Run a block of Stripe calls, re-raising Stripe's errors as the project's own."""
    try:
        yield
    except stripe.StripeError as error:
        raise translate(error) from error


def call(fn: Callable[[], T]) -> T:
    with stripe_errors():
        return fn()
