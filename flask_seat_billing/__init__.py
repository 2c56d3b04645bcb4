"""flask-seat-billing: per-seat subscription billing whose quantity follows membership."""

from __future__ import annotations

from .counting import SeatCount
from .errors import (
    ConfigurationError,
    InvalidOrganizationKey,
    InvalidProviderId,
    PermanentProviderError,
    PolicyDenied,
    ProviderError,
    ProviderUnavailable,
    SeatBillingError,
    SeatLimitReached,
    TransientProviderError,
)
from .extension import SeatBilling
from .membership import InvitationFields
from .plans import Plan, Product
from .sync import SyncResult

__all__ = [
    "ConfigurationError",
    "InvalidOrganizationKey",
    "InvalidProviderId",
    "InvitationFields",
    "PermanentProviderError",
    "Plan",
    "PolicyDenied",
    "Product",
    "ProviderError",
    "ProviderUnavailable",
    "SeatBilling",
    "SeatBillingError",
    "SeatCount",
    "SeatLimitReached",
    "SyncResult",
    "TransientProviderError",
]
