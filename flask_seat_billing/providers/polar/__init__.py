"""Polar: everything the extension knows about it lives in this folder.

``SPEC`` is what the provider table lists; the client (and with it the ``polar`` SDK, seconds to
import) is built only for an app that bills with Polar.
"""

from __future__ import annotations

from ...plans import PlanCatalog
from ..base import BillingProvider
from ..spec import ProviderSettings, ProviderSpec
from .capabilities import CAPABILITIES
from .plans import check_plans
from .settings import DEFAULTS, PolarSettings, read_settings
from .webhooks import parse


def build(settings: ProviderSettings, catalog: PlanCatalog, timeout: float) -> BillingProvider:
    """A :class:`~.client.PolarProvider` configured from ``SEAT_BILLING_POLAR_*``."""
    from .client import PolarProvider

    assert isinstance(settings, PolarSettings)
    return PolarProvider(
        catalog,
        access_token=settings.access_token,
        server_url=settings.server_url,
        timeout=timeout,
    )


SPEC = ProviderSpec(
    name="polar",
    defaults=DEFAULTS,
    read_settings=read_settings,
    build=build,
    check_plans=check_plans,
    capabilities=CAPABILITIES,
    parse_webhook=parse,
    webhook_status=202,  # "accepted": Polar takes any 2xx as delivered
)
