"""Hosted pages: the checkout (with a Pay button) and the customer portal.

Real Polar sends customers to pages it hosts; an end-to-end test or the offline demo must be able
to follow the ``url`` of a checkout or ``customer_portal_url`` of a session with a browser or a
plain HTTP client and come back to the application's ``success_url``. These pages are deliberately
bare: one form per action, stable element ids (``pay``, ``cancel-<id>``, ``uncancel-<id>``).
"""

from __future__ import annotations

import html
from typing import Any

from werkzeug.wrappers import Response

from . import _errors as err
from . import _lifecycle as life
from ._http import Call, Route

__all__ = ["ROUTES"]

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}"
    "table{border-collapse:collapse}td,th{padding:.3rem .8rem;border-bottom:1px solid #ddd}"
    "button{padding:.5rem 1.2rem;font-size:1rem}.error{color:#b00020}"
)


def _page(title: str, body: str, status: int = 200) -> Response:
    document = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return Response(document, status=status, content_type="text/html; charset=utf-8")


def _money(cents: int, currency: str) -> str:
    return f"{cents / 100:,.2f} {currency.upper()}"


def _checkout_page(call: Call) -> Response:
    store = call.store
    with store.lock:
        checkout = store.checkouts.get(call.path_params["id"])
        if checkout is None:
            return _page("Checkout not found", "<p>This checkout does not exist.</p>", 404)
        product = store.products[checkout.product_id]
        amount = product.amount(checkout.seats)
        rows = f"<tr><th>Product</th><td>{html.escape(product.name)}</td></tr>"
        if checkout.seats is not None:
            rows += f"<tr><th>Seats</th><td id='seats'>{checkout.seats}</td></tr>"
        rows += f"<tr><th>Total</th><td id='amount'>{_money(amount, product.currency)}</td></tr>"
        if checkout.status != "open":
            return _page("Checkout", f"<table>{rows}</table><p id='status'>{checkout.status}</p>")
        form = (
            f"<form method='post' action='/checkout/{html.escape(checkout.id)}'>"
            "<button id='pay' type='submit'>Pay</button></form>"
        )
        return _page("Checkout", f"<table>{rows}</table>{form}")


def _pay(call: Call) -> Response:
    store = call.store
    with store.lock:
        checkout = store.checkouts.get(call.path_params["id"])
        if checkout is None:
            return _page("Checkout not found", "<p>This checkout does not exist.</p>", 404)
        try:
            life.complete_checkout(store, checkout)
        except err.PolarAPIError as exc:
            detail = html.escape(str(exc.body.get("detail", "")))
            return _page("Payment failed", f"<p class='error'>{detail}</p>", exc.status)
        call.changed = True
        target = checkout.success_url.replace("{CHECKOUT_ID}", checkout.id)
    return Response(status=303, headers={"Location": target})


def _confirmation(call: Call) -> Response:
    return _page("Thank you", "<p>Your subscription is active.</p>")


def _session_customer(call: Call, token: str | None) -> str | None:
    session = call.store.session_for_token(token) if token else None
    return None if session is None else session.customer_id


def _portal(call: Call) -> Response:
    token = call.args.get("customer_session_token")
    store = call.store
    with store.lock:
        customer_id = _session_customer(call, token)
        if customer_id is None:
            return _page("Session expired", "<p>Invalid or expired portal session.</p>", 401)
        customer = store.customers[customer_id]
        rows = ""
        for sub_id in store.subs_by_customer.get(customer_id, []):
            sub = store.subscriptions[sub_id]
            product = store.products[sub.product_id]
            action = ""
            if sub.ended_at is None:
                verb = "uncancel" if sub.cancel_at_period_end else "cancel"
                action = (
                    f"<form method='post' action='/portal/subscriptions/{sub.id}/{verb}'>"
                    f"<input type='hidden' name='customer_session_token' "
                    f"value='{html.escape(token or '')}'>"
                    f"<button id='{verb}-{sub.id}' type='submit'>{verb.title()}</button></form>"
                )
            state = sub.status + (" (cancels at period end)" if sub.cancel_at_period_end else "")
            rows += (
                f"<tr id='sub-{sub.id}'><td>{html.escape(product.name)}</td>"
                f"<td class='seats'>{sub.seats if sub.seats is not None else ''}</td>"
                f"<td>{html.escape(state)}</td>"
                f"<td>{_money(product.amount(sub.seats), product.currency)}</td>"
                f"<td>{action}</td></tr>"
            )
        back = ""
        session_id = store.sessions_by_token.get(token or "")
        session = store.sessions.get(session_id) if session_id else None
        if session is not None and session.return_url:
            back = f"<p><a id='return' href='{html.escape(session.return_url)}'>Back</a></p>"
        table = (
            "<table><tr><th>Product</th><th>Seats</th><th>Status</th><th>Amount</th><th></th></tr>"
            f"{rows}</table>"
        )
        return _page(f"Billing for {customer.email}", table + back)


def _portal_action(call: Call) -> Response:
    form: Any = call.request.form
    token = form.get("customer_session_token")
    store = call.store
    with store.lock:
        customer_id = _session_customer(call, token)
        sub = store.subscriptions.get(call.path_params["id"])
        if customer_id is None or sub is None or sub.customer_id != customer_id:
            return _page("Not allowed", "<p>Invalid portal session.</p>", 403)
        try:
            if call.path_params["action"] == "cancel":
                life.cancel(store, sub)
            elif call.path_params["action"] == "uncancel":
                life.uncancel(store, sub)
            else:
                return _page("Not found", "<p>Unknown action.</p>", 404)
        except err.PolarAPIError as exc:
            detail = html.escape(str(exc.body.get("detail", "")))
            return _page("Not allowed", f"<p class='error'>{detail}</p>", exc.status)
        call.changed = True
    return Response(status=303, headers={"Location": f"/portal?customer_session_token={token}"})


ROUTES = [
    Route("GET", "/checkout/{id}", _checkout_page, auth=False),
    Route("POST", "/checkout/{id}", _pay, auth=False),
    Route("GET", "/checkout/{id}/confirmation", _confirmation, auth=False),
    Route("GET", "/portal", _portal, auth=False),
    Route("POST", "/portal/subscriptions/{id}/{action}", _portal_action, auth=False),
]
