"""Reject unknown parameters exactly as Stripe does, using the SDK's own parameter TypedDicts.

``stripe.params`` is generated from Stripe's OpenAPI spec, so it is an up-to-date list of what each
endpoint accepts. A typo (``quantitiy``) in our library then fails in tests the way it would
against Stripe (400 ``parameter_unknown``) instead of being silently ignored.
"""

from __future__ import annotations

import builtins
import sys
import types
import typing
from functools import cache
from typing import Any, ForwardRef, Union

from typing_extensions import NotRequired, Required, is_typeddict

from .errors import StripeError
from .forms import flatten_key

__all__ = ["check_params"]

# Request options live in the same TypedDicts but never travel as parameters.
_REQUEST_OPTIONS = frozenset(
    {
        "api_key",
        "stripe_version",
        "stripe_account",
        "stripe_context",
        "max_network_retries",
        "idempotency_key",
        "content_type",
        "headers",
    }
)

# A shape is ("object", typeddict) | ("list", shape) | ("map",) | ("scalar",).
Shape = tuple[Any, ...]
_SCALAR: Shape = ("scalar",)
_MAP: Shape = ("map",)


class _Namespace(dict[str, Any]):
    """Eval locals that fall back to the module, then builtins, then ``Any``.

    Some annotations name types imported only under ``TYPE_CHECKING``; treating those as
    ``Any`` is enough, since only TypedDicts, lists and dicts matter here.
    """

    def __init__(self, module_globals: dict[str, Any]) -> None:
        super().__init__()
        self.module_globals = module_globals

    def __missing__(self, key: str) -> Any:
        if key in self.module_globals:
            return self.module_globals[key]
        return getattr(builtins, key, Any)


def _resolve(annotation: Any, owner: type) -> Any:
    if isinstance(annotation, ForwardRef):
        annotation = annotation.__forward_arg__
    if isinstance(annotation, str):
        module_globals = vars(sys.modules[owner.__module__])
        return eval(annotation, module_globals, _Namespace(module_globals))  # noqa: S307
    return annotation


def _shape(annotation: Any, owner: type) -> Shape:
    annotation = _resolve(annotation, owner)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (NotRequired, Required, typing.Annotated) and args:
        return _shape(args[0], owner)
    if origin is Union or origin is types.UnionType:
        shapes = [_shape(a, owner) for a in args]
        for kind in ("object", "list", "map"):
            for s in shapes:
                if s[0] == kind:
                    return s
        return _SCALAR
    if origin in (list, typing.List) and args:  # noqa: UP006
        return ("list", _shape(args[0], owner))
    if origin in (dict, typing.Dict):  # noqa: UP006
        return _MAP
    if is_typeddict(annotation):
        return ("object", annotation)
    if getattr(annotation, "__name__", "") == "UntypedStripeObject" or (
        origin is not None and getattr(origin, "__name__", "") == "UntypedStripeObject"
    ):
        return _MAP
    return _SCALAR


@cache
def _fields(typed_dict: type) -> dict[str, Shape]:
    """Resolved field shapes of a TypedDict (cached: resolving is slow, validating is hot)."""
    fields: dict[str, Shape] = {}
    for klass in reversed(typed_dict.__mro__):
        for name, annotation in vars(klass).get("__annotations__", {}).items():
            if name in _REQUEST_OPTIONS:
                continue
            fields[name] = _shape(annotation, klass)
    return fields


def _check(value: Any, shape: Shape, path: list[str | int]) -> None:
    kind = shape[0]
    if kind == "object" and isinstance(value, dict):
        fields = _fields(shape[1])
        for key, sub in value.items():
            if key not in fields:
                raise StripeError(
                    f"Received unknown parameter: {flatten_key([*path, key])}",
                    param=flatten_key([*path, key]),
                    code="parameter_unknown",
                )
            _check(sub, fields[key], [*path, key])
    elif kind == "list" and isinstance(value, list):
        for i, sub in enumerate(value):
            _check(sub, shape[1], [*path, i])
    elif kind == "list" and isinstance(value, dict):
        for key, sub in value.items():
            _check(sub, shape[1], [*path, key])


def check_params(params: dict[str, Any], typed_dict: type | None) -> None:
    """Raise ``parameter_unknown`` for the first parameter ``typed_dict`` does not declare.

    ``expand`` is always accepted, as Stripe accepts it on every endpoint.
    """
    if typed_dict is None:
        return
    fields = _fields(typed_dict)
    for key, value in params.items():
        if key == "expand":
            continue
        if key not in fields:
            raise StripeError(
                f"Received unknown parameter: {key}", param=key, code="parameter_unknown"
            )
        _check(value, fields[key], [key])
