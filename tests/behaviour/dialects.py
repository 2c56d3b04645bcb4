"""How each provider's side of a shared behaviour looks, so one test asserts both in full.

The behaviour is the same on every provider; what differs is detail a test still has to check:
the HTTP status the webhook route answers with (Stripe expects 2xx, Polar's docs show 202), how a
bad signature is refused, which request writes seats (Stripe's seat *item*, Polar's
subscription), and how a checkout request names the plan and the seats. Each provider states its
detail here once; a behaviour test reads it from ``provider.dialect`` rather than branching on
the provider's name, so the assertion is kept on both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask_seat_billing import Plan
from flask_seat_billing.testing._standin import RecordedRequest


@dataclass(frozen=True)
class Dialect:
    """One provider's detail of the shared behaviours."""

    #: The status a processed (or ignored, or duplicate) signed delivery is answered with.
    webhook_ok: int
    #: The status a delivery with a bad, missing or stale signature is refused with.
    bad_signature: int
    #: Timestamp offsets (seconds) just outside the provider's signature tolerance.
    stale_offsets: tuple[int, int]
    #: The config key of the webhook secret, named in the error when it is unset.
    secret_key: str
    #: The method and path prefix of the request that writes seats.
    seat_write: tuple[str, str]
    #: The path prefix of reads of one subscription (``.../{id}`` follows).
    subscription_path: str
    #: The prefix of every request about subscriptions, reads and writes (faults go there).
    subscription_prefix: str
    #: The parameter of a seat write that carries the new seat count.
    seats_param: str
    #: The path of the request that lists subscriptions (a resync's pull).
    list_path: str
    #: The path of the request that opens a checkout, and of one that opens the portal.
    checkout_path: str
    portal_path: str
    #: Where the hosted checkout and portal pages live, below the stand-in's URL.
    checkout_page: str
    portal_page: str
    #: The word a permanent refusal's recorded error starts with (``"Stripe refused: "``).
    refused: str

    def checkout_posts(self, requests: Any) -> list[RecordedRequest]:
        """The checkout-opening requests among ``requests`` (a stand-in's request log)."""
        return [r for r in requests if r.method == "POST" and r.path == self.checkout_path]

    def portal_posts(self, requests: Any) -> list[RecordedRequest]:
        return [r for r in requests if r.method == "POST" and r.path == self.portal_path]

    def checkout_lines(self, post: RecordedRequest, plan: Plan) -> Any:
        """What the checkout asked the provider to sell, comparable with :meth:`expected_lines`."""
        raise NotImplementedError

    def expected_lines(self, plan: Plan, seats: int) -> Any:
        raise NotImplementedError

    def checkout_metadata(self, post: RecordedRequest) -> dict[str, str]:
        raise NotImplementedError

    def checkout_customer(self, post: RecordedRequest) -> Any:
        """The customer a checkout request names (to see an existing one reused)."""
        raise NotImplementedError

    def portal_customer(self, post: RecordedRequest) -> Any:
        raise NotImplementedError

    def success_url(self, post: RecordedRequest) -> str:
        return str(post.params["success_url"])

    def cancel_url(self, post: RecordedRequest) -> str:
        """Where the buyer goes back to when they leave the checkout unpaid."""
        raise NotImplementedError

    def checkout_reference(self, post: RecordedRequest) -> Any:
        """The organization the checkout is made out to, in the provider's own field, or
        ``None`` where that field would pick a customer (see :attr:`names_organization`)."""
        raise NotImplementedError

    #: Whether a checkout request names the organization (Stripe's ``client_reference_id``).
    #: Polar's ``external_customer_id`` would pick an existing customer by that id, which may be
    #: another app's on the same account: it is never sent.
    names_organization: bool = True
    #: The error a webhook whose signature header is not ASCII is refused with.
    malformed_signature_error: str = ""

    def signature_headers(self, signature: str, timestamp: int) -> dict[str, str]:
        """Signature headers with ``signature`` as the signature itself and a fresh time."""
        raise NotImplementedError

    #: The placeholder the provider fills in with the checkout's id on the success URL.
    checkout_placeholder: str = ""
    #: An event type the provider sends that the library has no use for.
    unknown_event_type: str = ""

    #: Statuses in which the library holds a seat change (the provider would refuse it), and
    #: why a status is not held on this provider (it is sent at once, or the subscription ended).
    held: frozenset[str] = frozenset()
    not_held: dict[str, str] | None = None

    def writes_to(self, stand_in: Any, subscription_id: str) -> list[RecordedRequest]:
        """Applied writes to one subscription (its seat item on Stripe)."""
        return [w for w in stand_in.subscription_writes() if w.path.endswith(subscription_id)]

    def stamped_headers(self, stamp: str) -> dict[str, str]:
        """Signature headers carrying ``stamp`` as their timestamp (and a junk signature)."""
        raise NotImplementedError

    def event_body(self, event_id: str, event_type: str, object_id: str) -> bytes:
        """A hand-made event about object ``object_id``, as the provider would send its body."""
        raise NotImplementedError

    def body_of(self, event: dict[str, Any]) -> bytes:
        """The body the provider sends for one of its stand-in's :meth:`events`."""
        raise NotImplementedError

    def unconfigured_plan(self, stand_in: Any) -> Plan:
        """Create a plan in the provider's catalog that no app's configuration names."""
        raise NotImplementedError

    def later(self, stand_in: Any) -> None:
        """Move the provider's clock on enough that what it creates next is newer."""

    def switch_seat_price(self, stand_in: Any, subscription_id: str, old: Plan, new: Plan) -> None:
        """Replace the seat item of ``old``'s seat price by one of ``new``'s, with the same
        quantity, through the API (only where the capability ``separate_seat_price`` is)."""
        raise NotImplementedError

    def buyer_checkout(self, stand_in: Any, organization_id: Any, plan: Plan) -> str:
        """A checkout the app did not open, made out to ``organization_id`` in the field a buyer
        can fill in (a Payment Link's ``client_reference_id`` on Stripe, a checkout link's
        external customer id on Polar), paid; returns its subscription's id."""
        raise NotImplementedError


