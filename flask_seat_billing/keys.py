"""Organization keys: the app's own type (int, str, UUID) outside, one canonical string inside.

Our tables must hold any app's key type, so they store a string form. That form has to be the
same for every spelling the app's database stores as the same organization: an Integer column
stores ``"01"``, ``" 1"``, ``"+1"`` and ``1`` alike, PostgreSQL's uuid column stores an
upper-case or braced UUID as the plain one. If the outbox row or a subscription carried the
spelling instead, the sync would look for the wrong organization and drop the change, and the
seat cap would count nobody. So every key is made here, by :class:`KeyRule`, from the
organization column's own type:

- integer columns: an int, an integral float or Decimal, or a decimal string (ASCII digits,
  optional sign, surrounding ASCII whitespace: what both SQLite and PostgreSQL read as that
  number); within the column's range (SmallInteger 16-bit, Integer 32-bit, BigInteger 64-bit
  signed). The key is the plain decimal, ``"1"``.
- UUID columns (``as_uuid=False`` too): a ``uuid.UUID`` or any string ``uuid.UUID`` reads (any
  case, braces, ``urn:``); the key is the hyphenated lower-case form. What the database keeps
  depends on the backend: PostgreSQL's uuid type stores the UUID, whatever the spelling; elsewhere
  (SQLite: ``CHAR(32)``) an ``as_uuid=False`` column stores the hex digits of the string as
  given, case kept, so two spellings there are two values the database does not match. The
  key is canonical either way; an app on such a column should write one spelling itself.
- any other column: a string as given (an int or UUID as its ``str``).

Whatever the type, a key longer than our tables' 64 characters (or the column's own length), or
holding NUL or text that is not valid Unicode, is refused: PostgreSQL cannot store NUL, and libpq
cuts a quoted value at it, so the key would name another organization. A refusal is an
:class:`~flask_seat_billing.errors.InvalidOrganizationKey`, a ``ValueError`` naming the value.

Only Python work, no query: the rule runs on the write path of every member change.
"""

from __future__ import annotations

import decimal
import re
import uuid
from typing import Any

import sqlalchemy as sa

from .errors import InvalidOrganizationKey

KEY_LENGTH = 64  # the organization_key columns of the seat_billing_* tables
_DECIMAL = re.compile(r"[ \t\n\r\f\v]*([+-]?[0-9]+)[ \t\n\r\f\v]*")
_INTEGER_BITS = ((sa.SmallInteger, 16), (sa.BigInteger, 64), (sa.Integer, 32))


def to_key(value: Any) -> str:
    """The string form of a value already in the column's type (what :meth:`KeyRule.value` gives).

    For values from anywhere else (the app, a request, the CLI) use :meth:`KeyRule.key`, which
    canonicalises and checks them.
    """
    if value is None:
        raise InvalidOrganizationKey(None, "an organization id is required")
    return str(value)


def _base_type(column: sa.ColumnElement[Any]) -> sa.types.TypeEngine[Any]:
    type_: Any = column.type
    while isinstance(type_, sa.TypeDecorator):
        type_ = type_.impl_instance
    return type_  # type: ignore[no-any-return]


class KeyRule:
    """Canonical keys for one organization column; ``what`` names it in error messages."""

    def __init__(self, column: sa.ColumnElement[Any], what: str) -> None:
        self.what = what
        base = _base_type(column)
        try:
            python_type: Any = column.type.python_type
        except NotImplementedError:
            python_type = str
        self.kind = "int" if python_type is int else "uuid" if python_type is uuid.UUID else "str"
        # Uuid(as_uuid=False) gives the app strings, but its values are UUIDs: keyed as one
        # (on PostgreSQL the column stores a UUID; on SQLite, the string's hex digits as given).
        self.uuid_as_str = isinstance(base, sa.Uuid) and not base.as_uuid
        if self.uuid_as_str:
            self.kind = "uuid"
        bits = next((n for t, n in _INTEGER_BITS if isinstance(base, t)), 64)
        self.low, self.high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        self.bits = bits
        length = getattr(base, "length", None) if self.kind == "str" else None
        self.max_length = min(KEY_LENGTH, length) if isinstance(length, int) else KEY_LENGTH

    def _refuse(self, value: Any, reason: str) -> InvalidOrganizationKey:
        return InvalidOrganizationKey(value, f"{reason} ({self.what})")

    def value(self, raw: Any) -> Any:
        """``raw`` as the column's Python type, as the database would store it; else refused."""
        if raw is None:
            raise self._refuse(raw, "an organization id is required")
        if self.kind == "int":
            return self._int(raw)
        if self.kind == "uuid":
            return str(self._uuid(raw)) if self.uuid_as_str else self._uuid(raw)
        return self._str(raw)

    def key(self, raw: Any) -> str:
        """The canonical string kept in our tables for ``raw``; refused if there is none."""
        if type(raw) is int and self.kind == "int" and self.low <= raw <= self.high:
            return str(raw)  # the common case, kept cheap: it runs for every member change
        return str(self.value(raw))

    def key_or_given(self, raw: Any) -> str:
        """The canonical key, or ``str(raw)`` for a caller that reports unknown ones itself."""
        try:
            return self.key(raw)
        except InvalidOrganizationKey:
            return str(raw)

    def is_canonical(self, key: str) -> bool:
        """True for a string that is already a canonical key (e.g. one read from our tables)."""
        try:
            return self.key(key) == key
        except InvalidOrganizationKey:
            return False

    def _int(self, raw: Any) -> int:
        if isinstance(raw, int):  # bool included: both databases store True as 1
            number = int(raw)
        elif isinstance(raw, (float, decimal.Decimal)):
            try:
                number = int(raw)
                whole = raw == number
            except (ValueError, OverflowError, ArithmeticError):  # NaN, infinity
                whole = False
            if not whole:  # 1.5: SQLite keeps 1.5, PostgreSQL rounds it to 2
                raise self._refuse(raw, "not a whole number")
        elif isinstance(raw, str):
            match = _DECIMAL.fullmatch(raw)
            if match is None:
                raise self._refuse(raw, "not an integer organization id")
            number = int(match.group(1))
        else:
            raise self._refuse(raw, f"a {type(raw).__name__} is not an integer organization id")
        if not self.low <= number <= self.high:
            raise self._refuse(raw, f"outside the column's {self.bits}-bit integer range")
        return number

    def _uuid(self, raw: Any) -> uuid.UUID:
        if isinstance(raw, uuid.UUID):
            return raw
        if isinstance(raw, str) and len(raw) <= 2 * KEY_LENGTH:
            try:
                return uuid.UUID(raw)
            except ValueError:
                pass
        raise self._refuse(raw, "not a UUID")

    def _str(self, raw: Any) -> str:
        if isinstance(raw, (int, uuid.UUID)) and not isinstance(raw, bool):
            raw = str(raw)
        if not isinstance(raw, str):
            raise self._refuse(raw, f"a {type(raw).__name__} is not a string organization id")
        if len(raw) > self.max_length:
            raise self._refuse(raw, f"longer than {self.max_length} characters")
        if "\x00" in raw:
            raise self._refuse(raw, "contains a NUL character, which the database cannot store")
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError:
            raise self._refuse(raw, "not valid Unicode text") from None
        return raw
