"""Lifecycle policies: before-hooks that may refuse an action, after-hooks that react to one.

``PolicyRegistry`` holds them; ``seat_limit_policies()`` are the built-in seat cap.

The seat cap is imported on first use: it reads the app's state, and the state holds the
registry (``hooks.py``), so importing it here would make the registry wait on the state.
"""

from __future__ import annotations

from typing import Any

from .context import PolicyContext
from .decisions import Allow, Decision, Deny, allow, deny
from .registry import AFTER_HOOKS, BEFORE_HOOKS, HOOKS, Policy, PolicyFn, PolicyRegistry

__all__ = [
    "ACCEPT_POLICY",
    "AFTER_HOOKS",
    "BEFORE_HOOKS",
    "HOOKS",
    "INVITE_POLICY",
    "Allow",
    "Decision",
    "Deny",
    "Policy",
    "PolicyContext",
    "PolicyFn",
    "PolicyRegistry",
    "allow",
    "deny",
    "seat_limit_policies",
]


def __getattr__(name: str) -> Any:
    if name in ("ACCEPT_POLICY", "INVITE_POLICY", "seat_limit_policies"):
        from . import seat_limits

        return getattr(seat_limits, name)
    raise AttributeError(name)
