"""Webhook event store and delivery, shared by the provider stand-ins.

Providers deliver webhooks late, twice, out of order and sometimes with signatures the receiver
must reject. Tests need to produce each of those on demand, so delivery here is explicit
(``deliver_pending`` / ``deliver``) unless ``auto_deliver`` is switched on. Signing is the only
provider-specific part and is supplied as a :class:`WebhookSigner`.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = [
    "Delivery",
    "StoredEvent",
    "WebhookDispatcher",
    "WebhookEndpoint",
    "WebhookSigner",
]


class WebhookSigner(Protocol):
    """Returns the provider's signature headers for one delivery.

    ``event_id`` is passed because some schemes (Standard Webhooks, used by Polar) sign it too.
    """

    def __call__(
        self, body: bytes, secret: str, timestamp: int, *, event_id: str
    ) -> dict[str, str]: ...


@dataclass(frozen=True)
class StoredEvent:
    """An event as it will be POSTed: ``body`` is serialized once, so every delivery of the
    event (including duplicates) carries the same bytes, like the real providers."""

    id: str
    type: str
    created: float
    payload: dict[str, Any]
    body: bytes
    targets: tuple[str, ...]


@dataclass(frozen=True)
class WebhookEndpoint:
    """A registered receiver; ``events`` filters by event type, ``("*",)`` means all."""

    id: str
    url: str
    secret: str
    events: tuple[str, ...] = ("*",)

    def wants(self, event_type: str) -> bool:
        """Whether this endpoint subscribes to ``event_type``."""
        return "*" in self.events or event_type in self.events


@dataclass(frozen=True)
class Delivery:
    """One POST of one event to one endpoint. ``status_code`` is 0 when no HTTP answer came."""

    event_id: str
    attempt: int
    status_code: int
    endpoint_url: str = ""
    event_type: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the receiver acknowledged the event (any 2xx), as the providers judge it."""
        return 200 <= self.status_code < 300


Order = Literal["sequential", "reversed", "shuffled"]
SignatureMode = Literal["valid", "bad", "missing"]


