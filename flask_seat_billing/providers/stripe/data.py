"""Stripe's objects as plain data: the SDK's ``StripeObject`` or a raw dict, and its timestamps."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import stripe


def timestamp(value: Any) -> datetime | None:
    """A Stripe Unix timestamp as naive UTC, the way the local tables store times."""
    if not value:
        return None
    return datetime.fromtimestamp(int(value), timezone.utc).replace(tzinfo=None)


def plain(obj: Any) -> dict[str, Any]:
    """A dict of ``obj``, whether the SDK built a ``StripeObject`` or a raw request left a dict."""
    if isinstance(obj, dict) and not isinstance(obj, stripe.StripeObject):
        return obj
    result: dict[str, Any] = obj.to_dict()
    return result
