"""The exceptions flask-seat-billing raises, in one place so apps can catch them by kind."""

from __future__ import annotations

from typing import Any


class SeatBillingError(Exception):
    """Base class of every error this extension raises."""


class ConfigurationError(SeatBillingError):
    """The extension was configured wrongly; raised by ``init_app`` so a bad deploy fails early."""


class ProviderError(SeatBillingError):
    """A billing provider call failed.

    Subclasses say whether trying again can help, because the sync engine must never retry a
    refusal forever nor give up on an outage.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class TransientProviderError(ProviderError):
    """Worth retrying: the provider was down, slow, rate limiting, or the connection broke.

    ``retry_after`` carries the provider's own hint (a 429's ``Retry-After``) in seconds.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """Retrying cannot succeed: canceled subscription, bad price, refused payment."""


class InvalidProviderId(PermanentProviderError, ValueError):
    """An id that is not of the provider's shape; refused before any request is sent.

    Ids go into URL paths (``/v1/subscriptions/{id}``), so one like ``../customers/`` would
    otherwise call another endpoint with the merchant's credentials. It is a ``ValueError``
    (bad input) and a permanent provider error (a sync holding such an id must not retry it).
    """


class ProviderUnavailable(TransientProviderError):
    """The provider could not be reached at all (connection refused, timeout)."""


class PolicyDenied(SeatBillingError):
    """A before-policy refused an action; ``code``, ``message`` and ``details`` say why."""

    def __init__(
        self, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        """The JSON body an error handler can answer with."""
        return {"code": self.code, "message": self.message, "details": self.details}


class SeatLimitReached(PolicyDenied):
    """The organization has used every seat its plan allows (``limits.seats``)."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__("SEAT_LIMIT_REACHED", message, details)


class InvalidOrganizationKey(SeatBillingError, ValueError):
    """An organization id that cannot be made into one canonical key (see :mod:`.keys`).

    Raised at flush for a member change (nothing is written), and by the public API and routes
    (a 400) for an id the organization column could not store as that organization.
    """

    def __init__(self, value: Any, reason: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"Organization id {shown} is not valid: {reason}.")
        self.value = value
        self.reason = reason
