"""Configuration keys, their defaults, and the checks that make a bad configuration fail at start.

Every key is read once in ``init_app`` into a frozen :class:`Settings`, so the engine never reads
``app.config`` on a hot path and a typo cannot surface hours later in a background thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from .errors import ConfigurationError
from .plans import PRORATION_BEHAVIORS, PlanCatalog, Product

PROVIDERS = ("stripe", "polar")
SYNC_MODES = ("inline", "deferred", "manual")
EXTERNAL_CHANGE_MODES = ("accept", "correct")
STAND_IN_KEY = "sk_test_stand_in"

DEFAULTS: dict[str, Any] = {
    "SEAT_BILLING_PROVIDER": "stripe",
    "SEAT_BILLING_STRIPE_SECRET_KEY": None,
    "SEAT_BILLING_STRIPE_WEBHOOK_SECRET": None,
    "SEAT_BILLING_STRIPE_API_BASE": None,
    "SEAT_BILLING_STRIPE_MAX_NETWORK_RETRIES": 2,
    "SEAT_BILLING_POLAR_ACCESS_TOKEN": None,
    "SEAT_BILLING_POLAR_WEBHOOK_SECRET": None,
    "SEAT_BILLING_POLAR_SERVER_URL": None,
    "SEAT_BILLING_PROVIDER_TIMEOUT_SECONDS": 20.0,
    "SEAT_BILLING_PRORATION_BEHAVIOR": "create_prorations",
    "SEAT_BILLING_INCLUDED_SEATS": 0,
    "SEAT_BILLING_MINIMUM_SEATS": 1,
    "SEAT_BILLING_COUNT_PENDING_INVITATIONS": False,
    "SEAT_BILLING_SYNC_MODE": "inline",
    "SEAT_BILLING_SYNC_DEBOUNCE_SECONDS": 2.0,
    "SEAT_BILLING_RETRY_BASE_SECONDS": 2.0,
    "SEAT_BILLING_RETRY_MAX_SECONDS": 600.0,
    "SEAT_BILLING_POLL_SECONDS": 5.0,
    "SEAT_BILLING_URL_PREFIX": "/billing",
    "SEAT_BILLING_EXTERNAL_CHANGE": "accept",
    "SEAT_BILLING_WEBHOOK_MAX_BYTES": 1024 * 1024,
    "SEAT_BILLING_WEBHOOK_TOLERANCE_SECONDS": 300,
    "SEAT_BILLING_MAX_REQUESTS_PER_SECOND": None,
    "SEAT_BILLING_ALLOWED_REDIRECT_HOSTS": None,
    "SEAT_BILLING_NAMESPACE": None,
}


@dataclass(frozen=True)
class Settings:
    """The checked, typed view of the ``SEAT_BILLING_*`` keys of one app."""

    provider: str
    stripe_secret_key: str | None
    stripe_webhook_secret: str | None
    stripe_api_base: str | None
    stripe_max_network_retries: int
    polar_access_token: str | None
    polar_webhook_secret: str | None
    polar_server_url: str | None
    provider_timeout: float
    proration_behavior: str
    included_seats: int
    minimum_seats: int
    count_pending_invitations: bool
    sync_mode: str
    debounce_seconds: float
    retry_base_seconds: float
    retry_max_seconds: float
    poll_seconds: float
    url_prefix: str
    external_change: str
    webhook_max_bytes: int
    webhook_tolerance: int
    max_requests_per_second: float | None
    allowed_redirect_hosts: tuple[str, ...] = ()
    namespace: str | None = None


def is_loopback_url(url: str | None) -> bool:
    """True for a stand-in on this machine, which needs no real credentials."""
    if not url:
        return False
    host = urlparse(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _choice(config: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = config[key]
    if value not in allowed:
        raise ConfigurationError(f"{key} is {value!r}; expected one of {', '.join(allowed)}.")
    return str(value)


def _non_negative(config: dict[str, Any], key: str, kind: type = int) -> Any:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigurationError(f"{key} must be a non-negative number, got {value!r}.")
    return kind(value)


def _hosts(config: dict[str, Any], key: str) -> tuple[str, ...]:
    """A list of host names (``"app.example.com"``, ``".example.com"`` for subdomains); a string
    is read as a comma-separated list, so the key can come from an environment variable."""
    value = config[key]
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple, set, frozenset)) or not all(
        isinstance(h, str) for h in items
    ):
        raise ConfigurationError(f"{key} must be a list of host names, got {value!r}.")
    hosts = tuple(h.strip() for h in items if h.strip())
    for host in hosts:
        if "/" in host or "@" in host or any(c.isspace() for c in host):
            raise ConfigurationError(
                f"{key} holds {host!r}; expected a host name such as 'app.example.com' "
                "(no scheme or path)."
            )
    return hosts


def read_settings(config: dict[str, Any]) -> Settings:
    """Check every key and build :class:`Settings`; a :class:`ConfigurationError` names the key."""
    provider = _choice(config, "SEAT_BILLING_PROVIDER", PROVIDERS)
    stripe_key = config["SEAT_BILLING_STRIPE_SECRET_KEY"]
    api_base = config["SEAT_BILLING_STRIPE_API_BASE"]
    if provider == "stripe" and not stripe_key:
        if not is_loopback_url(api_base):
            raise ConfigurationError(
                "SEAT_BILLING_STRIPE_SECRET_KEY is not set. Set it to your Stripe secret key, "
                "or set "
                "SEAT_BILLING_STRIPE_API_BASE to a local stand-in (flask_seat_billing.testing)."
            )
        stripe_key = STAND_IN_KEY
    polar_token = config["SEAT_BILLING_POLAR_ACCESS_TOKEN"]
    polar_url = config["SEAT_BILLING_POLAR_SERVER_URL"]
    if provider == "polar" and not polar_token:
        if not is_loopback_url(polar_url):
            raise ConfigurationError(
                "SEAT_BILLING_POLAR_ACCESS_TOKEN is not set. Set it to a Polar access token, "
                "or set "
                "SEAT_BILLING_POLAR_SERVER_URL to a local stand-in (flask_seat_billing.testing)."
            )
        polar_token = "polar_stand_in"
    rate = config["SEAT_BILLING_MAX_REQUESTS_PER_SECOND"]
    if rate is not None and (not isinstance(rate, (int, float)) or rate <= 0):
        raise ConfigurationError(
            f"SEAT_BILLING_MAX_REQUESTS_PER_SECOND must be a positive number or None, got {rate!r}."
        )
    namespace = config["SEAT_BILLING_NAMESPACE"]
    if namespace is not None and (
        not isinstance(namespace, str) or not namespace.strip() or len(namespace) > 100
    ):
        raise ConfigurationError(
            f"SEAT_BILLING_NAMESPACE must be None or a non-empty string of at most 100 "
            f"characters, got {namespace!r}."
        )
    prefix = str(config["SEAT_BILLING_URL_PREFIX"] or "")
    if prefix and not prefix.startswith("/"):
        raise ConfigurationError(f"SEAT_BILLING_URL_PREFIX must start with '/', got {prefix!r}.")
    return Settings(
        provider=provider,
        stripe_secret_key=stripe_key,
        stripe_webhook_secret=config["SEAT_BILLING_STRIPE_WEBHOOK_SECRET"],
        stripe_api_base=api_base,
        stripe_max_network_retries=_non_negative(config, "SEAT_BILLING_STRIPE_MAX_NETWORK_RETRIES"),
        polar_access_token=polar_token,
        polar_webhook_secret=config["SEAT_BILLING_POLAR_WEBHOOK_SECRET"],
        polar_server_url=polar_url,
        provider_timeout=_non_negative(config, "SEAT_BILLING_PROVIDER_TIMEOUT_SECONDS", float),
        proration_behavior=_choice(config, "SEAT_BILLING_PRORATION_BEHAVIOR", PRORATION_BEHAVIORS),
        included_seats=_non_negative(config, "SEAT_BILLING_INCLUDED_SEATS"),
        minimum_seats=_non_negative(config, "SEAT_BILLING_MINIMUM_SEATS"),
        count_pending_invitations=bool(config["SEAT_BILLING_COUNT_PENDING_INVITATIONS"]),
        sync_mode=_choice(config, "SEAT_BILLING_SYNC_MODE", SYNC_MODES),
        debounce_seconds=_non_negative(config, "SEAT_BILLING_SYNC_DEBOUNCE_SECONDS", float),
        retry_base_seconds=_non_negative(config, "SEAT_BILLING_RETRY_BASE_SECONDS", float),
        retry_max_seconds=_non_negative(config, "SEAT_BILLING_RETRY_MAX_SECONDS", float),
        poll_seconds=_non_negative(config, "SEAT_BILLING_POLL_SECONDS", float),
        url_prefix=prefix,
        external_change=_choice(config, "SEAT_BILLING_EXTERNAL_CHANGE", EXTERNAL_CHANGE_MODES),
        webhook_max_bytes=_non_negative(config, "SEAT_BILLING_WEBHOOK_MAX_BYTES"),
        webhook_tolerance=_non_negative(config, "SEAT_BILLING_WEBHOOK_TOLERANCE_SECONDS"),
        max_requests_per_second=float(rate) if rate is not None else None,
        allowed_redirect_hosts=_hosts(config, "SEAT_BILLING_ALLOWED_REDIRECT_HOSTS"),
        namespace=namespace,
    )


def check_catalog(products: list[Product], provider: str) -> PlanCatalog:
    """Reject plan sets the provider would refuse later, naming the plan at fault."""
    seen: dict[str, str] = {}
    seat_interval: dict[str, tuple[str, str]] = {}
    for product in products:
        for plan in product.plans:
            if plan.name in seen:
                raise ConfigurationError(
                    f"Plan name {plan.name!r} is used twice (products {seen[plan.name]!r} and "
                    f"{product.id!r}); plan names must be unique."
                )
            seen[plan.name] = product.id
            if not plan.plan_id:
                raise ConfigurationError(f"Plan {plan.name!r} has no plan_id.")
            if plan.proration_behavior is not None and (
                plan.proration_behavior not in PRORATION_BEHAVIORS
            ):
                raise ConfigurationError(
                    f"Plan {plan.name!r} has unknown proration_behavior "
                    f"{plan.proration_behavior!r}; expected one of "
                    f"{', '.join(PRORATION_BEHAVIORS)}."
                )
            limit = plan.limits.get("seats")
            if limit is not None and (not isinstance(limit, int) or limit < 0):
                raise ConfigurationError(
                    f"Plan {plan.name!r} has limits['seats'] = {limit!r}; expected a "
                    "non-negative integer."
                )
            if plan.cost < 0:
                raise ConfigurationError(f"Plan {plan.name!r} has a negative cost.")
            if plan.seat_price_id is None:
                continue
            if provider == "polar":
                raise ConfigurationError(
                    f"Plan {plan.name!r} sets seat_price_id, which is Stripe-only: Polar bills "
                    "seats on the product itself. Remove seat_price_id for Polar."
                )
            other = seat_interval.get(plan.seat_price_id)
            if other is not None and other[1] != plan.interval:
                raise ConfigurationError(
                    f"Plans {other[0]!r} ({other[1]}) and {plan.name!r} ({plan.interval}) share "
                    f"seat price {plan.seat_price_id!r}; Stripe Checkout rejects mixed intervals. "
                    "Use one seat price per interval."
                )
            seat_interval[plan.seat_price_id] = (plan.name, plan.interval)
    return PlanCatalog(products)
