"""Errors the CLI turns into a one-line message and exit code 2 (no traceback)."""

from __future__ import annotations

from ..errors import SeatBillingError


class CommandError(SeatBillingError):
    """A command cannot run as asked: unknown organization, unsupported provider, bad input."""


class UnknownOrganization(CommandError):
    """``--org`` named an organization with no members, invitations or subscription."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(f"Unknown organization: {', '.join(keys)}.")
        self.keys = keys
