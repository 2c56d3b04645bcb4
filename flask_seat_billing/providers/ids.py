"""Ids checked against the provider's own shape before they go into a URL path.

The polar SDK formats ids into paths as given (``"/v1/checkouts/{id}".format(...)``), and httpx
then resolves dot segments: ``complete_checkout("../customers/")`` would read
``/v1/customers/`` with the merchant's token. The stripe SDK percent-encodes ids
(``quote_plus``), which leaves ``.``, ``..`` and the empty id, and the latter turns a retrieve
into a listing. Rather than encode and let the provider answer 404, an id of the wrong shape is
refused here with :class:`InvalidProviderId`, so no request is sent at all and the caller learns
which id was wrong.
"""

from __future__ import annotations

import re
import uuid

from ..errors import InvalidProviderId

__all__ = ["polar_id", "stripe_id"]

# Stripe's object ids are "<prefix>_<alphanumerics>" (cs_test_..., sub_..., si_...); objects
# that accept a custom id (products, legacy plans used as prices) also allow "-".
_STRIPE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")
_STRIPE_PREFIX = {"subscription": "sub_", "checkout session": "cs_", "subscription item": "si_"}
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def stripe_id(value: object, kind: str) -> str:
    """``value`` if it has the shape of a Stripe ``kind`` id, else :class:`InvalidProviderId`."""
    prefix = _STRIPE_PREFIX.get(kind, "")
    if (
        not isinstance(value, str)
        or not _STRIPE_ID.fullmatch(value)
        or not value.startswith(prefix)
    ):
        shape = f"{prefix}<letters and digits>" if prefix else "letters, digits, '_' and '-'"
        raise InvalidProviderId(
            f"{_shown(value)} is not a Stripe {kind} id ({shape}); nothing was sent.",
            code="invalid_id",
        )
    return value


def polar_id(value: object, kind: str) -> str:
    """``value`` as a canonical UUID (Polar's ids are UUIDs), else :class:`InvalidProviderId`."""
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise InvalidProviderId(
            f"{_shown(value)} is not a Polar {kind} id (a UUID); nothing was sent.",
            code="invalid_id",
        )
    return str(uuid.UUID(value))
