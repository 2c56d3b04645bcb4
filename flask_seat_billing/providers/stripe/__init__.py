"""Stripe: everything the extension knows about it lives in this folder.

``SPEC`` is what the provider table lists; the client (and with it the ``stripe`` SDK) is built
only for an app that bills with Stripe.
"""

from __future__ import annotations

from ...plans import PlanCatalog
from ..base import BillingProvider
from ..spec import ProviderSettings, ProviderSpec
from .capabilities import CAPABILITIES
from .plans import check_plans
from .settings import DEFAULTS, StripeSettings, read_settings
from .webhooks import parse


def build(settings: ProviderSettings, catalog: PlanCatalog, timeout: float) -> BillingProvider:
    """A :class:`~.client.StripeProvider` configured from ``SEAT_BILLING_STRIPE_*``."""
    from .client import StripeProvider

    assert isinstance(settings, StripeSettings)
    return StripeProvider(
        catalog,
        api_key=settings.secret_key,
        api_base=settings.api_base,
        max_network_retries=settings.max_network_retries,
        timeout=timeout,
    )


SPEC = ProviderSpec(
    name="stripe",
    defaults=DEFAULTS,
    read_settings=read_settings,
    build=build,
    check_plans=check_plans,
    capabilities=CAPABILITIES,
    parse_webhook=parse,
)
