"""Polar ids (UUIDs) checked before they go into a URL path or a lookup.

The polar SDK formats ids into paths as given (``"/v1/checkouts/{id}".format(...)``), and httpx
then resolves dot segments: ``complete_checkout("../customers/")`` would read
``/v1/customers/`` with the merchant's token. An id that is not a UUID is refused here with
:class:`InvalidProviderId`, so no request is sent at all and the caller learns which id was
wrong. Webhook payloads are checked with the same rule.
"""

from __future__ import annotations

import re
import uuid

from ...errors import InvalidProviderId
from ..base import shown

__all__ = ["is_polar_id", "polar_id"]

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_polar_id(value: object) -> bool:
    """True when ``value`` is a UUID string, the shape of every Polar id."""
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def polar_id(value: object, kind: str) -> str:
    """``value`` as a canonical UUID (Polar's ids are UUIDs), else :class:`InvalidProviderId`."""
    if not is_polar_id(value):
        raise InvalidProviderId(
            f"{shown(value)} is not a Polar {kind} id (a UUID); nothing was sent.",
            code="invalid_id",
        )
    return str(uuid.UUID(str(value)))
