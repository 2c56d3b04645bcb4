"""The WSGI app: authentication, routing, parameter checks, idempotency, Stripe's error format.

Order of checks mirrors Stripe: authentication (401), unknown URL (404), idempotency key
(replay or ``idempotency_error``), unknown parameters (400), then the endpoint itself. The state
lock is held for the whole of one request, so every request is atomic.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import stripe.params as sp
import stripe.params.billing_portal as bp
import stripe.params.checkout as cp
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .._standin import ENV_CHANGED, ENV_IDEMPOTENCY_KEY, ENV_PARAMS, ENV_REPLAYED
from . import handlers as h
from .errors import StripeError
from .forms import decode_form
from .pages import handle_page
from .render import expand
from .state import API_VERSION, RequestContext, StripeState
from .validation import check_params

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["StripeApp", "parse_params"]

# (path, method, handler, parameter TypedDict, changes state)
W, R = True, False  # whether the endpoint changes state
_ROUTES: list[tuple[str, str, h.Handler, type | None, bool]] = [
    ("/v1/customers", "POST", h.customers_create, sp.CustomerCreateParams, W),
    ("/v1/customers", "GET", h.customers_list, sp.CustomerListParams, R),
    ("/v1/customers/<id>", "GET", h.customers_retrieve, sp.CustomerRetrieveParams, R),
    ("/v1/customers/<id>", "POST", h.customers_update, sp.CustomerUpdateParams, W),
    ("/v1/products", "POST", h.products_create, sp.ProductCreateParams, W),
    ("/v1/products", "GET", h.products_list, sp.ProductListParams, R),
    ("/v1/products/<id>", "GET", h.products_retrieve, sp.ProductRetrieveParams, R),
    ("/v1/prices", "POST", h.prices_create, sp.PriceCreateParams, W),
    ("/v1/prices", "GET", h.prices_list, sp.PriceListParams, R),
    ("/v1/prices/<id>", "GET", h.prices_retrieve, sp.PriceRetrieveParams, R),
    ("/v1/subscriptions", "POST", h.subscriptions_create, sp.SubscriptionCreateParams, W),
    ("/v1/subscriptions", "GET", h.subscriptions_list, sp.SubscriptionListParams, R),
    ("/v1/subscriptions/<id>", "GET", h.subscriptions_retrieve, sp.SubscriptionRetrieveParams, R),
    ("/v1/subscriptions/<id>", "POST", h.subscriptions_update, sp.SubscriptionUpdateParams, W),
    ("/v1/subscriptions/<id>", "DELETE", h.subscriptions_cancel, sp.SubscriptionCancelParams, W),
    ("/v1/subscriptions/<id>/pause", "POST", h.subscriptions_pause, sp.SubscriptionPauseParams, W),
    (
        "/v1/subscriptions/<id>/resume",
        "POST",
        h.subscriptions_resume,
        sp.SubscriptionResumeParams,
        W,
    ),
    ("/v1/subscription_items", "GET", h.items_list, sp.SubscriptionItemListParams, R),
    ("/v1/subscription_items/<id>", "GET", h.items_retrieve, sp.SubscriptionItemRetrieveParams, R),
    ("/v1/subscription_items/<id>", "POST", h.items_update, sp.SubscriptionItemUpdateParams, W),
    ("/v1/invoiceitems", "GET", h.invoice_items_list, sp.InvoiceItemListParams, R),
    ("/v1/invoices", "GET", h.invoices_list, sp.InvoiceListParams, R),
    ("/v1/invoices/create_preview", "POST", h.invoices_preview, sp.InvoiceCreatePreviewParams, R),
    ("/v1/invoices/<id>", "GET", h.invoices_retrieve, sp.InvoiceRetrieveParams, R),
    ("/v1/invoices/<id>/lines", "GET", h.invoice_lines_list, sp.InvoiceLineItemListParams, R),
    ("/v1/checkout/sessions", "POST", h.checkout_create, cp.SessionCreateParams, W),
    ("/v1/checkout/sessions", "GET", h.checkout_list, cp.SessionListParams, R),
    ("/v1/checkout/sessions/<id>", "GET", h.checkout_retrieve, cp.SessionRetrieveParams, R),
    ("/v1/checkout/sessions/<id>/expire", "POST", h.checkout_expire, cp.SessionExpireParams, W),
    ("/v1/billing_portal/sessions", "POST", h.portal_create, bp.SessionCreateParams, W),
    ("/v1/events", "GET", h.events_list, sp.EventListParams, R),
    ("/v1/events/<id>", "GET", h.events_retrieve, sp.EventRetrieveParams, R),
]


def parse_params(environ: WSGIEnvironment, body: bytes) -> dict[str, Any]:
    """GET/DELETE parameters come in the query string, POST parameters in the form body."""
    if str(environ.get("REQUEST_METHOD", "GET")).upper() == "POST":
        return decode_form(body.decode("utf-8", "replace"))
    return decode_form(str(environ.get("QUERY_STRING", "")))


def _fingerprint(method: str, path: str, params: dict[str, Any]) -> str:
    raw = json.dumps([method, path, params], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def _authorized(request: Request) -> StripeError | None:
    header = request.headers.get("Authorization", "")
    if not header:
        return StripeError(
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth "
            "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            status=401,
        )
    key = header[7:] if header.startswith("Bearer ") else ""
    if not key.startswith(("sk_test_", "rk_test_")):
        shown = (key[:8] + "*" * 4 + key[-4:]) if len(key) > 12 else key
        return StripeError(f"Invalid API Key provided: {shown}", status=401)
    return None


UNSTORED = frozenset({409, 429})
"""Answers Stripe never stores under an idempotency key: conflicts and rate limits."""


class StripeApp:
    """WSGI app serving ``/v1/...`` (JSON API) and the hosted pages (HTML)."""

    def __init__(self, state: StripeState) -> None:
        self.state = state
        self.routes = {f"{path}|{method}": (fn, td, bool(w)) for path, method, fn, td, w in _ROUTES}
        self.url_map = Map(
            [
                Rule(path, methods=[method], endpoint=f"{path}|{method}")
                for path, method, *_ in _ROUTES
            ]
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith("/v1/"):
            response = self._api(request, environ)
        else:
            response = handle_page(self.state, request)
        return response(environ, start_response)

    def _json(
        self, status: int, body: bytes, request_id: str, key: str | None, replayed: bool = False
    ) -> Response:
        response = Response(body, status=status, content_type="application/json")
        response.headers["Request-Id"] = request_id
        response.headers["Stripe-Version"] = API_VERSION
        if key:
            response.headers["Idempotency-Key"] = key
        if replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return response

    def _api(self, request: Request, environ: WSGIEnvironment) -> Response:
        request_id = "req_" + secrets.token_hex(7)
        key = request.headers.get("Idempotency-Key") or None
        environ[ENV_IDEMPOTENCY_KEY] = key
        params: dict[str, Any] = environ.get(ENV_PARAMS) or {}
        error = _authorized(request)
        if error is not None:
            return self._json(error.status, json.dumps(error.body()).encode(), request_id, key)
        try:
            endpoint, args = self.url_map.bind_to_environ(environ).match()
        except HTTPException:
            error = StripeError(
                f"Unrecognized request URL ({request.method}: {request.path}). Please see "
                "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                status=404,
            )
            return self._json(404, json.dumps(error.body()).encode(), request_id, key)
        handler, schema, writes = self.routes[str(endpoint)]
        base_url = request.host_url.rstrip("/")
        with self.state.lock:
            fingerprint = _fingerprint(request.method, request.path, params)
            if key and request.method == "POST":
                stored = self.state.idempotency.get(key)
                if stored is not None:
                    if stored[0] != fingerprint:
                        error = StripeError(
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with. Try using a key other than "
                            f"'{key}' if you meant to execute a different request.",
                            type="idempotency_error",
                        )
                        return self._json(400, json.dumps(error.body()).encode(), request_id, key)
                    environ[ENV_REPLAYED] = True
                    return self._json(stored[1], stored[2], request_id, key, replayed=True)
            status, body, executed = self._execute(
                handler, schema, params, dict(args), base_url, request_id, key
            )
            if writes and status == 200:
                environ[ENV_CHANGED] = True
            if key and request.method == "POST" and executed and status not in UNSTORED:
                # Stripe stores the first answer once the endpoint began executing, errors
                # included (a 500, a resource_missing, a card_declined), and replays it to every
                # request with the key for ~24 hours; a request refused before (parameter
                # validation, a concurrent request's lock, a rate limit) stores nothing.
                self.state.idempotency[key] = (fingerprint, status, body)
        return self._json(status, body, request_id, key)

    def store_answer(
        self, method: str, path: str, params: dict[str, Any], key: str, status: int, body: bytes
    ) -> None:
        """Store an injected endpoint failure (the middleware's ``fault_answered``) like one
        the endpoint raised itself, unless the key already holds an answer."""
        if method.upper() != "POST" or status in UNSTORED:
            return
        with self.state.lock:
            self.state.idempotency.setdefault(
                key, (_fingerprint(method.upper(), path, params), status, body))

    def _execute(
        self,
        handler: h.Handler,
        schema: type | None,
        params: dict[str, Any],
        args: dict[str, Any],
        base_url: str,
        request_id: str,
        key: str | None,
    ) -> tuple[int, bytes, bool]:
        """(status, body, whether the endpoint began executing: parameters were valid)."""
        self.state.request = RequestContext(request_id, key)
        executed = False
        try:
            check_params(params, schema)
            executed = True
            result = handler(h.Api(self.state, base_url), params, **args)
            body = expand(self.state, json.loads(json.dumps(result)), params.get("expand"))
            return 200, json.dumps(body).encode(), executed
        except StripeError as exc:
            return exc.status, json.dumps(exc.body(request_id)).encode(), executed
        finally:
            self.state.request = RequestContext()
