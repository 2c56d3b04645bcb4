"""Stand-ins of the providers' APIs, served over real HTTP, for tests and offline demos.

``StripeStandIn`` and ``PolarStandIn`` are stateful: the real ``stripe`` and ``polar`` SDKs talk
to them on 127.0.0.1, they record every request, inject faults on demand, and deliver signed
webhooks. Both implement :class:`ProviderStandIn`, one set of names for what a test does with a
provider (subscribe an organization, read and edit its seats, change its status, complete a
checkout, fail payments), and tell what their provider can do through ``capabilities``
(:class:`StandInCapabilities`). pytest users get them as the ``stripe_stand_in`` and
``polar_stand_in`` fixtures; ``stand_in_for(name)`` builds one by provider name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._standin.provider import ProviderStandIn, StandInCapabilities
    from .polar_server import PolarStandIn
    from .stripe_server import StripeStandIn

__all__ = [
    "PolarStandIn",
    "ProviderStandIn",
    "StandInCapabilities",
    "StripeStandIn",
    "stand_in_for",
]


def stand_in_for(provider: str) -> ProviderStandIn:
    """A new (not yet started) stand-in of ``provider`` (``"stripe"`` or ``"polar"``)."""
    if provider == "stripe":
        from .stripe_server import StripeStandIn

        return StripeStandIn()
    if provider == "polar":
        from .polar_server import PolarStandIn

        return PolarStandIn()
    raise ValueError(f"No stand-in for provider {provider!r}; there are 'stripe' and 'polar'.")


def __getattr__(name: str) -> Any:
    # Imported on first use so that importing the package (as the pytest plugin does) stays cheap.
    if name == "StripeStandIn":
        from .stripe_server import StripeStandIn

        return StripeStandIn
    if name == "PolarStandIn":
        from .polar_server import PolarStandIn

        return PolarStandIn
    if name in ("ProviderStandIn", "StandInCapabilities"):
        from ._standin import provider

        return getattr(provider, name)
    raise AttributeError(name)
