"""Common shell of a provider stand-in: server, recording, faults and webhooks wired together.

A provider stand-in subclasses :class:`BaseStandIn`, builds its WSGI app, and passes the three
provider-specific pieces (parameter parsing, error format, webhook signing) to ``__init__``.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from .faults import FaultInjector
from .middleware import FaultAnswered, FaultResponder, ParamsParser, StandInMiddleware
from .recording import RecordedRequest, RequestLog
from .server import StandInServer
from .webhooks import (
    Delivery,
    Order,
    SignatureMode,
    WebhookDispatcher,
    WebhookEndpoint,
    WebhookSigner,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["BaseStandIn"]

_S = TypeVar("_S", bound="BaseStandIn")


class BaseStandIn:
    """Serves ``app`` behind fault injection and recording; owns the webhook dispatcher.

    Attributes: ``requests`` (:class:`RequestLog`), ``faults`` (:class:`FaultInjector`),
    ``webhooks`` (:class:`WebhookDispatcher`). Use as a context manager or call
    ``start()``/``stop()``; ``url`` is the base URL once started.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        signer: WebhookSigner,
        parse_params: ParamsParser | None = None,
        fault_response: FaultResponder | None = None,
        idempotency_header: str | None = "idempotency-key",
        fault_answered: FaultAnswered | None = None,
        endpoint_prefix: str = "we_",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.requests = RequestLog()
        self.faults = FaultInjector()
        self.webhooks = WebhookDispatcher(signer, endpoint_prefix=endpoint_prefix)
        middleware = StandInMiddleware(
            app,
            log=self.requests,
            faults=self.faults,
            parse_params=parse_params,
            fault_response=fault_response,
            idempotency_header=idempotency_header,
            fault_answered=fault_answered,
        )
        self.server = StandInServer(middleware, host=host, port=port)

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:54321``."""
        return self.server.url

    def start(self: _S) -> _S:
        """Start serving (idempotent); returns self."""
        self.server.start()
        return self

    def stop(self) -> None:
        """Stop serving and stop automatic webhook delivery."""
        self.webhooks.close()
        self.server.stop()

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- recording shortcuts -----------------------------------------------------------------
    def writes(self) -> list[RecordedRequest]:
        """Recorded non-GET requests that changed state (no replays, no unapplied faults)."""
        return self.requests.writes()

    # -- webhook shortcuts -------------------------------------------------------------------
    def add_webhook_endpoint(
        self, url: str, secret: str, events: list[str] | tuple[str, ...] | None = None
    ) -> WebhookEndpoint:
        """Register a webhook receiver; events created from now on target it."""
        return self.webhooks.add_webhook_endpoint(url, secret, events)

    def deliver_pending(
        self,
        times: int = 1,
        order: Order = "sequential",
        seed: int | None = None,
        delay: float = 0.0,
    ) -> list[Delivery]:
        """See :meth:`WebhookDispatcher.deliver_pending`."""
        return self.webhooks.deliver_pending(times=times, order=order, seed=seed, delay=delay)

    def deliver(
        self,
        event_id: str,
        signature: SignatureMode = "valid",
        timestamp_offset: int = 0,
        endpoint: str | None = None,
    ) -> list[Delivery]:
        """See :meth:`WebhookDispatcher.deliver`."""
        return self.webhooks.deliver(event_id, signature, timestamp_offset, endpoint)

    @property
    def auto_deliver(self) -> bool:
        """Deliver each new event from a background thread shortly after it is created."""
        return self.webhooks.auto_deliver

    @auto_deliver.setter
    def auto_deliver(self, enabled: bool) -> None:
        self.webhooks.auto_deliver = enabled
