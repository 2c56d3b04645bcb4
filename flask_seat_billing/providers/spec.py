"""What a provider folder hands the provider table: its settings, its client, its rules.

A folder builds one :class:`ProviderSpec`; ``providers/__init__.py`` lists the specs by name, and
the core asks that table rather than naming a provider. Building the client is a function, so the
SDK is imported only by the app that bills with it (the polar SDK takes seconds to import).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..plans import Plan, PlanCatalog
from .base import BillingProvider, Capabilities
from .events import WebhookParser


@dataclass(frozen=True)
class ProviderSettings:
    """The checked ``SEAT_BILLING_<PROVIDER>_*`` keys of one app; each provider extends it."""

    webhook_secret: str | None
    """The webhook signing secret; without one the provider's webhook endpoint refuses all."""

    webhook_secret_key: ClassVar[str]
    """The configuration key of :attr:`webhook_secret`, named in the refusal."""

    def requests_per_second(self) -> float:
        """A safe margin under the provider's API rate limit, for long CLI runs."""
        raise NotImplementedError


@dataclass(frozen=True)
class ProviderSpec:
    """One provider, as the table lists it."""

    name: str
    defaults: Mapping[str, Any]
    """Its configuration keys with their defaults (``init_app`` sets them on ``app.config``)."""
    read_settings: Callable[[Mapping[str, Any]], ProviderSettings]
    """Check its keys; raises ``ConfigurationError`` naming the key at fault."""
    build: Callable[[ProviderSettings, PlanCatalog, float], BillingProvider]
    """Its client, from its settings, the plan catalog and the per-request timeout."""
    check_plans: Callable[[Sequence[Plan]], None]
    """Refuse plans this provider would refuse later (``ConfigurationError`` naming the plan)."""
    capabilities: Capabilities
    parse_webhook: WebhookParser
    """Verify a delivery to ``<prefix>/webhooks/<name>`` and read it into a neutral event."""
    webhook_status: int = 200
    """The status a handled delivery is answered with (the provider's documented choice)."""
