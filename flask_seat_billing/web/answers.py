"""Answer a browser with a redirect and a script with JSON, from the same route."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request


def wants_json() -> bool:
    """True when the client sent JSON or prefers a JSON answer."""
    if request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes[
        "text/html"
    ]


def form() -> dict[str, Any]:
    """The request's parameters, from JSON or a form."""
    if request.is_json:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}
    return request.form.to_dict()


def go_to(url: str, **extra: Any) -> Response:
    """303 to ``url`` for a browser, ``{"url": ...}`` for a script."""
    if wants_json():
        return jsonify({"url": url, **extra})
    # 303 so the browser follows with a GET whatever the form's method was.
    return Response(status=303, headers={"Location": url})


def problem(status: int, message: str, **details: Any) -> Response:
    """An error a person can read: JSON ``{"error": message, ...}`` or plain text."""
    if wants_json():
        response = jsonify({"error": message, **details})
    else:
        response = Response(message + "\n", mimetype="text/plain")
    response.status_code = status
    return response
