"""The checkout and portal parameters, checked before anything uses them.

Every check raises ``ValueError`` with a message that names the field but does not echo its
value: these answers go to callers who are not authorized yet.
"""

from __future__ import annotations

import re
from typing import Any

from ..state import SeatBillingState

MAX_PLAN_NAME = 200
MAX_EMAIL = 254  # RFC 5321's limit on a forward path
# Deliberately loose: one @, something on each side, a dot in the domain, no spaces or controls.
# The provider checks deliverability; this only keeps non-addresses out of its parameters.
EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f.]+")


def organization(state: SeatBillingState, data: dict[str, Any]) -> Any:
    """The organization id, parsed as the member model's key column; ValueError otherwise."""
    raw = data.get("organization_id")
    if raw is None or raw == "":
        raise ValueError("organization_id is required.")
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ValueError("organization_id must be a string or an integer.")
    try:
        return state.schema.parse_key(str(raw))
    except (TypeError, ValueError):
        raise ValueError("organization_id is not a valid organization id.") from None


def plan_name(data: dict[str, Any]) -> str:
    """The ``plan`` parameter: a string of sane length (a list or object is refused here)."""
    value = data.get("plan")
    if value is None or value == "":
        raise ValueError("plan is required.")
    if not isinstance(value, str) or len(value) > MAX_PLAN_NAME:
        raise ValueError("plan must be the name of a plan.")
    return value


def email(data: dict[str, Any]) -> str | None:
    """The optional customer email: None, or a string that looks like an address."""
    value = data.get("email")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_EMAIL or not EMAIL.fullmatch(value):
        raise ValueError("email must be an email address.")
    return value


def text(data: dict[str, Any], name: str, default: str) -> str:
    """An optional string parameter (a redirect URL), ``default`` when absent."""
    value = data.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string.")
    return value
