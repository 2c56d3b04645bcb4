"""Shared machinery for the provider stand-ins (Stripe, Polar). Internal but stable API.

- ``StandInServer(app, host="127.0.0.1", port=0)``: threaded werkzeug server in a daemon thread;
  ``.url``, ``.start()`` (returns self), ``.stop()``, context manager.
- ``RecordedRequest`` (frozen): ``method, path, params, headers`` (lower-case names), ``status``
  (0 = dropped), ``idempotency_key, replayed, at``, plus ``fault`` (kind or None), ``changed``,
  ``query``. ``RequestLog``: thread-safe; ``all()``, ``requests_to(method=None,
  path_prefix=None)``, ``writes()``, ``clear()``, ``len()``, iteration, indexing.
- ``FaultInjector``: ``fail_next(n, status=500, path_prefix=None, method=None)``,
  ``rate_limit_next(n, retry_after=1.0, ...)``, ``stall_next(n, seconds, apply=True, ...,
  status=500)``, ``drop_next(n, apply=False, ...)``, ``set_latency(seconds)`` (every answer
  that much later; not cleared by ``clear()``), ``clear()``, ``pending()``,
  ``take(method, path)``. Counts go down per matching request.
- ``StandInMiddleware(app, log=, faults=, parse_params=, fault_response=, idempotency_header=)``:
  applies faults, records. Environ contract: it sets ``ENV_BODY``/``ENV_PARAMS``; the app may set
  ``ENV_REPLAYED``, ``ENV_CHANGED`` (True when state changed; drives ``writes()``) and
  ``ENV_IDEMPOTENCY_KEY``. ``fault_response(fault) -> (status, headers, body)`` gives the
  provider's error format (``Retry-After`` is added for rate limits).
- ``WebhookDispatcher(signer)``: ``add_webhook_endpoint(url, secret, events=None)``,
  ``remove_webhook_endpoint(id_or_url)``, ``add_event(event_id, type, payload)`` (payload is the
  JSON body POSTed), ``event(id)``, ``events(type=None)``, ``pending()``, ``deliveries()``,
  ``deliver_pending(times=1, order="sequential"|"reversed"|"shuffled", seed=None, delay=0.0)``,
  ``deliver(event_id, signature="valid"|"bad"|"missing", timestamp_offset=0, endpoint=None)``,
  ``auto_deliver`` / ``set_auto_deliver(enabled, delay=None)``, ``wait_idle(timeout)``,
  ``reset()``, ``close()``. Returns ``Delivery(event_id, attempt, status_code, endpoint_url,
  event_type, error)``. A ``WebhookSigner`` is ``signer(body, secret, timestamp, *, event_id)
  -> dict of headers``.
- ``BaseStandIn(app, *, signer, parse_params=None, fault_response=None,
  idempotency_header="idempotency-key")``: wires all of the above; attributes ``requests``,
  ``faults``, ``webhooks``, ``server``; ``url``, ``start()``, ``stop()``, context manager,
  ``writes()``, ``add_webhook_endpoint``, ``deliver_pending``, ``deliver``, ``auto_deliver``.
- ``ProviderStandIn`` (abstract, a ``BaseStandIn``): the one interface of every provider
  stand-in, ``StandInCapabilities`` what its provider can do (see ``provider.py``).
"""

from .base import BaseStandIn
from .faults import Fault, FaultInjector
from .middleware import (
    ENV_BODY,
    ENV_CHANGED,
    ENV_IDEMPOTENCY_KEY,
    ENV_PARAMS,
    ENV_REPLAYED,
    FaultResponder,
    ParamsParser,
    StandInMiddleware,
    default_fault_response,
)
from .provider import SUBSCRIPTION_STATUSES, ProviderStandIn, StandInCapabilities
from .recording import RecordedRequest, RequestLog
from .server import StandInServer
from .webhooks import (
    Delivery,
    Order,
    SignatureMode,
    StoredEvent,
    WebhookDispatcher,
    WebhookEndpoint,
    WebhookSigner,
)

__all__ = [
    "ENV_BODY",
    "ENV_CHANGED",
    "ENV_IDEMPOTENCY_KEY",
    "ENV_PARAMS",
    "ENV_REPLAYED",
    "SUBSCRIPTION_STATUSES",
    "BaseStandIn",
    "Delivery",
    "Fault",
    "FaultInjector",
    "FaultResponder",
    "Order",
    "ParamsParser",
    "ProviderStandIn",
    "RecordedRequest",
    "RequestLog",
    "SignatureMode",
    "StandInCapabilities",
    "StandInMiddleware",
    "StandInServer",
    "StoredEvent",
    "WebhookDispatcher",
    "WebhookEndpoint",
    "WebhookSigner",
    "default_fault_response",
]
