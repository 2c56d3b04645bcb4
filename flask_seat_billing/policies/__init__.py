"""Lifecycle policies: before-hooks that may refuse an action, after-hooks that react to one.

``PolicyRegistry`` holds them; ``seat_limit_policies()`` are the built-in seat cap.
"""

from __future__ import annotations

from .context import PolicyContext
from .decisions import Allow, Decision, Deny, allow, deny
from .registry import AFTER_HOOKS, BEFORE_HOOKS, HOOKS, Policy, PolicyFn, PolicyRegistry
from .seat_limits import ACCEPT_POLICY, INVITE_POLICY, seat_limit_policies

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
