"""Configuration keys, their defaults, and the checks that make a bad configuration fail at start.

Every key is read once in ``init_app`` into a frozen :class:`Settings`, so the engine never reads
``app.config`` on a hot path and a typo cannot surface hours later in a background thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config_values import choice, non_negative
from .errors import ConfigurationError
from .plans import PRORATION_BEHAVIORS, SEAT_DECREASES, Plan, PlanCatalog, Product
from .providers import (
    PROVIDERS,
    ProviderSettings,
    config_defaults,
    read_provider_settings,
    spec_for,
)

SYNC_MODES = ("inline", "deferred", "manual")
EXTERNAL_CHANGE_MODES = ("accept", "correct")
DISPATCH_MODES = ("thread", "celery")
WEBHOOK_PROCESSING_MODES = ("inline", "queued")

CORE_DEFAULTS: dict[str, Any] = {
    "SEAT_BILLING_PROVIDER": "stripe",
    "SEAT_BILLING_PROVIDER_TIMEOUT_SECONDS": 20.0,
    "SEAT_BILLING_PRORATION_BEHAVIOR": "create_prorations",
    "SEAT_BILLING_INCLUDED_SEATS": 0,
    "SEAT_BILLING_MINIMUM_SEATS": 1,
    "SEAT_BILLING_COUNT_PENDING_INVITATIONS": False,
    "SEAT_BILLING_SYNC_MODE": "inline",
    "SEAT_BILLING_SYNC_DEBOUNCE_SECONDS": 2.0,
    "SEAT_BILLING_RETRY_BASE_SECONDS": 2.0,
    "SEAT_BILLING_RETRY_MAX_SECONDS": 600.0,
    "SEAT_BILLING_CIRCUIT_BREAKER_FAILURES": 3,
    "SEAT_BILLING_POLL_SECONDS": 5.0,
    "SEAT_BILLING_URL_PREFIX": "/billing",
    "SEAT_BILLING_EXTERNAL_CHANGE": "accept",
    "SEAT_BILLING_WEBHOOK_MAX_BYTES": 1024 * 1024,
    "SEAT_BILLING_WEBHOOK_TOLERANCE_SECONDS": 300,
    "SEAT_BILLING_MAX_REQUESTS_PER_SECOND": None,
    "SEAT_BILLING_ALLOWED_REDIRECT_HOSTS": None,
    "SEAT_BILLING_NAMESPACE": None,
    "SEAT_BILLING_OUTBOX_AT_COMMIT": True,
    "SEAT_BILLING_DISPATCH": "thread",
    "SEAT_BILLING_WEBHOOK_PROCESSING": "inline",
    "SEAT_BILLING_CELERY_APP_ID": None,
    "SEAT_BILLING_CELERY_QUEUE": None,
    "SEAT_BILLING_CELERY_REDIS_URL": None,
    "SEAT_BILLING_CELERY_KEY_PREFIX": "seat_billing",
    "SEAT_BILLING_SWEEP_SECONDS": 30.0,
    "SEAT_BILLING_SEAT_DECREASE": "immediately",
    "SEAT_BILLING_SEAT_DECREASE_MARGIN_SECONDS": 3600,
}
# The core keys, then every provider's own (``SEAT_BILLING_STRIPE_*``, ``SEAT_BILLING_POLAR_*``).
DEFAULTS: dict[str, Any] = {**CORE_DEFAULTS, **config_defaults()}


@dataclass(frozen=True)
class Settings:
    """The checked, typed view of the ``SEAT_BILLING_*`` keys of one app.

    ``provider_settings`` is the chosen provider's own object (its keys, its webhook secret),
    read by the provider's folder through the provider table.
    """

    provider: str
    provider_settings: ProviderSettings
    provider_timeout: float
    proration_behavior: str
    included_seats: int
    minimum_seats: int
    count_pending_invitations: bool
    sync_mode: str
    debounce_seconds: float
    retry_base_seconds: float
    retry_max_seconds: float
    circuit_breaker_failures: int
    poll_seconds: float
    url_prefix: str
    external_change: str
    webhook_max_bytes: int
    webhook_tolerance: int
    max_requests_per_second: float | None
    allowed_redirect_hosts: tuple[str, ...] = ()
    namespace: str | None = None
    outbox_at_commit: bool = True
    dispatch: str = "thread"
    webhook_processing: str = "inline"
    celery_app_id: str | None = None
    celery_queue: str | None = None
    celery_redis_url: str | None = None
    celery_key_prefix: str = "seat_billing"
    sweep_seconds: float = 30.0
    seat_decrease: str = "immediately"
    seat_decrease_margin_seconds: float = 3600.0


def _positive_seconds(config: dict[str, Any], key: str) -> float:
    """A period: 0 would make beat run the sweep back to back."""
    value = non_negative(config, key, float)
    if value <= 0:
        raise ConfigurationError(f"{key} must be a number of seconds > 0, got {value!r}.")
    return float(value)


def _optional_text(config: dict[str, Any], key: str) -> str | None:
    value = config[key]
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigurationError(f"{key} must be None or a non-empty string, got {value!r}.")
    return value


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
    provider = choice(config, "SEAT_BILLING_PROVIDER", tuple(PROVIDERS))
    provider_settings = read_provider_settings(provider, config)
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
    dispatch = choice(config, "SEAT_BILLING_DISPATCH", DISPATCH_MODES)
    processing = choice(config, "SEAT_BILLING_WEBHOOK_PROCESSING", WEBHOOK_PROCESSING_MODES)
    if processing == "queued" and dispatch != "celery":
        raise ConfigurationError(
            'SEAT_BILLING_WEBHOOK_PROCESSING = "queued" needs a task queue: set '
            'SEAT_BILLING_DISPATCH = "celery" too (and call seat_billing.use_celery).'
        )
    key_prefix = _optional_text(config, "SEAT_BILLING_CELERY_KEY_PREFIX") or "seat_billing"
    prefix = str(config["SEAT_BILLING_URL_PREFIX"] or "")
    if prefix and not prefix.startswith("/"):
        raise ConfigurationError(f"SEAT_BILLING_URL_PREFIX must start with '/', got {prefix!r}.")
    return Settings(
        provider=provider,
        provider_settings=provider_settings,
        provider_timeout=non_negative(config, "SEAT_BILLING_PROVIDER_TIMEOUT_SECONDS", float),
        proration_behavior=choice(config, "SEAT_BILLING_PRORATION_BEHAVIOR", PRORATION_BEHAVIORS),
        included_seats=non_negative(config, "SEAT_BILLING_INCLUDED_SEATS"),
        minimum_seats=non_negative(config, "SEAT_BILLING_MINIMUM_SEATS"),
        count_pending_invitations=bool(config["SEAT_BILLING_COUNT_PENDING_INVITATIONS"]),
        sync_mode=choice(config, "SEAT_BILLING_SYNC_MODE", SYNC_MODES),
        debounce_seconds=non_negative(config, "SEAT_BILLING_SYNC_DEBOUNCE_SECONDS", float),
        retry_base_seconds=non_negative(config, "SEAT_BILLING_RETRY_BASE_SECONDS", float),
        retry_max_seconds=non_negative(config, "SEAT_BILLING_RETRY_MAX_SECONDS", float),
        circuit_breaker_failures=non_negative(config, "SEAT_BILLING_CIRCUIT_BREAKER_FAILURES"),
        poll_seconds=non_negative(config, "SEAT_BILLING_POLL_SECONDS", float),
        url_prefix=prefix,
        external_change=choice(config, "SEAT_BILLING_EXTERNAL_CHANGE", EXTERNAL_CHANGE_MODES),
        webhook_max_bytes=non_negative(config, "SEAT_BILLING_WEBHOOK_MAX_BYTES"),
        webhook_tolerance=non_negative(config, "SEAT_BILLING_WEBHOOK_TOLERANCE_SECONDS"),
        max_requests_per_second=float(rate) if rate is not None else None,
        allowed_redirect_hosts=_hosts(config, "SEAT_BILLING_ALLOWED_REDIRECT_HOSTS"),
        namespace=namespace,
        outbox_at_commit=bool(config["SEAT_BILLING_OUTBOX_AT_COMMIT"]),
        dispatch=dispatch,
        webhook_processing=processing,
        celery_app_id=_optional_text(config, "SEAT_BILLING_CELERY_APP_ID"),
        celery_queue=_optional_text(config, "SEAT_BILLING_CELERY_QUEUE"),
        celery_redis_url=_optional_text(config, "SEAT_BILLING_CELERY_REDIS_URL"),
        celery_key_prefix=key_prefix,
        sweep_seconds=_positive_seconds(config, "SEAT_BILLING_SWEEP_SECONDS"),
        seat_decrease=choice(config, "SEAT_BILLING_SEAT_DECREASE", SEAT_DECREASES),
        seat_decrease_margin_seconds=non_negative(
            config, "SEAT_BILLING_SEAT_DECREASE_MARGIN_SECONDS", float
        ),
    )


def check_catalog(products: list[Product], provider: str) -> PlanCatalog:
    """Reject plan sets the provider would refuse later, naming the plan at fault.

    The rules every provider shares are here; the provider's own (Polar has no separate seat
    price, Stripe Checkout refuses mixed intervals) are its folder's ``check_plans``.
    """
    seen: dict[str, str] = {}
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
            if plan.seat_decrease is not None and plan.seat_decrease not in SEAT_DECREASES:
                raise ConfigurationError(
                    f"Plan {plan.name!r} has unknown seat_decrease {plan.seat_decrease!r}; "
                    f"expected one of {', '.join(SEAT_DECREASES)}."
                )
            _check_seat_types(plan)
            limit = plan.limits.get("seats")
            if plan.seat_prices and isinstance(limit, dict):
                limit = None  # checked per type by _check_seat_types
            if limit is not None and (not isinstance(limit, int) or limit < 0):
                raise ConfigurationError(
                    f"Plan {plan.name!r} has limits['seats'] = {limit!r}; expected a "
                    "non-negative integer."
                )
            if plan.cost < 0:
                raise ConfigurationError(f"Plan {plan.name!r} has a negative cost.")
    spec = spec_for(provider)
    for product in products:
        for plan in product.plans:
            if plan.seat_prices and not spec.capabilities.seat_types:
                raise ConfigurationError(
                    f"Plan {plan.name!r} sets seat_prices (several seat types), which "
                    f"{provider} cannot bill: it has no separate seat prices. Use one seat "
                    "price per plan there."
                )
    spec.check_plans([plan for product in products for plan in product.plans])
    return PlanCatalog(products)


def _check_seat_types(plan: Plan) -> None:
    """``seat_prices``: a non-empty mapping of type names to distinct price ids, apart from the
    base price and exclusive of ``seat_price_id``; per-type caps, included and minimum seats
    only for declared types."""
    if plan.seat_prices is None:
        for name in ("included_seats", "minimum_seats"):
            if getattr(plan, name) is not None:
                raise ConfigurationError(
                    f"Plan {plan.name!r} sets {name} per seat type but no seat_prices; a plan "
                    "of one seat price uses SEAT_BILLING_INCLUDED_SEATS / "
                    "SEAT_BILLING_MINIMUM_SEATS (or a seat_rule).")
        return
    prices = plan.seat_prices
    if not isinstance(prices, dict) or not prices or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in prices.items()
    ):
        raise ConfigurationError(
            f"Plan {plan.name!r} has seat_prices = {prices!r}; expected a non-empty mapping of "
            "seat type names to price ids."
        )
    if plan.seat_price_id is not None:
        raise ConfigurationError(
            f"Plan {plan.name!r} sets both seat_price_id and seat_prices; use one."
        )
    if len(set(prices.values())) != len(prices) or plan.plan_id in prices.values():
        raise ConfigurationError(
            f"Plan {plan.name!r}: each seat type needs a price of its own, apart from the "
            f"base price plan_id {plan.plan_id!r}."
        )
    limit = plan.limits.get("seats")
    if isinstance(limit, dict):
        for kind, cap in limit.items():
            if kind not in prices or not isinstance(cap, int) or isinstance(cap, bool) or cap < 0:
                raise ConfigurationError(
                    f"Plan {plan.name!r} has limits['seats'][{kind!r}] = {cap!r}; expected a "
                    f"non-negative integer for one of its seat types ({', '.join(sorted(prices))})."
                )
    for name in ("included_seats", "minimum_seats"):
        given = getattr(plan, name)
        if given is None:
            continue
        if not isinstance(given, dict):
            raise ConfigurationError(
                f"Plan {plan.name!r} has {name} = {given!r}; expected a mapping of its seat "
                f"types ({', '.join(sorted(prices))}) to non-negative integers.")
        for kind, n in given.items():
            if kind not in prices:
                raise ConfigurationError(
                    f"Plan {plan.name!r} has {name}[{kind!r}], but {kind!r} is not one of its "
                    f"seat types ({', '.join(sorted(prices))}).")
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ConfigurationError(
                    f"Plan {plan.name!r} has {name}[{kind!r}] = {n!r}; expected a non-negative "
                    "integer.")
