"""The ``seat_billing`` blueprint: checkout, billing portal, and provider webhooks."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request

from .. import subscriptions
from ..checkout import AlreadySubscribed, UnknownPlan, plan_named, start_checkout
from ..errors import ProviderError
from ..keys import to_key
from ..state import get_state
from ..webhooks import polar_events, stripe_events
from ..webhooks.intake import WebhookRejected, read_body, require_secret
from .answers import form, go_to, problem
from .authorization import NotAuthorized, authorize
from .urls import UnsafeRedirect, absolute_same_host

log = logging.getLogger("flask_seat_billing.web")


def _organization(data: dict[str, Any]) -> Any:
    raw = data.get("organization_id")
    if raw in (None, ""):
        raise ValueError("organization_id is required.")
    try:
        return get_state().schema.parse_key(str(raw))
    except (TypeError, ValueError):
        raise ValueError(f"organization_id {raw!r} is not a valid organization id.") from None


def _redirect_target(data: dict[str, Any], name: str, default: str) -> str:
    return absolute_same_host(str(data.get(name) or default), request.host_url)


def checkout() -> Response:
    state = get_state()
    data = form()
    try:
        organization_id = _organization(data)
        plan = plan_named(state, data.get("plan"))
        success = _redirect_target(data, "success_url", "/?checkout=success")
        cancel = _redirect_target(data, "cancel_url", "/?checkout=canceled")
    except UnknownPlan as error:
        return problem(400, str(error), code="UNKNOWN_PLAN")
    except (ValueError, UnsafeRedirect) as error:
        return problem(400, str(error), code="BAD_REQUEST")
    try:
        authorize(state, organization_id, "checkout", plan=plan)
    except NotAuthorized as denied:
        return problem(403, denied.message, code=denied.code, details=denied.details)
    if state.provider.name == "stripe" and "{CHECKOUT_SESSION_ID}" not in success:
        success += ("&" if "?" in success else "?") + "session_id={CHECKOUT_SESSION_ID}"
    try:
        session = start_checkout(
            state, organization_id, plan, success_url=success, cancel_url=cancel,
            customer_email=data.get("email") or None,
        )
    except AlreadySubscribed as error:
        portal = f"{state.settings.url_prefix}/portal"
        return problem(409, str(error), code="ALREADY_SUBSCRIBED", portal=portal)
    except ProviderError as error:
        log.warning("checkout for organization %s failed: %s", organization_id, error.message)
        return problem(502, f"The billing provider could not start a checkout: {error.message}",
                       code="PROVIDER_ERROR")
    if not session.url:
        return problem(502, "The billing provider returned no checkout URL.", code="PROVIDER_ERROR")
    return go_to(session.url, id=session.id)


def portal() -> Response:
    state = get_state()
    data = form()
    try:
        organization_id = _organization(data)
        return_url = _redirect_target(data, "return_url", "/")
    except (ValueError, UnsafeRedirect) as error:
        return problem(400, str(error), code="BAD_REQUEST")
    try:
        authorize(state, organization_id, "portal")
    except NotAuthorized as denied:
        return problem(403, denied.message, code=denied.code, details=denied.details)
    if not state.provider.capabilities.billing_portal:
        return problem(501, f"{state.provider.name} offers no billing portal.",
                       code="NOT_SUPPORTED")
    with state.sql_engine().connect() as conn:
        customer = subscriptions.customer_for_organization(
            conn, state.tables, to_key(organization_id)
        )
    if customer is None:
        return problem(404, f"Organization {organization_id} has no billing account yet; "
                       "subscribe first.", code="NO_CUSTOMER")
    try:
        url = state.provider.create_portal(customer, return_url)
    except ProviderError as error:
        return problem(502, f"The billing provider could not open the portal: {error.message}",
                       code="PROVIDER_ERROR")
    return go_to(url)


def stripe_webhook() -> Response:
    state = get_state()
    settings = state.settings
    try:
        secret = require_secret(
            settings.stripe_webhook_secret, "SEAT_BILLING_STRIPE_WEBHOOK_SECRET", "Stripe"
        )
        body = read_body(settings.webhook_max_bytes)
        event = stripe_events.verify(
            body, request.headers.get("Stripe-Signature"), secret, settings.webhook_tolerance
        )
    except WebhookRejected as rejected:
        log.warning("Stripe webhook rejected: %s", rejected.message)
        return _json({"error": rejected.message}, rejected.status)
    try:
        outcome = stripe_events.handle(state, event)
    except Exception:
        log.exception("Stripe event %s (%s) failed; Stripe will retry", event["id"], event["type"])
        return _json({"error": "processing failed"}, 500)
    return _json({"received": True, "outcome": outcome}, 200)


def polar_webhook() -> Response:
    state = get_state()
    settings = state.settings
    try:
        secret = require_secret(
            settings.polar_webhook_secret, "SEAT_BILLING_POLAR_WEBHOOK_SECRET", "Polar"
        )
        body = read_body(settings.webhook_max_bytes)
        event_id, event = polar_events.verify(
            body, dict(request.headers), secret, settings.webhook_tolerance
        )
    except WebhookRejected as rejected:
        log.warning("Polar webhook rejected: %s", rejected.message)
        return _json({"error": rejected.message}, rejected.status)
    try:
        outcome = polar_events.handle(state, event_id, event)
    except Exception:
        log.exception("Polar event %s (%s) failed; Polar will retry", event_id, event["type"])
        return _json({"error": "processing failed"}, 500)
    return _json({"received": True, "outcome": outcome}, 202)


def _json(body: dict[str, Any], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def build_blueprint(url_prefix: str) -> Blueprint:
    """A fresh blueprint for one app (blueprints are never registered twice)."""
    blueprint = Blueprint("seat_billing", __name__, url_prefix=url_prefix or None)
    blueprint.add_url_rule("/checkout", view_func=checkout, methods=["POST"])
    blueprint.add_url_rule("/portal", view_func=portal, methods=["POST"])
    blueprint.add_url_rule("/webhooks/stripe", view_func=stripe_webhook, methods=["POST"])
    blueprint.add_url_rule("/webhooks/polar", view_func=polar_webhook, methods=["POST"])
    return blueprint
