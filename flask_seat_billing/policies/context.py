"""The one argument every policy receives.

Policies are plain functions of a :class:`PolicyContext`, so a policy written for one hook can
read the same names on another, and a new piece of context (``extra``) never changes a signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from flask import Flask, has_request_context, request

_RESERVED = frozenset({"hook", "app"})


@dataclass
class PolicyContext:
    """What the app knows about the action being checked (before) or just done (after).

    ``organization_id`` is in the app's own key type. ``invitation`` and ``member`` are the app's
    model instances when the hook concerns one; ``plan`` is a plan name or :class:`Plan` (for
    checkout); ``request`` defaults to the current Flask request, if any. Keyword arguments the
    registry does not know land in ``extra`` (read them with :meth:`get`). ``app`` is the app whose
    seat billing runs the check, so a policy can reach its state outside a request.
    """

    hook: str
    organization_id: Any = None
    user: Any = None
    invitation: Any = None
    member: Any = None
    plan: Any = None
    request: Any = None
    action: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    app: Flask | None = field(default=None, repr=False)

    def get(self, name: str, default: Any = None) -> Any:
        """A named field, else an ``extra`` entry, else ``default``: one way to read any key."""
        if name in _FIELD_NAMES and name != "extra":
            value = getattr(self, name)
            return default if value is None else value
        return self.extra.get(name, default)


_FIELD_NAMES = frozenset(f.name for f in fields(PolicyContext))


def build_context(hook: str, app: Flask | None, context: dict[str, Any]) -> PolicyContext:
    """Sort the caller's keyword arguments into fields and ``extra``.

    ``hook`` and ``app`` are set by the registry, never by the caller, so a policy can trust them.
    """
    clash = _RESERVED & context.keys()
    if clash:
        raise TypeError(f"{', '.join(sorted(clash))} is set by the registry; do not pass it.")
    known = {k: v for k, v in context.items() if k in _FIELD_NAMES and k != "extra"}
    extra = dict(context.get("extra") or {})
    extra.update({k: v for k, v in context.items() if k not in _FIELD_NAMES})
    if known.get("request") is None and has_request_context():
        known["request"] = request._get_current_object()  # type: ignore[attr-defined]
    return PolicyContext(hook=hook, app=app, extra=extra, **known)
