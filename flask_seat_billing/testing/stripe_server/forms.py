"""Decoding of Stripe's bracket form-encoding, and coercion of its string values.

The SDK sends ``items[0][id]=si_1&items[0][quantity]=7&metadata[org]=acme&expand[0]=x``; the API
reads that as nested objects and arrays. Everything arrives as strings, so the handlers coerce
with :func:`as_int` / :func:`as_bool`, raising Stripe's own invalid-value errors.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from .errors import StripeError

__all__ = ["as_bool", "as_int", "decode_form", "flatten_key"]

_KEY = re.compile(r"\[([^\]]*)\]")
_NO_LIST = frozenset({"metadata"})  # dictionaries whose keys may look like indices


def _split(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    parts = [head]
    if rest:
        parts.extend(_KEY.findall("[" + rest))
    return parts


def _listify(value: Any, parent: str | None) -> Any:
    """Turn ``{"0": a, "1": b}`` into ``[a, b]`` (arrays), except under metadata."""
    if not isinstance(value, dict):
        return value
    converted = {k: _listify(v, k) for k, v in value.items()}
    keys = list(converted)
    if parent not in _NO_LIST and keys and all(k.isdigit() or k == "" for k in keys):
        if all(k == "" for k in keys):
            return converted[""] if isinstance(converted[""], list) else [converted[""]]
        return [converted[k] for k in sorted(keys, key=lambda k: int(k or 0))]
    return converted


def decode_form(text: str) -> dict[str, Any]:
    """Decode a form body or query string into nested dicts and lists.

    ``expand[]=a&expand[]=b`` (the style the API itself returns in list URLs) becomes a list too.
    """
    root: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        parts = _split(key)
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "" and not last:
                part = str(len(node))
            if last:
                if part == "":
                    node.setdefault("", []).append(value)
                else:
                    node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    result = _listify(root, None)
    assert isinstance(result, dict)
    return result


def flatten_key(path: list[str | int]) -> str:
    """``["items", 0, "foo"]`` -> ``items[0][foo]``, the way Stripe names a nested parameter."""
    head, *rest = path
    return str(head) + "".join(f"[{p}]" for p in rest)


def as_int(value: Any, param: str, minimum: int | None = None) -> int:
    """Parse an integer parameter as the API does (``Invalid integer: x``)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise StripeError(
            f"Invalid integer: {value}", param=param, code="parameter_invalid_integer"
        )
    try:
        number = int(value)
    except ValueError:
        raise StripeError(
            f"Invalid integer: {value}", param=param, code="parameter_invalid_integer"
        ) from None
    if minimum is not None and number < minimum:
        raise StripeError(
            f"This value must be greater than or equal to {minimum}.",
            param=param,
            code="parameter_invalid_integer",
        )
    return number


def as_bool(value: Any, param: str) -> bool:
    """Parse a boolean parameter (``true``/``false``) as the API does."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise StripeError(f"Invalid boolean: {value}", param=param, code="parameter_invalid_boolean")