class WebhookDispatcher:
    """Holds events and endpoints, and POSTs events to endpoints with ``urllib``.

    An event targets the endpoints registered (and subscribed to its type) when it is created, as
    with Stripe; it stays *pending* for an endpoint until that endpoint answered 2xx once.
    """

    def __init__(
        self, signer: WebhookSigner, *, endpoint_prefix: str = "we_", timeout: float = 5.0
    ) -> None:
        self.signer = signer
        self.timeout = timeout
        self._prefix = endpoint_prefix
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._endpoints: dict[str, WebhookEndpoint] = {}
        self._events: dict[str, StoredEvent] = {}
        self._undelivered: dict[str, set[str]] = {}  # event id -> endpoint ids, in event order
        self._attempts: dict[tuple[str, str], int] = {}
        self._unattempted: dict[str, None] = {}  # for auto delivery, ordered
        self._history: list[Delivery] = []
        self._auto = False
        self._auto_delay = 0.05
        self._busy = False
        self._worker: threading.Thread | None = None
        self._closed = False

    # -- endpoints -------------------------------------------------------------------------
    def add_webhook_endpoint(
        self, url: str, secret: str, events: list[str] | tuple[str, ...] | None = None
    ) -> WebhookEndpoint:
        """Register a receiver URL and its signing secret; returns the endpoint."""
        with self._lock:
            endpoint = WebhookEndpoint(
                f"{self._prefix}{next(self._ids)}", url, secret, tuple(events or ("*",))
            )
            self._endpoints[endpoint.id] = endpoint
        return endpoint

    def remove_webhook_endpoint(self, id_or_url: str) -> None:
        """Unregister by id or URL; pending deliveries to it are discarded."""
        with self._lock:
            for eid, ep in list(self._endpoints.items()):
                if id_or_url in (eid, ep.url):
                    del self._endpoints[eid]
                    for targets in self._undelivered.values():
                        targets.discard(eid)

    def endpoints(self) -> list[WebhookEndpoint]:
        """Registered endpoints, oldest first."""
        with self._lock:
            return list(self._endpoints.values())

    # -- events ----------------------------------------------------------------------------
    def add_event(self, event_id: str, event_type: str, payload: dict[str, Any]) -> StoredEvent:
        """Store an event (called by the provider stand-in when its state changes).

        Never delivers inline: the caller may be serving a request from the very app that
        receives the webhook. With ``auto_deliver`` on, a background thread delivers it soon.
        """
        body = json.dumps(payload, separators=(",", ":")).encode()
        with self._lock:
            targets = tuple(e.id for e in self._endpoints.values() if e.wants(event_type))
            event = StoredEvent(event_id, event_type, time.time(), payload, body, targets)
            self._events[event_id] = event
            if targets:
                self._undelivered[event_id] = set(targets)
                self._unattempted[event_id] = None
                self._wake.notify_all()
        return event

    def event(self, event_id: str) -> StoredEvent | None:
        """The stored event with this id, if any."""
        with self._lock:
            return self._events.get(event_id)

    def events(self, type: str | None = None) -> list[StoredEvent]:
        """All stored events (optionally of one type), oldest first."""
        with self._lock:
            return [e for e in self._events.values() if type is None or e.type == type]

    def pending(self) -> list[StoredEvent]:
        """Events not yet acknowledged by every endpoint they target, oldest first."""
        with self._lock:
            return [self._events[eid] for eid, t in self._undelivered.items() if t]

    def deliveries(self) -> list[Delivery]:
        """Every delivery attempt made so far, in the order they were made."""
        with self._lock:
            return list(self._history)

    # -- delivery --------------------------------------------------------------------------
    def deliver_pending(
        self,
        times: int = 1,
        order: Order = "sequential",
        seed: int | None = None,
        delay: float = 0.0,
    ) -> list[Delivery]:
        """POST every pending event to each endpoint still owing a 2xx.

        ``times`` > 1 sends each event that many times (duplicates, round after round);
        ``order`` reverses or shuffles (deterministically with ``seed``) the whole sequence;
        ``delay`` sleeps between POSTs. Failed deliveries stay pending for the next call.
        """
        with self._lock:
            work = [
                (eid, ep) for eid, targets in self._undelivered.items() for ep in sorted(targets)
            ]
            for eid, _ in work:
                self._unattempted.pop(eid, None)
        sequence = work * max(times, 0)
        if order == "reversed":
            sequence.reverse()
        elif order == "shuffled":
            random.Random(seed).shuffle(sequence)
        elif order != "sequential":
            raise ValueError(f"unknown order {order!r}")
        results: list[Delivery] = []
        for i, (eid, ep_id) in enumerate(sequence):
            if i and delay:
                time.sleep(delay)
            results.append(self._send(eid, ep_id, "valid", 0))
        return results

    def deliver(
        self,
        event_id: str,
        signature: SignatureMode = "valid",
        timestamp_offset: int = 0,
        endpoint: str | None = None,
    ) -> list[Delivery]:
        """POST one event now (again), to all its endpoints or the one with this id/URL.

        ``signature="bad"`` signs with a wrong secret, ``"missing"`` sends no signature headers,
        ``timestamp_offset`` (seconds) shifts the signed timestamp, to test rejections.
        """
        with self._lock:
            event = self._events.get(event_id)
            if event is None:
                raise KeyError(event_id)
            targets = [
                e.id
                for e in self._endpoints.values()
                if endpoint in (None, e.id, e.url) and (endpoint is not None or e.wants(event.type))
            ]
            self._unattempted.pop(event_id, None)
        return [self._send(event_id, ep, signature, timestamp_offset) for ep in targets]

    def _send(self, event_id: str, endpoint_id: str, mode: str, offset: int) -> Delivery:
        with self._lock:
            event = self._events[event_id]
            endpoint = self._endpoints.get(endpoint_id)
            if endpoint is None:
                return Delivery(event_id, 0, 0, "", event.type, "endpoint removed")
            attempt = self._attempts.get((event_id, endpoint_id), 0) + 1
            self._attempts[(event_id, endpoint_id)] = attempt
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "StandIn/1.0"}
        timestamp = int(time.time()) + offset
        if mode != "missing":
            secret = endpoint.secret if mode == "valid" else endpoint.secret + "_wrong"
            headers.update(self.signer(event.body, secret, timestamp, event_id=event_id))
        request = urllib.request.Request(endpoint.url, data=event.body, headers=headers)
        status, error = 0, None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
        except (OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        delivery = Delivery(event_id, attempt, status, endpoint.url, event.type, error)
        with self._lock:
            self._history.append(delivery)
            if delivery.ok and event_id in self._undelivered:
                self._undelivered[event_id].discard(endpoint_id)
                if not self._undelivered[event_id]:
                    del self._undelivered[event_id]
        return delivery

    # -- automatic delivery ----------------------------------------------------------------
    @property
    def auto_deliver(self) -> bool:
        """When true, a background thread delivers each new event ``auto_delay`` s after creation.

        Only never-attempted events are delivered automatically; failed ones wait for
        :meth:`deliver_pending`, so a failing receiver cannot make the thread spin.
        """
        return self._auto

    @auto_deliver.setter
    def auto_deliver(self, enabled: bool) -> None:
        self.set_auto_deliver(enabled)

    def set_auto_deliver(self, enabled: bool, delay: float | None = None) -> None:
        """Switch automatic delivery on/off; ``delay`` (seconds) is the wait before each batch."""
        with self._lock:
            self._auto = enabled
            if delay is not None:
                self._auto_delay = delay
            if enabled and (self._worker is None or not self._worker.is_alive()):
                self._closed = False
                self._worker = threading.Thread(
                    target=self._auto_loop, name="standin-webhooks", daemon=True
                )
                self._worker.start()
            self._wake.notify_all()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until automatic delivery has attempted every event; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._busy or (self._auto and self._unattempted):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.wait(min(remaining, 0.05))
        return True

    def _auto_loop(self) -> None:
        while True:
            with self._lock:
                while not self._closed and not (self._auto and self._unattempted):
                    self._wake.wait()
                if self._closed:
                    return
                self._busy = True
                delay = self._auto_delay
            time.sleep(delay)
            with self._lock:
                batch = list(self._unattempted)
                self._unattempted.clear()
                work = [(eid, ep) for eid in batch for ep in sorted(self._undelivered.get(eid, ()))]
            try:
                for eid, ep in work:
                    self._send(eid, ep, "valid", 0)
            finally:
                with self._lock:
                    self._busy = False
                    self._wake.notify_all()

    def reset(self) -> None:
        """Forget events, attempts and history; endpoints and the auto setting are kept."""
        with self._lock:
            self._events.clear()
            self._undelivered.clear()
            self._attempts.clear()
            self._unattempted.clear()
            self._history.clear()

    def close(self) -> None:
        """Stop the automatic delivery thread (if any)."""
        with self._lock:
            self._closed = True
            self._auto = False
            self._wake.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=2)
            self._worker = None
