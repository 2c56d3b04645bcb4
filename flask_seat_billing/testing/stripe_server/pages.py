"""Hosted pages: the stand-in's Checkout and customer portal, for demos in a real browser.

They are deliberately plain (one inline stylesheet, no JavaScript) but complete: the Pay button
(``id="pay"``) completes the session exactly like ``StripeStandIn.complete_checkout`` and
redirects to ``success_url`` with ``{CHECKOUT_SESSION_ID}`` filled in, as Stripe does.
"""

from __future__ import annotations

from html import escape
from typing import Any

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from .._standin import ENV_CHANGED
from .checkout import complete_session
from .errors import StripeError
from .state import RequestContext, StripeState

__all__ = ["handle_page"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;background:#f6f9fc;color:#1a1f36;
margin:0;padding:48px 16px}
main{max-width:520px;margin:0 auto;background:#fff;border-radius:12px;padding:32px;
box-shadow:0 2px 12px rgba(50,50,93,.12)}
h1{font-size:20px;margin:0 0 4px}p.muted{color:#697386;margin:0 0 24px;font-size:14px}
table{width:100%;border-collapse:collapse;font-size:15px}
td{padding:10px 0;border-bottom:1px solid #e3e8ee}td.num{text-align:right}
tr.total td{font-weight:600;border-bottom:none;padding-top:16px}
button,a.button{display:block;width:100%;margin-top:24px;padding:12px;border:0;border-radius:6px;
background:#635bff;color:#fff;font-size:16px;text-align:center;text-decoration:none;cursor:pointer}
a.secondary{display:block;margin-top:12px;text-align:center;color:#635bff;font-size:14px}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;background:#e3e8ee;font-size:12px}
.error{background:#fde8e8;color:#9b1c1c;padding:10px;border-radius:6px;margin-bottom:16px}
"""


def _money(amount: int, currency: str) -> str:
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount) / 100:,.2f} {currency.upper()}"


def _page(title: str, body: str, status: int = 200) -> Response:
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        '</title><meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<style>{_CSS}</style></head><body><main>{body}</main></body></html>"
    )
    return Response(html, status=status, content_type="text/html; charset=utf-8")


def _interval(price: dict[str, Any]) -> str:
    rec = price.get("recurring")
    if not rec:
        return ""
    count = rec["interval_count"]
    return f" / {rec['interval']}" if count == 1 else f" / {count} {rec['interval']}s"


def _checkout(state: StripeState, session_id: str, error: str | None = None) -> Response:
    session = state.checkout_sessions.get(session_id)
    if session is None:
        return _page("Not found", "<h1>This checkout session does not exist.</h1>", 404)
    private = state.checkout_private.get(session_id, {})
    rows = "".join(
        f"<tr><td>{escape(li['description'])} × {li['quantity']}</td>"
        f'<td class="num">{_money(li["amount_total"], li["currency"])}'
        f"{escape(_interval(li['price']))}</td></tr>"
        for li in private.get("line_items_rendered", [])
    )
    total = _money(int(session["amount_total"]), str(session["currency"]))
    rows += f'<tr class="total"><td>Total due today</td><td class="num">{total}</td></tr>'
    trial = private.get("trial_days")
    note = f"<p class='muted'>Includes a {trial}-day free trial.</p>" if trial else ""
    who = escape(str(session.get("customer_email") or session.get("customer") or "new customer"))
    body = f"<h1>Subscribe</h1><p class='muted'>Test mode checkout for {who}</p>"
    if error:
        body += f'<div class="error">{escape(error)}</div>'
    body += f"<table>{rows}</table>{note}"
    if session["status"] == "open":
        body += (
            f'<form method="post" action="/checkout/{escape(session_id)}/pay">'
            '<button id="pay" type="submit">Pay</button></form>'
        )
        if session.get("cancel_url"):
            cancel = escape(session["cancel_url"])
            body += f'<a class="secondary" id="cancel" href="{cancel}">Cancel</a>'
    else:
        body += f'<p><span class="badge">{escape(session["status"])}</span></p>'
    return _page("Checkout", body)


def _pay(state: StripeState, request: Request, session_id: str) -> Response:
    state.request = RequestContext()
    try:
        session = complete_session(state, session_id)
    except StripeError as exc:
        return _checkout(state, session_id, exc.message)
    request.environ[ENV_CHANGED] = True
    target = session.get("success_url")
    if not target:
        return _page(
            "Paid", "<h1>Payment complete</h1><p class='muted'>You can close this page.</p>"
        )
    return redirect(str(target).replace("{CHECKOUT_SESSION_ID}", session_id), code=303)


def _portal(state: StripeState, session_id: str) -> Response:
    session = state.portal_sessions.get(session_id)
    if session is None:
        return _page("Not found", "<h1>This portal session does not exist.</h1>", 404)
    customer = state.customers.objects.get(session["customer"], {})
    rows = ""
    for sub_id in reversed(state.subs_by_customer.get(session["customer"], [])):
        sub = state.subscriptions.objects[sub_id]
        items = ", ".join(
            f"{escape(state.product_name(str(i['price']['product'])))} × {i['quantity']}"
            for i in sub["items"]["data"]
        )
        rows += (
            f"<tr><td>{items or '(no items)'}<br><small>{escape(sub_id)}</small></td>"
            f'<td class="num"><span class="badge">{escape(sub["status"])}</span></td></tr>'
        )
    rows = rows or "<tr><td>No subscriptions.</td><td></td></tr>"
    who = escape(str(customer.get("email") or customer.get("name") or session["customer"]))
    body = f"<h1>Billing</h1><p class='muted'>{who}</p><table>{rows}</table>"
    if session.get("return_url"):
        body += f'<a class="button" id="return" href="{escape(session["return_url"])}">Return</a>'
    return _page("Billing portal", body)


def handle_page(state: StripeState, request: Request) -> Response:
    """Serve ``GET /checkout/{id}``, ``POST /checkout/{id}/pay`` and ``GET /portal/{id}``."""
    parts = [p for p in request.path.split("/") if p]
    with state.lock:
        if len(parts) == 2 and parts[0] == "checkout" and request.method == "GET":
            return _checkout(state, parts[1])
        if len(parts) == 3 and parts[0] == "checkout" and parts[2] == "pay":
            if request.method != "POST":
                return redirect(f"/checkout/{parts[1]}", code=303)
            return _pay(state, request, parts[1])
        if len(parts) == 2 and parts[0] == "portal" and request.method == "GET":
            return _portal(state, parts[1])
    return _page("Not found", "<h1>Not found</h1>", 404)
