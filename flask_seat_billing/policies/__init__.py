"""Lifecycle policies: before-hooks that may refuse an action, after-hooks that react to one.

``PolicyRegistry`` holds them. The built-in seat cap (``flask_seat_billing.seat_limits``) is a
policy like the app's own; it lives above the app's state, which it reads, while the registry
lives below it (the state holds the app's registry), so only its names are here.
"""

from __future__ import annotations

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
]

# The built-in seat-limit policies' names (flask_seat_billing.seat_limits), for unregistering.
INVITE_POLICY = "seat-limit-on-invite"
ACCEPT_POLICY = "seat-limit-on-accept"
