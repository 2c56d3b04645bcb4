"""What a before-policy answers: allow the action, or deny it with a reason an app can show.

A decision is a value rather than an exception so that the registry, not each policy, decides
what a refusal does (send ``policy_denied``, raise :class:`~flask_seat_billing.PolicyDenied`),
and so that every refusal carries a machine-readable ``code`` beside its human ``message``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Allow:
    """The policy has no objection; later policies still run."""


@dataclass(frozen=True)
class Deny:
    """A refusal: ``code`` for programs (``SEAT_LIMIT_REACHED``), ``message`` for people."""

    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


Decision = Allow | Deny

_ALLOW = Allow()


def allow() -> Allow:
    """The answer of a policy that lets the action go ahead."""
    return _ALLOW


def deny(code: str, message: str, details: dict[str, Any] | None = None) -> Deny:
    """The answer of a policy that refuses; ``details`` ends up in the error's JSON body."""
    return Deny(code, message, dict(details or {}))
