"""The one interface every provider stand-in offers, so tests and apps need not name providers.

Why: the Stripe and Polar stand-ins had grown their own names for the same things (a bulk
create, a seat read, a status change, each named twice). A behaviour written once and run on
every provider needs one vocabulary, and each thing has only that name now: create a
subscription for an organization with N seats on a plan, read its seats, status and cancel
flag, change its status, edit its quantity as a dashboard would, complete a checkout, fail
payments, bulk-create subscriptions, inject faults, deliver webhooks, reset.

A plan is described by the library's own :class:`~flask_seat_billing.Plan` (``plan_id`` is the
Stripe base price or the Polar product, ``seat_price_id`` the Stripe seat price), so the app's
catalog and the stand-in agree by construction. What only one provider has (Stripe prices and
items, Polar products and seat tiers) stays on that stand-in under its own names.

What a provider can and cannot do is read from :attr:`ProviderStandIn.capabilities`, which reuses
the library provider's :class:`~flask_seat_billing.providers.base.Capabilities` and adds what a
test arranges on the provider's side (statuses, pausing).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .base import BaseStandIn
from .recording import RecordedRequest

if TYPE_CHECKING:
    from ...plans import Plan
    from ...providers.base import Capabilities

__all__ = ["SUBSCRIPTION_STATUSES", "ProviderStandIn", "StandInCapabilities"]

SUBSCRIPTION_STATUSES = frozenset(
    {
        "incomplete",
        "incomplete_expired",
        "trialing",
        "active",
        "past_due",
        "unpaid",
        "canceled",
        "paused",
    }
)
"""Every status the library reads; both Stripe and Polar (API 2026-10) define exactly these."""

Obj = dict[str, Any]


@dataclass(frozen=True)
class StandInCapabilities:
    """What the provider a stand-in plays can do, for tests that must not name the provider.

    ``provider`` is the library provider's own :class:`Capabilities` (not a copy of its flags);
    the shortcuts below read it. ``statuses`` are the statuses :meth:`ProviderStandIn.set_status`
    can put a subscription in; ``pause`` says whether pausing and resuming exist. ``absent`` maps
    each flag that is False to the reason, so a test that cannot run says why
    (``pytest.skip(caps.why_not("separate_seat_price"))``).
    """

    name: str
    provider: Capabilities
    statuses: frozenset[str]
    pause: bool
    final_statuses: frozenset[str] = frozenset({"canceled", "incomplete_expired"})
    absent: Mapping[str, str] = field(default_factory=dict)

    @property
    def separate_seat_price(self) -> bool:
        """Seats are the quantity of their own price's item (Stripe), not of the subscription."""
        return self.provider.separate_seat_price

    @property
    def invoice_preview(self) -> bool:
        """The provider can price a seat change before it is made."""
        return self.provider.invoice_preview

    @property
    def idempotency_keys(self) -> bool:
        """Writes carry idempotency keys the provider honours."""
        return self.provider.idempotency_keys

    @property
    def proration_behaviors(self) -> frozenset[str]:
        """The library's ``SEAT_BILLING_PRORATION_BEHAVIOR`` values the provider honours as such
        (``"none"`` is absent on Polar, where it falls back to ``prorate``)."""
        return self.provider.proration_behaviors

    @property
    def seat_types(self) -> bool:
        """Several seat prices on one subscription (``Plan.seat_prices``)."""
        return self.provider.seat_types

    def has(self, flag: str) -> bool:
        """``has("pause")``, ``has("invoice_preview")``, ``has("proration:none")``, or
        ``has("status:paused")``."""
        kind, _, value = flag.partition(":")
        if kind == "proration" and value:
            return value in self.proration_behaviors
        if kind == "status" and value:
            return value in self.statuses
        result = getattr(self, flag)
        return bool(result)

    def why_not(self, flag: str) -> str:
        """Why ``flag`` is absent on this provider (a skip reason); raises if it is present."""
        if self.has(flag):
            raise ValueError(f"{self.name} has {flag}")
        return self.absent.get(flag, f"{self.name} has no {flag}")


