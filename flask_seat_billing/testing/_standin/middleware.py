"""WSGI middleware that applies queued faults and records every request.

Keeping this outside the provider apps means both stand-ins fail and record identically, and the
provider app only has to speak its API. The inner app communicates back through ``environ`` keys:

- ``standin.body`` (bytes) and ``standin.params`` (dict): the raw body, already read, and the
  parameters parsed by the provider's ``parse_params``; ``wsgi.input`` is re-wound for the app.
- the app may set ``standin.replayed`` (bool), ``standin.changed`` (bool) and
  ``standin.idempotency_key`` (str) so the recording says what really happened.
"""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .faults import Fault, FaultInjector
from .recording import RecordedRequest, RequestLog

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "ENV_BODY",
    "ENV_CHANGED",
    "ENV_IDEMPOTENCY_KEY",
    "ENV_PARAMS",
    "ENV_REPLAYED",
    "FaultAnswered",
    "FaultResponder",
    "ParamsParser",
    "StandInMiddleware",
    "default_fault_response",
]

ENV_BODY = "standin.body"
ENV_PARAMS = "standin.params"
ENV_REPLAYED = "standin.replayed"
ENV_CHANGED = "standin.changed"
ENV_IDEMPOTENCY_KEY = "standin.idempotency_key"

ParamsParser = Callable[["WSGIEnvironment", bytes], dict[str, Any]]
"""Turns (environ, raw body) into the request's parameters (form, JSON, query: provider's call)."""

FaultResponder = Callable[[Fault], tuple[int, dict[str, str], bytes]]
"""Builds (status, headers, body) for an injected error, in the provider's error format."""

FaultAnswered = Callable[[str, str, dict[str, Any], str, int, bytes], None]
"""Told (method, path, params, idempotency key, status, body) of an injected error that stands
for the endpoint's own failure (``fail``, an unapplied ``stall``; not a rate limit, not a
dropped connection), so that a provider which stores such answers by key can store it."""


def default_fault_response(fault: Fault) -> tuple[int, dict[str, str], bytes]:
    """A generic JSON error, for providers that do not supply their own format."""
    body = json.dumps({"error": f"injected fault: {fault.kind}", "status": fault.status})
    return fault.status, {"Content-Type": "application/json"}, body.encode()


def _json_or_query(environ: WSGIEnvironment, body: bytes) -> dict[str, Any]:
    if body and environ.get("CONTENT_TYPE", "").startswith("application/json"):
        try:
            loaded = json.loads(body)
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {"_body": loaded}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _headers(environ: WSGIEnvironment) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out[key[5:].replace("_", "-").lower()] = str(value)
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            out[key.replace("_", "-").lower()] = str(environ[key])
    return out


_Response = tuple[str, list[tuple[str, str]], bytes]


class StandInMiddleware:
    """Wrap a provider WSGI app with fault injection and request recording."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        log: RequestLog,
        faults: FaultInjector,
        parse_params: ParamsParser | None = None,
        fault_response: FaultResponder | None = None,
        idempotency_header: str | None = "idempotency-key",
        fault_answered: FaultAnswered | None = None,
    ) -> None:
        self.app = app
        self.fault_answered = fault_answered
        self.log = log
        self.faults = faults
        self.parse_params = parse_params or _json_or_query
        self.fault_response = fault_response or default_fault_response
        self.idempotency_header = idempotency_header

    def _run_app(self, environ: WSGIEnvironment) -> _Response:
        """Call the app and buffer its whole answer, so a fault can still withhold it."""
        captured: dict[str, Any] = {}
        chunks: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            captured["status"], captured["headers"] = status, headers
            return chunks.append

        result = self.app(environ, start_response)
        try:
            for chunk in result:
                chunks.append(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return captured["status"], list(captured["headers"]), b"".join(chunks)

    def _fault_answer(self, fault: Fault) -> _Response:
        status, headers, body = self.fault_response(fault)
        if fault.kind == "rate_limit":
            headers = {**headers, "Retry-After": _format_seconds(fault.retry_after)}
        phrase = {429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "Error")
        return f"{status} {phrase}", list(headers.items()), body

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", "/"))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ[ENV_BODY] = body
        params = self.parse_params(environ, body)
        environ[ENV_PARAMS] = params
        headers = _headers(environ)
        query = dict(parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True))
        at = time.time()
        if self.faults.latency:
            time.sleep(self.faults.latency)
        fault = self.faults.take(method, path)

        response: _Response | None = None
        applied = fault is None or (fault.apply and fault.kind in ("stall", "drop"))
        if applied:
            response = self._run_app(environ)
        if fault is not None:
            if fault.kind == "stall":
                time.sleep(fault.seconds)
            if fault.kind == "drop":
                response = None
            elif not applied:
                response = self._fault_answer(fault)

        key = environ.get(ENV_IDEMPOTENCY_KEY)
        if key is None and self.idempotency_header:
            key = headers.get(self.idempotency_header)
        status = 0 if response is None else int(response[0].split(" ", 1)[0])
        endpoint_error = (fault is not None and not applied and response is not None
                          and fault.kind in ("fail", "stall"))
        if endpoint_error and key and self.fault_answered is not None:
            assert response is not None
            self.fault_answered(method, path, params, str(key), status, response[2])
        self.log.append(
            RecordedRequest(
                method=method,
                path=path,
                params=params,
                headers=headers,
                status=status,
                idempotency_key=key,
                replayed=bool(environ.get(ENV_REPLAYED, False)),
                at=at,
                fault=None if fault is None else fault.kind,
                changed=applied and bool(environ.get(ENV_CHANGED, False)),
                query=query,
            )
        )
        if response is None:
            _drop_connection(environ)
            raise ConnectionAbortedError("connection dropped by fault injection")
        start_response(response[0], response[1])
        return [response[2]]


def _format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _drop_connection(environ: WSGIEnvironment) -> None:
    """Shut the socket down so the client sees the connection closed with no response at all.

    Raising a ``ConnectionError`` afterwards makes werkzeug treat it as a dropped connection
    instead of trying to send a 500 page.
    """
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
