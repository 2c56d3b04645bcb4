"""Stripe ids checked against Stripe's own shape before they go into a URL path or a lookup.

The stripe SDK percent-encodes ids (``quote_plus``), which leaves ``.``, ``..`` and the empty id,
and the latter turns a retrieve into a listing. Rather than encode and let Stripe answer 404, an id
of the wrong shape is refused here with :class:`InvalidProviderId`, so no request is sent at all
and the caller learns which id was wrong. Webhook payloads are checked with the same rule, so a
number, an object or a string with path characters never reaches an API call from there either.
"""

from __future__ import annotations

import re

from ...errors import InvalidProviderId
from ..base import shown

__all__ = ["stripe_id"]

# Stripe's object ids are "<prefix>_<alphanumerics>" (cs_test_..., sub_..., si_...); objects
# that accept a custom id (products, legacy plans used as prices) also allow "-".
_STRIPE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")
_STRIPE_PREFIX = {"subscription": "sub_", "checkout session": "cs_", "subscription item": "si_"}


def is_stripe_id(value: object, kind: str) -> bool:
    """True when ``value`` has the shape of a Stripe ``kind`` id."""
    return (
        isinstance(value, str)
        and _STRIPE_ID.fullmatch(value) is not None
        and value.startswith(_STRIPE_PREFIX.get(kind, ""))
    )


def stripe_id(value: object, kind: str) -> str:
    """``value`` if it has the shape of a Stripe ``kind`` id, else :class:`InvalidProviderId`."""
    if not is_stripe_id(value, kind):
        prefix = _STRIPE_PREFIX.get(kind, "")
        shape = f"{prefix}<letters and digits>" if prefix else "letters, digits, '_' and '-'"
        raise InvalidProviderId(
            f"{shown(value)} is not a Stripe {kind} id ({shape}); nothing was sent.",
            code="invalid_id",
        )
    assert isinstance(value, str)
    return value
