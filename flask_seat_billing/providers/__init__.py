"""The table of billing providers: the one place that names them.

Each provider is a folder (``stripe/``, ``polar/``) that imports nothing above this package; its
``SPEC`` says how to read its settings, build its client and check plans for it. The core asks
this table by the name in ``SEAT_BILLING_PROVIDER``. Adding a provider is one folder and one
entry in :data:`PROVIDERS` (see ``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigurationError
from ..plans import PlanCatalog
from . import polar, stripe
from .base import BillingProvider, Capabilities, RemoteSubscription
from .spec import ProviderSettings, ProviderSpec

PROVIDERS: dict[str, ProviderSpec] = {
    "stripe": stripe.SPEC,
    "polar": polar.SPEC,
}


def spec_for(name: str) -> ProviderSpec:
    """The table's entry for ``name``; ``ConfigurationError`` for a provider it does not list."""
    spec = PROVIDERS.get(name)
    if spec is None:
        raise ConfigurationError(
            f"Unknown provider {name!r}; expected one of {', '.join(PROVIDERS)}."
        )
    return spec


def config_defaults() -> dict[str, Any]:
    """Every provider's configuration keys with their defaults."""
    return {key: value for spec in PROVIDERS.values() for key, value in spec.defaults.items()}


def read_provider_settings(name: str, config: Mapping[str, Any]) -> ProviderSettings:
    """The checked settings of provider ``name`` (only the chosen provider's keys are checked)."""
    return spec_for(name).read_settings(config)


def build_provider(
    name: str, settings: ProviderSettings, catalog: PlanCatalog, *, timeout: float
) -> BillingProvider:
    """The client of provider ``name``, configured from its settings."""
    return spec_for(name).build(settings, catalog, timeout)


__all__ = [
    "PROVIDERS",
    "BillingProvider",
    "Capabilities",
    "ProviderSettings",
    "ProviderSpec",
    "RemoteSubscription",
    "build_provider",
    "config_defaults",
    "read_provider_settings",
    "spec_for",
]
