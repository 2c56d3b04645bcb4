"""Polar's exceptions sorted into retry-worthy and final, the one decision the engine needs.

The polar SDK has no retries of its own, so this is where a 429 or an outage becomes something
the sync engine backs off from, and where Polar's refusals (403 canceled or canceling, 400/422
seat limits, 402 payment failed) become permanent errors carrying Polar's own words.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from polar import PolarClientError, PolarError, PolarNetworkError, PolarServerError
from polar.base import PolarRateLimitError

from ...errors import (
    PermanentProviderError,
    ProviderError,
    ProviderUnavailable,
    TransientProviderError,
)

T = TypeVar("T")


def _from_json_text(text: str) -> str | None:
    try:
        data = json.loads(text)
    except ValueError:
        return text or None
    return _describe(data) if data is not None else None


def _describe(error: Any) -> str | None:
    """Polar's message, whichever shape the SDK left it in (model, JSON text or dict)."""
    if error is None:
        return None
    if isinstance(error, str):
        return _from_json_text(error)
    if isinstance(error, dict):
        detail = error.get("detail")
        name = error.get("error")
    else:
        detail = getattr(error, "detail", None)
        name = getattr(error, "error", None)
    if isinstance(detail, list):  # a 422's list of validation errors
        parts = []
        for item in detail:
            msg = item.get("msg") if isinstance(item, dict) else getattr(item, "msg", None)
            parts.append(str(msg if msg is not None else item))
        detail = "; ".join(parts)
    if detail and name:
        return f"{name}: {detail}"
    return str(detail or name or error)


def _code(error: PolarClientError) -> str | None:
    name = getattr(error.error, "error", None)
    if name is None and isinstance(error.error, str):
        try:
            name = json.loads(error.error).get("error")
        except (ValueError, AttributeError):
            name = None
    return str(name) if name else None


def translate(error: PolarError) -> ProviderError:
    """The project's error for a Polar error: transient ones are retried, the rest recorded."""
    if isinstance(error, PolarNetworkError):
        return ProviderUnavailable(f"Polar unreachable: {error}")
    if isinstance(error, PolarRateLimitError):
        retry_after = float(error.retry_after) if error.retry_after is not None else None
        return TransientProviderError(
            "Polar rate limit", status=429, code="rate_limit", retry_after=retry_after
        )
    if isinstance(error, PolarServerError):
        return TransientProviderError(f"Polar error: {error}", status=error.status_code)
    if isinstance(error, PolarClientError):
        status = error.status_code
        message = _describe(error.error) or type(error).__name__
        if status in (408, 409, 425):  # a conflict or timeout may pass
            return TransientProviderError(
                f"Polar error: {message}", status=status, code=_code(error)
            )
        return PermanentProviderError(
            f"Polar refused: {message}", status=status, code=_code(error)
        )
    return TransientProviderError(f"Polar error: {type(error).__name__}: {error}")


@contextmanager
def polar_errors() -> Iterator[None]:
    """Run a block of Polar calls, re-raising Polar's errors as the project's own."""
    try:
        yield
    except PolarError as error:
        raise translate(error) from error


def call(fn: Callable[[], T]) -> T:
    with polar_errors():
        return fn()
