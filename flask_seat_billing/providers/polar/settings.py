"""Polar's configuration keys (``SEAT_BILLING_POLAR_*``), checked once at ``init_app``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ...config_values import is_loopback_url
from ...errors import ConfigurationError
from ..spec import ProviderSettings

STAND_IN_TOKEN = "polar_stand_in"
SANDBOX = "sandbox"
SANDBOX_RATE = 1.5  # 100 requests a minute
LIVE_RATE = 7.0  # 500 requests a minute

DEFAULTS: dict[str, Any] = {
    "SEAT_BILLING_POLAR_ACCESS_TOKEN": None,
    "SEAT_BILLING_POLAR_WEBHOOK_SECRET": None,
    "SEAT_BILLING_POLAR_SERVER_URL": None,
}


@dataclass(frozen=True)
class PolarSettings(ProviderSettings):
    """``server_url``: None is production, ``"sandbox"`` the sandbox, a URL anything else."""

    access_token: str
    server_url: str | None

    webhook_secret_key: ClassVar[str] = "SEAT_BILLING_POLAR_WEBHOOK_SECRET"

    def requests_per_second(self) -> float:
        live = not self.server_url or self.server_url == "production"
        return LIVE_RATE if live else SANDBOX_RATE


def read_settings(config: Mapping[str, Any]) -> PolarSettings:
    """The Polar keys; a missing token is an error unless the server is a local stand-in."""
    token = config["SEAT_BILLING_POLAR_ACCESS_TOKEN"]
    url = config["SEAT_BILLING_POLAR_SERVER_URL"]
    if not token:
        if not is_loopback_url(url):
            raise ConfigurationError(
                "SEAT_BILLING_POLAR_ACCESS_TOKEN is not set. Set it to a Polar access token, "
                "or set "
                "SEAT_BILLING_POLAR_SERVER_URL to a local stand-in (flask_seat_billing.testing)."
            )
        token = STAND_IN_TOKEN
    return PolarSettings(
        webhook_secret=config["SEAT_BILLING_POLAR_WEBHOOK_SECRET"],
        access_token=str(token),
        server_url=url,
    )
