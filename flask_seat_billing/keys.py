"""Organization keys: the app's own type (int, str, UUID) outside, a string in our tables.

Our tables must hold any app's key type, so they store its string form; counting queries must
compare against the app's column in its own type, so we convert back with the column's
``python_type``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa


def to_key(value: Any) -> str:
    """The string form stored in ``seat_billing_*`` tables."""
    if value is None:
        raise ValueError("An organization id is required, got None.")
    return str(value)


def key_parser(column: sa.ColumnElement[Any]) -> Callable[[str], Any]:
    """A function turning a stored key back into the type of the app's organization column."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return str
    if python_type is int:
        return int
    if python_type is uuid.UUID:
        return uuid.UUID
    return str
