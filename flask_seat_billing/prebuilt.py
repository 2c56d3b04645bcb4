"""Statements built once per set of tables, their values bound when they are executed.

SQLAlchemy builds a statement such as ``table.update().where(...).values(**row)`` anew on every
call, coercing each value and computing a cache key from all of them; for the webhook path's
statements that cost more CPU than sending them to the database. A statement kept here is built
once, with ``bindparam`` placeholders, and executed with a parameter dictionary: its cache key
is computed once and its compiled form reused.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from .tables import Tables

_BUILT: weakref.WeakKeyDictionary[Tables, dict[str, Any]] = weakref.WeakKeyDictionary()


def statement(name: str, tables: Tables, build: Callable[[Tables], Any]) -> Any:
    """The statement ``name`` of ``tables``, built by ``build(tables)`` on first use."""
    built = _BUILT.get(tables)
    if built is None:
        built = _BUILT.setdefault(tables, {})
    found = built.get(name)
    if found is None:
        found = built[name] = build(tables)
    return found
