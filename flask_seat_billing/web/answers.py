"""Answer a browser with a redirect and a script with JSON, from the same route.

Error answers never let a browser guess their type (``X-Content-Type-Options: nosniff``, set by
the blueprints on every answer), are JSON for JSON clients, and never echo the request's values.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, jsonify, request


class BadBody(ValueError):
    """The request body cannot be read or is not what the route takes."""


def wants_json() -> bool:
    """True when the client sent JSON or prefers a JSON answer."""
    if request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes[
        "text/html"
    ]


def form() -> dict[str, Any]:
    """The request's parameters, from a JSON object or a form; :class:`BadBody` otherwise.

    JSON is parsed here rather than by ``request.get_json``: deeply nested JSON raises
    ``RecursionError``, which Flask does not turn into a 400. A broken chunked body makes the
    WSGI server's input raise ``OSError`` while it is read.
    """
    try:
        if request.is_json:
            raw = request.get_data(cache=True)
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError):
                raise BadBody("The request body is not valid JSON.") from None
            if not isinstance(data, dict):
                raise BadBody("The JSON body must be an object.")
            return data
        return request.form.to_dict()
    except OSError:
        raise BadBody("The request body could not be read.") from None


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
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def no_sniff(response: Response) -> Response:
    """``after_request`` of the blueprints: no answer of theirs is content-sniffed."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response
