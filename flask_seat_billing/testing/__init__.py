"""Stand-ins of the providers' APIs, served over real HTTP, for tests and offline demos.

``StripeStandIn`` and ``PolarStandIn`` are stateful: the real ``stripe`` and ``polar`` SDKs talk
to them on 127.0.0.1, they record every request, inject faults on demand, and deliver signed
webhooks. pytest users get them as the ``stripe_stand_in`` and ``polar_stand_in`` fixtures.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PolarStandIn", "StripeStandIn"]


def __getattr__(name: str) -> Any:
    # Imported on first use so that importing the package (as the pytest plugin does) stays cheap.
    if name == "StripeStandIn":
        from .stripe_server import StripeStandIn

        return StripeStandIn
    if name == "PolarStandIn":
        from .polar_server import PolarStandIn

        return PolarStandIn
    raise AttributeError(name)
