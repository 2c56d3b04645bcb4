"""The HTTP client the Stripe SDK sends through: one pooled ``requests.Session`` per provider.

Left to itself, ``stripe.RequestsClient`` opens a ``requests.Session`` per thread. A threaded
WSGI server (werkzeug, gunicorn's gthread) runs each request on a thread of its own, so every
webhook or inline sync opened a new connection to Stripe (TCP and TLS handshakes) and left the
session behind. One session shared by all threads keeps the connections alive in one pool
(``urllib3`` is thread-safe; the SDK documents passing a ``session``).

``requests`` also reads the environment on every request (proxy variables, ``no_proxy``,
``~/.netrc``): a scan of ``os.environ`` and file lookups costing more CPU than a loopback
request. The environment is read here once, when the provider is built: the proxy that
``requests`` would choose for the API's address is passed to the SDK. ``~/.netrc`` is no longer
consulted; it could only have replaced the SDK's own ``Authorization`` header with another one.
"""

from __future__ import annotations

import requests
import requests.adapters
import requests.utils
import stripe

DEFAULT_API = "https://api.stripe.com"
POOL_SIZE = 32
"""Connections kept alive to the API; a thread finding all in use opens one more for itself."""


def environment_proxy(url: str) -> dict[str, str] | None:
    """The proxies ``requests`` takes from the environment for ``url`` (None: direct)."""
    proxies = requests.utils.get_environ_proxies(url)
    return {scheme: proxies[scheme] for scheme in ("http", "https") if scheme in proxies} or None


def http_client(api_root: str | None, timeout: float) -> stripe.RequestsClient:
    """A ``RequestsClient`` over one shared, pooled session that never reads the environment
    per request (see the module docstring)."""
    session = requests.Session()
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    proxy = environment_proxy(api_root or DEFAULT_API)
    return stripe.RequestsClient(timeout=timeout, session=session, proxy=proxy)  # type: ignore[arg-type]
