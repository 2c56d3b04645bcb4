"""A stateful stand-in of the Stripe API, for tests, benchmarks and offline demos.

``StripeStandIn`` serves a fake Stripe account over real HTTP on 127.0.0.1 (ephemeral port). The
real ``stripe`` SDK talks to it unchanged::

    with StripeStandIn() as stripe_fake:
        price = stripe_fake.create_price(id="price_seat", unit_amount=1200)
        sub = stripe_fake.create_subscription(items=[{"price": price["id"], "quantity": 3}])
        client = stripe_fake.client(max_network_retries=2)
        client.v1.subscription_items.update(sub["items"]["data"][0]["id"], {"quantity": 4})
        assert stripe_fake.seats(sub["id"]) == 4  # its only item

See :class:`StripeStandIn` for the Python API; faults, request recording and webhook delivery
come from ``flask_seat_billing.testing._standin``.
"""

from .errors import StripeError
from .standin import StripeStandIn, sign_payload

__all__ = ["StripeError", "StripeStandIn", "sign_payload"]
