"""Who may bill an organization is the app's decision; with no decision made, nobody may."""

from __future__ import annotations

from typing import Any

from flask import request

from ..errors import PolicyDenied
from ..state import SeatBillingState

NOT_CONFIGURED = (
    "Billing routes are closed until the app decides who may bill an organization: register "
    "@seat_billing.authorize (a function (request, organization_id, action) -> bool) or a "
    "'before_checkout' policy with @seat_billing.policy('before_checkout')."
)


class NotAuthorized(Exception):
    """The request may not act on the organization's billing."""

    def __init__(self, message: str, code: str = "FORBIDDEN", details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or {}


def authorize(state: SeatBillingState, organization_id: Any, action: str, **context: Any) -> None:
    """Raise :class:`NotAuthorized` unless the app's callback or policies allow ``action``."""
    callback = state.hooks.authorize
    policies = state.hooks.policies
    has_policies = bool(policies.list("before_checkout"))
    if callback is None and not has_policies:
        raise NotAuthorized(NOT_CONFIGURED, code="BILLING_AUTHORIZATION_NOT_CONFIGURED")
    if callback is not None and not callback(request, organization_id, action):
        raise NotAuthorized(f"Not allowed to {action} for organization {organization_id}.")
    if has_policies:
        try:
            policies.check(
                state.app, "before_checkout", organization_id=organization_id, request=request,
                action=action, **context,
            )
        except PolicyDenied as denied:
            raise NotAuthorized(denied.message, denied.code, denied.details) from denied
