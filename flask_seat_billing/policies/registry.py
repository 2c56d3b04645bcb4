"""Named policies per lifecycle hook: before-policies can refuse, after-policies only react.

The split follows the seed kit. A ``before_*`` check runs inside the app's own flow, so a refusal
must stop it and a policy that crashes must stop it too (failing open would let an action through
that a policy exists to refuse). An ``after_*`` policy runs once the change is committed, so its
failure is logged and swallowed: the membership change already happened and must not look failed.
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask

from .. import signals
from ..errors import PolicyDenied, SeatLimitReached
from .context import PolicyContext, build_context
from .decisions import Allow, Deny

log = logging.getLogger("flask_seat_billing.policies")

BEFORE_HOOKS = (
    "before_invitation_create",
    "before_invitation_accept",
    "before_member_remove",
    "before_checkout",
)
AFTER_HOOKS = (
    "after_invitation_accept",
    "after_member_add",
    "after_member_remove",
    "after_checkout_completed",
    "after_seats_synced",
)
HOOKS = BEFORE_HOOKS + AFTER_HOOKS
SEAT_LIMIT_CODE = "SEAT_LIMIT_REACHED"

PolicyFn = Callable[[PolicyContext], Any]
F = TypeVar("F", bound=PolicyFn)


@dataclass(frozen=True)
class Policy:
    """One registered policy. ``fn(ctx)`` returns ``allow()`` / ``deny(...)`` on a before-hook."""

    name: str
    description: str
    hook: str
    fn: PolicyFn


def _valid_hook(hook: str) -> str:
    if hook not in HOOKS:
        raise ValueError(f"Unknown policy hook {hook!r}; valid hooks: {', '.join(HOOKS)}.")
    return hook


def _describe(fn: PolicyFn) -> str:
    doc = (getattr(fn, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


class PolicyRegistry:
    """Policies by hook, each list in registration order (the order they run in)."""

    def __init__(self) -> None:
        self._by_hook: dict[str, tuple[Policy, ...]] = {hook: () for hook in HOOKS}
        self._lock = threading.Lock()  # lists are replaced, never mutated: runs see a snapshot

    def register(
        self, hook: str, fn: PolicyFn, name: str | None = None, description: str | None = None
    ) -> Policy:
        """Add ``fn`` to ``hook``; its name (default ``fn.__name__``) must be new on that hook."""
        _valid_hook(hook)
        policy_name = name or getattr(fn, "__name__", None) or repr(fn)
        text = description if description is not None else _describe(fn)
        policy = Policy(policy_name, text, hook, fn)
        with self._lock:
            if any(p.name == policy_name for p in self._by_hook[hook]):
                raise ValueError(
                    f"A policy named {policy_name!r} is already registered on {hook}; "
                    "pass name= to register another, or unregister the first."
                )
            self._by_hook[hook] = (*self._by_hook[hook], policy)
        return policy

    def policy(
        self, hook: str, *, name: str | None = None, description: str | None = None
    ) -> Callable[[F], F]:
        """Decorator form of :meth:`register`; returns the function unchanged."""
        _valid_hook(hook)

        def decorator(fn: F) -> F:
            self.register(hook, fn, name=name, description=description)
            return fn

        return decorator

    def unregister(self, name: str, hook: str | None = None) -> None:
        """Remove the policy ``name`` from ``hook`` (or from every hook that has it)."""
        hooks = [_valid_hook(hook)] if hook is not None else builtins.list(HOOKS)
        removed = False
        with self._lock:
            for h in hooks:
                kept = tuple(p for p in self._by_hook[h] if p.name != name)
                removed = removed or len(kept) != len(self._by_hook[h])
                self._by_hook[h] = kept
        if not removed:
            where = f"on {hook}" if hook is not None else "on any hook"
            raise KeyError(f"No policy named {name!r} is registered {where}.")

    def list(self, hook: str | None = None) -> builtins.list[Policy]:
        """Registered policies of ``hook`` (or of every hook, hook by hook), in run order."""
        if hook is not None:
            return builtins.list(self._by_hook[_valid_hook(hook)])
        return [p for h in HOOKS for p in self._by_hook[h]]

    def check(self, app: Flask, hook: str, /, **context: Any) -> None:
        """Run the before-policies of ``hook`` in order; raise on the first refusal.

        A refusal sends ``policy_denied`` (sender: the app) and raises :class:`SeatLimitReached`
        for ``SEAT_LIMIT_REACHED``, else :class:`PolicyDenied`. A policy may also raise
        ``PolicyDenied`` itself: that counts as its refusal. Any other exception propagates.
        """
        if _valid_hook(hook) not in BEFORE_HOOKS:
            raise ValueError(f"check() runs before-hooks ({', '.join(BEFORE_HOOKS)}), not {hook}.")
        ctx = build_context(hook, app, context)
        for policy in self._by_hook[hook]:
            try:
                decision = policy.fn(ctx)
            except PolicyDenied as error:
                _send_denied(app, policy, ctx, Deny(error.code, error.message, error.details))
                raise
            if isinstance(decision, Deny):
                _send_denied(app, policy, ctx, decision)
                raise _error_for(decision)
            if not isinstance(decision, Allow):
                raise TypeError(
                    f"Policy {policy.name!r} on {hook} returned {decision!r}; a before-policy "
                    "must return allow() or deny(...) (a missing return must not allow)."
                )

    def run_after(self, app: Flask, hook: str, /, **context: Any) -> None:
        """Run the after-policies of ``hook``; log each failure with its context, raise none."""
        if _valid_hook(hook) not in AFTER_HOOKS:
            raise ValueError(
                f"run_after() runs after-hooks ({', '.join(AFTER_HOOKS)}), not {hook}."
            )
        ctx = build_context(hook, app, context)
        for policy in self._by_hook[hook]:
            try:
                policy.fn(ctx)
            except Exception:
                log.exception(
                    "after-policy %r on %s failed (organization_id=%r); context: %r",
                    policy.name, hook, ctx.organization_id, ctx,
                    extra={"policy": policy.name, "hook": hook,
                           "organization_id": ctx.organization_id},
                )


def _send_denied(app: Flask, policy: Policy, ctx: PolicyContext, d: Deny) -> None:
    signals.policy_denied.send(
        app, hook=ctx.hook, policy=policy.name, code=d.code, message=d.message,
        details=dict(d.details), context=ctx,
    )


def _error_for(decision: Deny) -> PolicyDenied:
    if decision.code == SEAT_LIMIT_CODE:
        return SeatLimitReached(decision.message, decision.details)
    return PolicyDenied(decision.code, decision.message, decision.details)
