"""Billing providers behind one interface (:class:`BillingProvider`)."""

from __future__ import annotations

from ..errors import ConfigurationError
from ..plans import PlanCatalog
from ..settings import Settings
from .base import BillingProvider, Capabilities, RemoteSubscription


def build_provider(settings: Settings, catalog: PlanCatalog) -> BillingProvider:
    """The provider ``SEAT_BILLING_PROVIDER`` names, configured from settings."""
    if settings.provider == "stripe":
        from .stripe.client import StripeProvider

        assert settings.stripe_secret_key is not None
        return StripeProvider(
            catalog,
            api_key=settings.stripe_secret_key,
            api_base=settings.stripe_api_base,
            max_network_retries=settings.stripe_max_network_retries,
            timeout=settings.provider_timeout,
        )
    if settings.provider == "polar":
        from .polar.client import PolarProvider

        assert settings.polar_access_token is not None
        return PolarProvider(
            catalog,
            access_token=settings.polar_access_token,
            server_url=settings.polar_server_url,
            timeout=settings.provider_timeout,
        )
    raise ConfigurationError(f"Unknown provider {settings.provider!r}.")


__all__ = ["BillingProvider", "Capabilities", "RemoteSubscription", "build_provider"]
