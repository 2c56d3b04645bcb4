"""The ``flask seats`` commands and the plain functions behind them (callable without click)."""

from __future__ import annotations

from .check_config import check_config
from .commands import seats
from .errors import CommandError, UnknownOrganization
from .ratelimit import RateLimiter, default_rate
from .resync import OrgResync, ResyncReport, resync
from .status import DrainReport, OrgStatus, organization_status, sync_pending

__all__ = [
    "CommandError", "DrainReport", "OrgResync", "OrgStatus", "RateLimiter", "ResyncReport",
    "UnknownOrganization", "check_config", "default_rate", "organization_status", "resync",
    "seats", "sync_pending",
]
