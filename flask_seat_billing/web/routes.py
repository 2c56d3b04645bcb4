"""The blueprints: ``seat_billing`` (checkout, billing portal) and ``seat_billing_webhooks``.

Webhooks have their own blueprint so that CSRF protection can exempt exactly them: checkout and
portal are form posts a browser makes and need a token; a provider's delivery carries a
signature instead. With Flask-WTF's ``CSRFProtect`` initialized before the extension,
:func:`register_blueprints` exempts the webhook blueprint itself.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from .. import subscriptions
from ..checkout import AlreadySubscribed, UnknownPlan, plan_named, start_checkout
from ..errors import ProviderError
from ..keys import to_key
from ..open_checkouts import CheckoutStillOpen
from ..providers import spec_for
from ..state import get_state
from ..webhooks import dispatch, queued
from ..webhooks.intake import WebhookRejected, read_body, require_secret
from . import inputs
from .answers import form, go_to, no_sniff, problem
from .authorization import NotAuthorized, authorize
from .urls import RedirectHostsNotConfigured, allowed_hosts, safe_redirect, trusted_base

log = logging.getLogger("flask_seat_billing.web")
WEBHOOKS_BLUEPRINT = "seat_billing_webhooks"


def _redirects(data: dict[str, Any], defaults: dict[str, str]) -> dict[str, str]:
    hosts = allowed_hosts(get_state().settings.allowed_redirect_hosts)
    base = trusted_base(hosts)
    return {
        name: safe_redirect(inputs.text(data, name, default), name, hosts, base)
        for name, default in defaults.items()
    }


def _bad_request(error: ValueError) -> Response:
    if isinstance(error, RedirectHostsNotConfigured):
        log.warning("billing redirect refused: %s", error)
        return problem(400, str(error), code="REDIRECT_HOSTS_NOT_CONFIGURED")
    return problem(400, str(error), code="BAD_REQUEST")


def checkout() -> Response:
    state = get_state()
    try:
        data = form()
        organization_id = inputs.organization(state, data)
        name = inputs.plan_name(data)
        email = inputs.email(data)
        urls = _redirects(data, {"success_url": "/?checkout=success",
                                 "cancel_url": "/?checkout=canceled"})
        plan = plan_named(state, name)
    except UnknownPlan:
        # Not checkout.py's message: it lists the configured plans, and this caller is not
        # authorized yet. Nor the name itself: errors never echo the request's values.
        return problem(400, "Unknown plan: the plan parameter names no configured plan.",
                       code="UNKNOWN_PLAN")
    except ValueError as error:
        return _bad_request(error)
    try:
        authorize(state, organization_id, "checkout", plan=plan)
    except NotAuthorized as denied:
        return problem(403, denied.message, code=denied.code, details=denied.details)
    try:
        session = start_checkout(
            state, organization_id, plan, success_url=urls["success_url"],
            cancel_url=urls["cancel_url"],
            customer_email=email,
        )
    except AlreadySubscribed as error:
        portal = f"{state.settings.url_prefix}/portal"
        return problem(409, str(error), code="ALREADY_SUBSCRIBED", portal=portal)
    except CheckoutStillOpen as still:
        until = still.expires_at.isoformat(timespec="seconds") + "Z" if still.expires_at else None
        return problem(409, str(still), code="CHECKOUT_STILL_OPEN", expires_at=until)
    except ProviderError as error:
        log.warning("checkout for organization %s failed: %s", organization_id, error.message)
        return problem(502, f"The billing provider could not start a checkout: {error.message}",
                       code="PROVIDER_ERROR")
    if not session.url:
        return problem(502, "The billing provider returned no checkout URL.", code="PROVIDER_ERROR")
    return go_to(session.url, id=session.id)


def portal() -> Response:
    state = get_state()
    try:
        data = form()
        organization_id = inputs.organization(state, data)
        return_url = _redirects(data, {"return_url": "/"})["return_url"]
    except ValueError as error:
        return _bad_request(error)
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


def webhook(provider: str) -> Response:
    """``POST <prefix>/webhooks/<provider>``: the provider's parser verifies and reads the
    delivery, the generic dispatcher acts on it. Only the app's own provider is served."""
    state = get_state()
    settings = state.settings
    if provider != settings.provider:
        return _json({"error": f"This app bills with {settings.provider}, not {provider}."}, 404)
    spec = spec_for(provider)
    name = provider.capitalize()
    own = settings.provider_settings
    try:
        secret = require_secret(own.webhook_secret, own.webhook_secret_key, name)
        body = read_body(settings.webhook_max_bytes)
        event = spec.parse_webhook(body, dict(request.headers), secret, settings.webhook_tolerance)
    except WebhookRejected as rejected:
        log.warning("%s webhook rejected: %s", name, rejected.message)
        return _json({"error": rejected.message}, rejected.status)
    try:
        if settings.webhook_processing == "queued":
            outcome = queued.accept(state, event)  # recorded; a Celery task processes it
        else:
            outcome = dispatch.handle(state, event)
    except Exception:
        log.exception("%s event %s (%s) failed; %s will retry", name, event.id, event.type, name)
        return _json({"error": "processing failed"}, 500)
    return _json({"received": True, "outcome": outcome}, spec.webhook_status)


def _json(body: dict[str, Any], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def _http_error(error: HTTPException) -> Response:
    """Werkzeug's own refusals (a body over ``MAX_CONTENT_LENGTH``, say) in the same shape; a
    server error (Flask's answer to an unhandled exception) is never labelled a bad request."""
    status = error.code or 500
    code = "BAD_REQUEST" if 400 <= status < 500 else "SERVER_ERROR"
    return problem(status, error.description or error.name, code=code)


def build_blueprints(url_prefix: str) -> tuple[Blueprint, Blueprint]:
    """Fresh blueprints for one app (blueprints are never registered twice)."""
    prefix = url_prefix or None
    billing = Blueprint("seat_billing", __name__, url_prefix=prefix)
    billing.add_url_rule("/checkout", view_func=checkout, methods=["POST"])
    billing.add_url_rule("/portal", view_func=portal, methods=["POST"])
    webhooks = Blueprint(WEBHOOKS_BLUEPRINT, __name__, url_prefix=prefix)
    webhooks.add_url_rule("/webhooks/<provider>", endpoint="webhook", view_func=webhook,
                          methods=["POST"])
    for blueprint in (billing, webhooks):
        blueprint.after_request(no_sniff)
        blueprint.register_error_handler(HTTPException, _http_error)
    return billing, webhooks


def register_blueprints(app: Flask, url_prefix: str) -> None:
    """Register both blueprints; exempt the webhooks from Flask-WTF's CSRF check if present."""
    billing, webhooks = build_blueprints(url_prefix)
    app.register_blueprint(billing)
    app.register_blueprint(webhooks)
    csrf = app.extensions.get("csrf")
    if csrf is not None and hasattr(csrf, "exempt"):
        csrf.exempt(webhooks)
