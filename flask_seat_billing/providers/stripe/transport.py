"""The HTTP client the Stripe SDK sends through: one ``urllib3`` pool per provider.

Left to itself, ``stripe.RequestsClient`` opens a ``requests.Session`` per thread. A threaded
WSGI server (werkzeug, gunicorn's gthread) runs each request on a thread of its own, so every
webhook or inline sync opened a new connection to Stripe (TCP and TLS handshakes) and left the
session behind. ``requests`` also reads the environment on every request (proxy variables,
``no_proxy``, ``~/.netrc``) and builds cookie jars and hooks nobody uses here: about 0.6-0.9 ms
of CPU per request against 0.4 ms for ``urllib3``, which ``requests`` itself sends through
(measured on loopback, see docs/benchmarks.md, issue 16, "Webhooks").

:class:`PooledClient` is a ``stripe.HTTPClient`` (the SDK's documented extension point) over one
thread-safe ``urllib3`` pool shared by every thread. The environment's proxy is read once, when
the provider is built, for the API's address. It raises what the SDK's own clients raise:
``APIConnectionError``, retryable for a timeout or a failed or dropped connection (the SDK then
retries, with the same idempotency key on a write), final for a TLS failure.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from typing import Any, NoReturn
from urllib.parse import unquote

import requests.utils
import stripe
import urllib3
import urllib3.exceptions

DEFAULT_API = "https://api.stripe.com"
POOL_SIZE = 32
"""Connections kept alive per host; a thread finding all in use opens one more for itself."""


def environment_proxy(url: str) -> str | None:
    """The proxy ``requests`` would take from the environment for ``url`` (None: direct),
    with ``http://`` added to a value that names no scheme, as ``requests`` does."""
    proxies = requests.utils.get_environ_proxies(url)
    scheme = url.split(":", 1)[0].lower()
    proxy = proxies.get(scheme) or proxies.get("all")
    return requests.utils.prepend_scheme_if_needed(proxy, "http") if proxy else None


def _proxy_manager(proxy: str, options: dict[str, Any]) -> urllib3.PoolManager:
    """A pool through ``proxy``; its ``user:password@`` becomes the ``Proxy-Authorization``
    header (``urllib3`` ignores credentials in the URL, ``requests`` sends them)."""
    parsed = urllib3.util.parse_url(proxy)
    headers = None
    if parsed.auth:
        headers = urllib3.make_headers(proxy_basic_auth=unquote(parsed.auth))
        proxy = parsed._replace(auth=None).url
    return urllib3.ProxyManager(proxy, proxy_headers=headers, **options)


class PooledClient(stripe.HTTPClient):
    """Requests to Stripe over one shared ``urllib3`` pool (see the module docstring)."""

    name = "urllib3"

    def __init__(self, timeout: float, proxy: str | None = None) -> None:
        super().__init__(verify_ssl_certs=True)
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._proxy_url = proxy
        self._pid = os.getpid()
        self._pool = self._new_pool()

    def _new_pool(self) -> urllib3.PoolManager:
        options: dict[str, Any] = {
            "maxsize": POOL_SIZE, "cert_reqs": "CERT_REQUIRED", "ca_certs": stripe.ca_bundle_path,
        }
        if self._proxy_url:
            return _proxy_manager(self._proxy_url, options)
        return urllib3.PoolManager(**options)

    def _own_pool(self) -> urllib3.PoolManager:
        """The pool of this process: a server that forks its workers after building the app
        (gunicorn ``--preload``) must not share a connection between two processes."""
        if self._pid != os.getpid():
            self._pool, self._pid = self._new_pool(), os.getpid()
        return self._pool

    def request(
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None,
        *, _usage: list[str] | None = None,
    ) -> tuple[Any, int, Mapping[str, str]]:
        response = self._send(method, url, headers, post_data, stream=False)
        return response.data, response.status, response.headers

    def request_stream(
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None,
        *, _usage: list[str] | None = None,
    ) -> tuple[Any, int, Mapping[str, str]]:
        response = self._send(method, url, headers, post_data, stream=True)
        return response, response.status, response.headers

    def _send(
        self, method: str, url: str, headers: Mapping[str, str] | None, body: Any, stream: bool
    ) -> urllib3.BaseHTTPResponse:
        try:
            return self._own_pool().request(
                method.upper(), url, body=body, headers=dict(headers or {}),
                timeout=self._timeout, retries=False, redirect=False,
                preload_content=not stream,
            )
        except Exception as error:
            self._raise_connection_error(error)

    def _raise_connection_error(self, error: Exception) -> NoReturn:
        if isinstance(error, urllib3.exceptions.SSLError):
            retry, message = False, (
                "Could not verify Stripe's SSL certificate. Please make sure that your network "
                "is not intercepting certificates.")
        elif isinstance(error, (urllib3.exceptions.TimeoutError,
                                urllib3.exceptions.NewConnectionError,
                                urllib3.exceptions.ProtocolError,
                                urllib3.exceptions.ProxyError,
                                ConnectionError, TimeoutError)):
            retry, message = True, "Unexpected error communicating with Stripe."
        else:
            retry, message = False, "Unexpected error communicating with Stripe."
        detail = f"{type(error).__name__}: {error}"
        raise stripe.APIConnectionError(  # type: ignore[no-untyped-call]
            textwrap.fill(message) + f"\n\n(Network error: {detail})", should_retry=retry
        ) from error

    def close(self) -> None:
        self._pool.clear()


def http_client(api_root: str | None, timeout: float) -> stripe.HTTPClient:
    """The client a :class:`~.client.StripeProvider` sends through: the pooled one, or the
    SDK's ``RequestsClient`` behind a SOCKS proxy (``requests`` speaks SOCKS through PySocks,
    the pool does not)."""
    proxy = environment_proxy(api_root or DEFAULT_API)
    if proxy and proxy.lower().startswith("socks"):
        return stripe.RequestsClient(timeout=timeout)
    return PooledClient(timeout, proxy=proxy)