class StripeDialect(Dialect):
    def unconfigured_plan(self, stand_in: Any) -> Plan:
        price = stand_in.create_price(unit_amount=500)["id"]
        return Plan(name="unconfigured", plan_id=price)

    def later(self, stand_in: Any) -> None:
        stand_in.advance_time(60)

    def switch_seat_price(self, stand_in: Any, subscription_id: str, old: Plan, new: Plan) -> None:
        seat = next(i for i in stand_in.subscription(subscription_id)["items"]["data"]
                    if i["price"]["id"] == old.seat_price_id)
        stand_in.client().v1.subscriptions.update(subscription_id, params={"items": [
            {"id": seat["id"], "deleted": True},
            {"price": new.seat_price_id, "quantity": seat["quantity"]}]})

    def stamped_headers(self, stamp: str) -> dict[str, str]:
        return {"Stripe-Signature": f"t={stamp},v1=00", "Content-Type": "application/json"}

    def writes_to(self, stand_in: Any, subscription_id: str) -> list[RecordedRequest]:
        items = {i["id"] for i in stand_in.subscription(subscription_id)["items"]["data"]}
        return [
            w for w in stand_in.subscription_writes()
            if w.path.rsplit("/", 1)[-1] in items | {subscription_id}
        ]

    def event_body(self, event_id: str, event_type: str, object_id: str) -> bytes:
        return json.dumps(
            {"id": event_id, "type": event_type, "data": {"object": {"id": object_id}}}
        ).encode()

    def body_of(self, event: dict[str, Any]) -> bytes:
        return json.dumps(event).encode()

    def checkout_lines(self, post: RecordedRequest, plan: Plan) -> Any:
        return post.params["line_items"]

    def expected_lines(self, plan: Plan, seats: int) -> Any:
        if plan.seat_only:
            return [{"price": plan.seat_price_id, "quantity": str(max(1, seats))}]
        return [
            {"price": plan.plan_id, "quantity": "1"},
            {"price": plan.seat_price_id, "quantity": str(seats)},
        ]

    def checkout_metadata(self, post: RecordedRequest) -> dict[str, str]:
        return dict(post.params["subscription_data"]["metadata"])

    def checkout_customer(self, post: RecordedRequest) -> Any:
        return post.params.get("customer")

    def cancel_url(self, post: RecordedRequest) -> str:
        return str(post.params["cancel_url"])

    def checkout_reference(self, post: RecordedRequest) -> Any:
        return post.params["client_reference_id"]

    def signature_headers(self, signature: str, timestamp: int) -> dict[str, str]:
        return {"Stripe-Signature": f"t={timestamp},v1={signature}",
                "Content-Type": "application/json"}

    def portal_customer(self, post: RecordedRequest) -> Any:
        return post.params["customer"]

    def buyer_checkout(self, stand_in: Any, organization_id: Any, plan: Plan) -> str:
        session = stand_in.client().v1.checkout.sessions.create(params={
            "mode": "subscription", "client_reference_id": str(organization_id),
            "line_items": [{"price": plan.seat_price_id, "quantity": 1}],
            "success_url": "http://127.0.0.1/?session_id={CHECKOUT_SESSION_ID}"})
        return str(stand_in.complete_checkout(session.id)["subscription"])


