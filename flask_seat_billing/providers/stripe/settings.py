"""Stripe's configuration keys (``SEAT_BILLING_STRIPE_*``), checked once at ``init_app``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ...config_values import is_loopback_url, non_negative
from ...errors import ConfigurationError
from ..spec import ProviderSettings

STAND_IN_KEY = "sk_test_stand_in"
# Stripe allows about 100 requests/s live and 25/s in test mode, and the SDK does not retry a 429.
TEST_RATE = 20.0
LIVE_RATE = 80.0

DEFAULTS: dict[str, Any] = {
    "SEAT_BILLING_STRIPE_SECRET_KEY": None,
    "SEAT_BILLING_STRIPE_WEBHOOK_SECRET": None,
    "SEAT_BILLING_STRIPE_API_BASE": None,
    "SEAT_BILLING_STRIPE_MAX_NETWORK_RETRIES": 2,
}


@dataclass(frozen=True)
class StripeSettings(ProviderSettings):
    """``secret_key`` is the stand-in's placeholder when ``api_base`` is a local stand-in."""

    secret_key: str
    api_base: str | None
    max_network_retries: int

    webhook_secret_key: ClassVar[str] = "SEAT_BILLING_STRIPE_WEBHOOK_SECRET"

    def requests_per_second(self) -> float:
        test = self.secret_key.startswith(("sk_test_", "rk_test_"))
        return TEST_RATE if test else LIVE_RATE


def read_settings(config: Mapping[str, Any]) -> StripeSettings:
    """The Stripe keys; a missing secret key is an error unless the API base is a stand-in."""
    key = config["SEAT_BILLING_STRIPE_SECRET_KEY"]
    api_base = config["SEAT_BILLING_STRIPE_API_BASE"]
    if not key:
        if not is_loopback_url(api_base):
            raise ConfigurationError(
                "SEAT_BILLING_STRIPE_SECRET_KEY is not set. Set it to your Stripe secret key, "
                "or set "
                "SEAT_BILLING_STRIPE_API_BASE to a local stand-in (flask_seat_billing.testing)."
            )
        key = STAND_IN_KEY
    return StripeSettings(
        webhook_secret=config["SEAT_BILLING_STRIPE_WEBHOOK_SECRET"],
        secret_key=str(key),
        api_base=api_base,
        max_network_retries=non_negative(config, "SEAT_BILLING_STRIPE_MAX_NETWORK_RETRIES"),
    )