class ProviderStandIn(BaseStandIn, ABC):
    """A running stand-in of a billing provider, driven through one set of names.

    Inherited from :class:`BaseStandIn`: ``url``, ``start()``, ``stop()``, context manager,
    ``requests``, ``writes()``, ``faults`` (``fail_next``, ``rate_limit_next``, ``stall_next``,
    ``drop_next``), ``webhooks``, ``add_webhook_endpoint(url, secret)``,
    ``deliver_pending(...)``, ``deliver(...)``, ``auto_deliver``.

    Every subscription helper acts as the provider itself would (the same events, the same
    refusals) and takes effect without going through the HTTP API, so the request log holds only
    what the code under test sent.
    """

    #: ``"stripe"``, ``"polar"``: the library's ``SEAT_BILLING_PROVIDER`` value.
    provider_name: str
    #: Path prefixes of the API's subscription resources (for :meth:`subscription_writes`).
    subscription_paths: tuple[str, ...]
    #: The provider's event type for each neutral kind of subscription event: ``created``,
    #: ``updated``, ``paused``, ``resumed``, ``ended`` (for :meth:`events_of`).
    event_types: Mapping[str, str]

    # -- the app's side ------------------------------------------------------------------------
    @property
    @abstractmethod
    def capabilities(self) -> StandInCapabilities:
        """What this provider can do (see :class:`StandInCapabilities`)."""

    @abstractmethod
    def app_config(self, webhook_secret: str | None = None) -> dict[str, Any]:
        """The ``SEAT_BILLING_*`` keys that point an app at this stand-in (started)."""

    @abstractmethod
    def new_webhook_secret(self) -> str:
        """A webhook signing secret in the provider's format."""

    def subscription_writes(self) -> list[RecordedRequest]:
        """Applied requests that changed a subscription (its seats, status ...): not replays,
        not faulted requests, not what the Python-side helpers did."""
        return [r for r in self.writes() if r.path.startswith(self.subscription_paths)]

    # -- subscriptions -------------------------------------------------------------------------
    @staticmethod
    def organization_metadata(organization_id: object, plan: Plan) -> dict[str, str]:
        """The metadata the library's checkout puts on a subscription it creates."""
        return {"organization_id": str(organization_id), "plan": plan.name}

    @abstractmethod
    def subscribe(
        self,
        organization_id: object,
        plan: Plan,
        seats: int,
        *,
        status: str = "active",
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Create a subscription to ``plan`` with ``seats`` seats for an organization, as a
        completed checkout would (with its events); returns its id. The plan's prices (Stripe)
        or product (Polar) must exist. ``metadata`` defaults to :meth:`organization_metadata`;
        ``status`` is forced afterwards, as :meth:`set_status` would."""

    @abstractmethod
    def bulk_subscribe(
        self,
        organization_ids: Iterable[object],
        plan: Plan,
        seats: int = 1,
        *,
        emit_events: bool = False,
    ) -> list[str]:
        """One active subscription per organization, fast (no events unless ``emit_events``):
        for benchmarks and paging. Returns the ids in the order of ``organization_ids``."""

    @abstractmethod
    def subscription(self, subscription_id: str) -> Obj:
        """The subscription as the provider's API shows it (a copy); both providers keep the
        ``"metadata"`` it was given there."""

    @abstractmethod
    def subscription_ids(self) -> list[str]:
        """Every subscription the provider has, oldest first, ended ones included."""

    @abstractmethod
    def seats(self, subscription_id: str, plan: Plan | None = None) -> int:
        """The subscription's seats now. On Stripe, the quantity of the seat price's item:
        ``plan`` names it, else the seat price of the plan it was subscribed with."""

    @abstractmethod
    def set_seats(self, subscription_id: str, seats: int, plan: Plan | None = None) -> Obj:
        """Change the seats as a user of the provider's dashboard would: no refusal, the
        provider's update event emitted. Returns the subscription as the API shows it."""

    @abstractmethod
    def subscription_status(self, subscription_id: str) -> str:
        """The subscription's status now (one of :data:`SUBSCRIPTION_STATUSES`)."""

    @abstractmethod
    def cancel_at_period_end(self, subscription_id: str) -> bool:
        """Whether the subscription is set to end at the end of its period (the field both
        APIs call ``cancel_at_period_end``)."""

    @abstractmethod
    def set_status(self, subscription_id: str, status: str) -> Obj:
        """Move to ``status`` as a payment outcome or the dashboard would (``past_due``, back to
        ``active``, ``paused``, ``canceled`` ...), emitting the provider's events."""

    def pause_subscription(self, subscription_id: str) -> Obj:
        """Pause (status ``paused``; where :attr:`capabilities` ``.pause``)."""
        if not self.capabilities.pause:
            raise NotImplementedError(self.capabilities.why_not("pause"))
        return self.set_status(subscription_id, "paused")

    def resume_subscription(self, subscription_id: str) -> Obj:
        """Resume a paused subscription (status ``active``)."""
        if not self.capabilities.pause:
            raise NotImplementedError(self.capabilities.why_not("pause"))
        return self.set_status(subscription_id, "active")

    @abstractmethod
    def cancel_subscription(self, subscription_id: str, at_period_end: bool = False) -> Obj:
        """Cancel now (status ``canceled``) or at the end of the period."""

    @abstractmethod
    def customer_of(self, subscription_id: str) -> str:
        """The provider's id of the subscription's customer (for :meth:`fail_payments`)."""

    # -- checkout and payments -----------------------------------------------------------------
    @abstractmethod
    def complete_checkout(self, checkout_id: str) -> Obj:
        """Pay a checkout as the buyer would, with the provider's events. Returns the provider's
        own object (the Checkout Session on Stripe, the subscription on Polar); the neutral
        answer is :meth:`checkout_subscription_id`."""

    @abstractmethod
    def checkout_subscription_id(self, checkout_id: str) -> str | None:
        """The subscription a completed checkout created (None while it is open)."""

    @abstractmethod
    def fail_payments(self, customer_id: str, failing: bool = True) -> None:
        """Make (or, with ``failing=False``, stop making) this customer's charges fail."""

    # -- webhooks ------------------------------------------------------------------------------
    @abstractmethod
    def events(self, type: str | None = None) -> list[Obj]:
        """The events emitted so far (of one provider event type), oldest first; each has the
        id it is delivered under as ``"id"`` and its ``"type"``."""

    def events_of(self, kind: str) -> list[Obj]:
        """:meth:`events` of a neutral kind (``"updated"`` ...; see :attr:`event_types`)."""
        return self.events(self.event_types[kind])

    @abstractmethod
    def webhook_headers(
        self, payload: bytes, secret: str, *, event_id: str, timestamp: int | None = None
    ) -> dict[str, str]:
        """The headers that make ``payload`` a validly signed delivery of event ``event_id``
        (at ``timestamp``, default now), for posting hand-made events to a receiver."""

    # -- time ----------------------------------------------------------------------------------
    @abstractmethod
    def clock(self) -> datetime:
        """The stand-in's time as naive UTC: pass it as ``init_app(clock=...)`` so the app and
        the provider agree on the time while a test moves it."""

    @abstractmethod
    def current_period_end(self, subscription_id: str) -> datetime:
        """When the subscription's current billing period ends (naive UTC): on Stripe the seat
        item's ``current_period_end``, on Polar the subscription's."""

    @abstractmethod
    def advance_time(self, seconds: float) -> list[str]:
        """Move the provider's clock forward, as a Stripe test clock's advance does: every
        subscription whose period ended by then renews (a pending ``next_period`` update
        applies, the renewal invoice is made from the quantity at that moment), with its
        events. Returns the ids of the renewed subscriptions."""

    # -- lifecycle -----------------------------------------------------------------------------
    @abstractmethod
    def reset(self) -> None:
        """Forget all state, recorded requests, queued faults and events (endpoints stay)."""