class PolarDialect(Dialect):
    """The event id travels in the ``webhook-id`` header, not in the body."""

    def unconfigured_plan(self, stand_in: Any) -> Plan:
        product = stand_in.create_product("Other", price_per_seat=500, maximum_seats=50)["id"]
        return Plan(name="unconfigured", plan_id=product)

    def stamped_headers(self, stamp: str) -> dict[str, str]:
        return {"webhook-id": "msg_1", "webhook-timestamp": stamp,
                "webhook-signature": "v1,AAAA", "Content-Type": "application/json"}

    def event_body(self, event_id: str, event_type: str, object_id: str) -> bytes:
        return json.dumps({"type": event_type, "data": {"id": object_id}}).encode()

    def body_of(self, event: dict[str, Any]) -> bytes:
        return json.dumps({k: v for k, v in event.items() if k != "id"}).encode()

    def checkout_lines(self, post: RecordedRequest, plan: Plan) -> Any:
        return {"products": post.params["products"], "seats": post.params["seats"]}

    def expected_lines(self, plan: Plan, seats: int) -> Any:
        return {"products": [plan.plan_id], "seats": max(1, seats)}

    def checkout_metadata(self, post: RecordedRequest) -> dict[str, str]:
        return dict(post.params["metadata"])

    def checkout_customer(self, post: RecordedRequest) -> Any:
        return post.params.get("customer_id")

    def cancel_url(self, post: RecordedRequest) -> str:
        return str(post.params["return_url"])

    def checkout_reference(self, post: RecordedRequest) -> Any:
        return post.params.get("external_customer_id", None)

    def signature_headers(self, signature: str, timestamp: int) -> dict[str, str]:
        return {"webhook-id": "msg_1", "webhook-timestamp": str(timestamp),
                "webhook-signature": "v1," + signature, "Content-Type": "application/json"}

    def portal_customer(self, post: RecordedRequest) -> Any:
        return post.params["customer_id"]

    def buyer_checkout(self, stand_in: Any, organization_id: Any, plan: Plan) -> str:
        checkout = stand_in.client().checkouts.create(
            products=[plan.plan_id], seats=1, external_customer_id=str(organization_id),
            success_url="http://127.0.0.1/?checkout_id={CHECKOUT_ID}")
        stand_in.complete_checkout(checkout.id)
        return str(stand_in.checkout_subscription_id(checkout.id))


STRIPE = StripeDialect(
    webhook_ok=200,
    bad_signature=400,
    stale_offsets=(-301, 3600),
    secret_key="SEAT_BILLING_STRIPE_WEBHOOK_SECRET",
    seat_write=("POST", "/v1/subscription_items/"),
    subscription_path="/v1/subscriptions/",
    subscription_prefix="/v1/subscription",
    seats_param="quantity",
    list_path="/v1/subscriptions",
    checkout_path="/v1/checkout/sessions",
    portal_path="/v1/billing_portal/sessions",
    checkout_page="/checkout/cs_",
    portal_page="/portal/",
    refused="Stripe refused: ",
    malformed_signature_error="Malformed Stripe-Signature header.",
    checkout_placeholder="session_id={CHECKOUT_SESSION_ID}",
    unknown_event_type="customer.tax_id.created",
    held=frozenset({"paused", "incomplete", "unpaid"}),
    not_held={"past_due": "Stripe takes seat changes in dunning: sent at once"},
)

POLAR = PolarDialect(
    webhook_ok=202,
    bad_signature=403,
    stale_offsets=(-600, 600),
    secret_key="SEAT_BILLING_POLAR_WEBHOOK_SECRET",
    seat_write=("PATCH", "/v1/subscriptions/"),
    subscription_path="/v1/subscriptions/",
    subscription_prefix="/v1/subscriptions/",
    seats_param="seats",
    list_path="/v1/subscriptions/",
    checkout_path="/v1/checkouts/",
    portal_path="/v1/customer-sessions/",
    checkout_page="/checkout/",
    portal_page="/portal?",
    refused="Polar refused: ",
    names_organization=False,
    malformed_signature_error="Invalid webhook-signature.",
    checkout_placeholder="checkout_id={CHECKOUT_ID}",
    unknown_event_type="order.created",
    held=frozenset({"past_due", "paused", "incomplete"}),
    not_held={"unpaid": "on Polar an unpaid subscription has ended: nothing to hold for"},
)
