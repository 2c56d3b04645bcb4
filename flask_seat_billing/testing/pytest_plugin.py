"""pytest fixtures for apps using flask-seat-billing: running provider stand-ins.

Installed through the ``pytest11`` entry point, so any project that installs flask-seat-billing
gets ``stripe_stand_in`` and ``polar_stand_in`` in its tests with nothing to import.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def stripe_stand_in() -> Iterator[Any]:
    """A running Stripe stand-in; point ``SEAT_BILLING_STRIPE_API_BASE`` at its ``.url``."""
    from .stripe_server import StripeStandIn

    server = StripeStandIn()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def polar_stand_in() -> Iterator[Any]:
    """A running Polar stand-in; point ``SEAT_BILLING_POLAR_SERVER_URL`` at its ``.url``."""
    from .polar_server import PolarStandIn

    server = PolarStandIn()
    server.start()
    try:
        yield server
    finally:
        server.stop()
