"""The WSGI side of the stand-in: routing, bearer-token auth, JSON bodies and error answers.

Kept apart from the endpoint handlers so each handler is a small function of a :class:`Call`
returning ``(status, json)``; refusals are raised as :class:`~._errors.PolarAPIError` and turned
into Polar-shaped answers here, and a successful write marks the request as ``changed`` for the
shared request recording (``requests`` / ``writes()``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response

from .._standin.middleware import ENV_BODY, ENV_CHANGED
from . import _errors as err
from ._store import PolarStore

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["Call", "Handler", "IntegerRetryAfter", "PolarApp", "Route", "json_response"]

JSON = dict[str, Any]


@dataclass
class Call:
    """One request as a handler sees it."""

    store: PolarStore
    request: Request
    path_params: dict[str, str]
    base_url: str
    changed: bool = False

    @property
    def args(self) -> MultiDict[str, str]:
        """Query parameters, repeated keys preserved (the SDK sends lists that way)."""
        return self.request.args

    def body(self) -> JSON:
        """The JSON body as an object, or a 422 like FastAPI's for anything else."""
        raw = self.request.environ.get(ENV_BODY)
        if not isinstance(raw, bytes):
            raw = self.request.get_data()
        if not raw:
            raise err.validation_error(["body"], "Field required", "missing")
        try:
            value = json.loads(raw)
        except ValueError:
            raise err.validation_error(["body", 0], "JSON decode error", "json_invalid") from None
        if not isinstance(value, dict):
            raise err.validation_error(
                ["body"], "Input should be a valid dictionary", "dict_type", value
            )
        return value


Handler = Callable[[Call], "tuple[int, Any] | Response"]


@dataclass(frozen=True)
class Route:
    """``pattern`` uses ``{name}`` placeholders for one path segment each."""

    method: str
    pattern: str
    handler: Handler
    auth: bool = True

    def compile(self) -> re.Pattern[str]:
        """The pattern as an anchored regex with named groups."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.pattern)
        return re.compile(f"^{regex}$")


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON answer."""
    return Response(
        json.dumps(body, separators=(",", ":")),
        status=status,
        headers=headers,
        content_type="application/json",
    )


class PolarApp:
    """WSGI application dispatching to the stand-in's handlers."""

    def __init__(
        self,
        store: PolarStore,
        routes: Iterable[Route],
        token_ok: Callable[[str], bool],
    ) -> None:
        self.store = store
        self.token_ok = token_ok
        self.routes = [(r, r.compile()) for r in routes]

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and bool(token.strip()) and self.token_ok(token.strip())

    def _dispatch(self, request: Request) -> tuple[Response, bool]:
        path = request.path
        base_url = request.host_url.rstrip("/")
        allowed: list[str] = []
        for route, regex in self.routes:
            match = regex.match(path)
            if match is None:
                continue
            if route.method != request.method:
                allowed.append(route.method)
                continue
            if route.auth and not self._authorized(request):
                raise err.unauthorized()
            call = Call(self.store, request, match.groupdict(), base_url)
            result = route.handler(call)
            if isinstance(result, Response):
                return result, call.changed
            status, body = result
            return json_response(status, body), call.changed
        if allowed:
            return json_response(405, {"detail": "Method Not Allowed"}), False
        if not path.endswith("/") and any(r.match(path + "/") for _, r in self.routes):
            # FastAPI redirects a collection path missing its trailing slash.
            query = request.query_string.decode()
            target = path + "/" + (f"?{query}" if query else "")
            return Response(status=307, headers={"Location": target}), False
        return json_response(404, {"detail": "Not Found"}), False

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response, changed = self._dispatch(request)
        except err.PolarAPIError as exc:
            response, changed = json_response(exc.status, exc.body, exc.headers), False
        environ[ENV_CHANGED] = changed
        return response(environ, start_response)


class IntegerRetryAfter:
    """Round ``Retry-After`` up to whole seconds on the way out.

    Polar sends integer seconds and the SDK parses the header with ``int()``: an injected
    ``rate_limit_next(retry_after=0.5)`` must not crash the SDK with a ``ValueError`` that Polar
    itself could never cause.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def patched(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            fixed = [
                (name, _ceil_seconds(value) if name.lower() == "retry-after" else value)
                for name, value in headers
            ]
            return start_response(status, fixed, exc_info)

        return self.app(environ, patched)


def _ceil_seconds(value: str) -> str:
    try:
        return str(max(0, math.ceil(float(value))))
    except ValueError:
        return value
