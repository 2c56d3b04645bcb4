"""The stand-in's in-memory Stripe account: collections, ids, clock and event emission.

Everything lives under one re-entrant lock (``StripeState.lock``): the HTTP routes hold it for a
whole request and the Python API for a whole call, which makes every operation atomic without
finer-grained locking. Objects are stored as Stripe-shaped JSON dicts; callers get deep copies.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .._standin import WebhookDispatcher
from .errors import no_such

__all__ = ["API_VERSION", "Collection", "RequestContext", "StripeState"]

API_VERSION = "2026-10-28.endive"

Obj = dict[str, Any]


class Collection:
    """Objects of one kind by id (O(1)), plus creation order for newest-first pagination."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # as named in Stripe's "No such <kind>" errors
        self.objects: dict[str, Obj] = {}
        self.order: list[str] = []
        self.pos: dict[str, int] = {}

    def add(self, obj: Obj) -> Obj:
        """Store a new object; its position in creation order is fixed from now on."""
        self.objects[obj["id"]] = obj
        self.pos[obj["id"]] = len(self.order)
        self.order.append(obj["id"])
        return obj

    def remove(self, object_id: str) -> None:
        """Delete an object (its slot in creation order stays, and is skipped when listing)."""
        self.objects.pop(object_id, None)

    def get(self, object_id: str) -> Obj | None:
        """The stored object (not a copy) or None."""
        return self.objects.get(object_id)

    def require(self, object_id: str, param: str = "id") -> Obj:
        """The stored object, or Stripe's ``No such <kind>: '<id>'``.

        404 when the id is the URL's own (``param="id"``), 400 when a parameter refers to it.
        """
        obj = self.objects.get(object_id)
        if obj is None:
            error = no_such(self.kind, object_id, param)
            error.status = 404 if param == "id" else 400
            raise error
        return obj

    def page(
        self,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        where: Callable[[Obj], bool] | None = None,
        within: list[str] | None = None,
    ) -> tuple[list[Obj], bool]:
        """One page, newest first, and whether more exist beyond it.

        ``within`` is an index (ids in creation order) to scan instead of everything, which
        keeps filtered listings fast on large accounts; ``where`` filters further.
        """
        ids = self.order if within is None else within
        key = self.pos.__getitem__
        found: list[Obj] = []
        walk: Iterable[int]
        if ending_before is not None:
            anchor = self.pos[self.require(ending_before, "ending_before")["id"]]
            walk = range(bisect_right(ids, anchor, key=key), len(ids))
        elif starting_after is not None:
            anchor = self.pos[self.require(starting_after, "starting_after")["id"]]
            walk = range(bisect_left(ids, anchor, key=key) - 1, -1, -1)
        else:
            walk = range(len(ids) - 1, -1, -1)
        for i in walk:
            obj = self.objects.get(ids[i])
            if obj is not None and (where is None or where(obj)):
                found.append(obj)
                if len(found) > limit:
                    break
        has_more = len(found) > limit
        found = found[:limit]
        if ending_before is not None:
            found.reverse()
        return found, has_more

    def clear(self) -> None:
        """Forget all objects."""
        self.objects.clear()
        self.order.clear()
        self.pos.clear()


@dataclass
class RequestContext:
    """The API request being served, stamped on the events it causes (``event.request``)."""

    id: str | None = None
    idempotency_key: str | None = None


class StripeState:
    """All objects of the fake account. Hold ``lock`` while reading or changing anything."""

    def __init__(self, webhooks: WebhookDispatcher) -> None:
        self.lock = threading.RLock()
        self.webhooks = webhooks
        self._seq = itertools.count(1)
        self._frozen: float | None = None
        self._offset = 0.0
        self.request = RequestContext()
        self.customers = Collection("customer")
        self.products = Collection("product")
        self.prices = Collection("price")
        self.subscriptions = Collection("subscription")
        self.items = Collection("subscription item")
        self.invoice_items = Collection("invoiceitem")
        self.invoices = Collection("invoice")
        self.checkout_sessions = Collection("checkout.session")
        self.portal_sessions = Collection("billing_portal.session")
        self.events = Collection("event")
        self.subs_by_customer: dict[str, list[str]] = {}
        self.pending_items_by_sub: dict[str, list[str]] = {}
        self.invoice_lines: dict[str, list[Obj]] = {}  # every line of an invoice or preview
        self.checkout_private: dict[str, Obj] = {}  # line items, subscription_data
        self.failing_customers: set[str] = set()
        self.idempotency: dict[str, tuple[str, int, bytes]] = {}

    # -- clock and ids -------------------------------------------------------------------------
    def now(self) -> int:
        """Current stand-in time (unix seconds); see ``freeze_time`` / ``advance_time``."""
        base = self._frozen if self._frozen is not None else time.time()
        return int(base + self._offset)

    def freeze_time(self, at: float | None) -> None:
        """Stop the clock at ``at`` (unix seconds), or let it run again with ``None``."""
        self._frozen = at
        self._offset = 0.0

    def advance_time(self, seconds: float) -> None:
        """Move the clock forward (frozen or not)."""
        self._offset += seconds

    def new_id(self, prefix: str) -> str:
        """A Stripe-looking id; the sequence part keeps ids unique even across resets."""
        return f"{prefix}_{next(self._seq):06d}{secrets.token_hex(6)}"

    # -- events --------------------------------------------------------------------------------
    def emit(self, type: str, obj: Obj, previous: Obj | None = None) -> Obj:
        """Record an event with a snapshot of ``obj`` and queue it for webhook delivery."""
        data: Obj = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(previous)
        pending = sum(1 for e in self.webhooks.endpoints() if e.wants(type))
        event: Obj = {
            "id": self.new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": pending,
            "request": {"id": self.request.id, "idempotency_key": self.request.idempotency_key},
            "type": type,
        }
        self.events.add(event)
        self.webhooks.add_event(event["id"], type, event)
        return event

    # -- misc ----------------------------------------------------------------------------------
    def product_name(self, product_id: str) -> str:
        """Name used in line descriptions (``5 × Seat``)."""
        product = self.products.get(product_id)
        return str(product["name"]) if product else product_id

    def reset(self) -> None:
        """Forget every object, event, idempotency key and payment-failure flag."""
        for value in vars(self).values():
            if isinstance(value, (Collection, dict, set)):
                value.clear()
        self.request = RequestContext()
