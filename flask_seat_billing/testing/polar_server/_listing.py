"""List endpoints: Polar's query parameters, validation, filters, sorting and pagination.

The SDK sends list filters as repeated query keys (``product_id=a&product_id=b``), booleans as
``true``/``false``, ``sorting`` as repeated ``-started_at``-style values and metadata in
``deepObject`` style (``metadata[key]=value``). Pages are 1-based, ``limit`` at most 100, and the
answer is ``{"items": [...], "pagination": {"total_count", "max_page"}}``; the SDK's ``iter_list``
stops when ``page >= max_page``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from datetime import datetime, timezone
from typing import Any

from werkzeug.datastructures import MultiDict

from . import _errors as err
from ._models import Subscription
from ._serialize import ORGANIZATION_ID, page_json
from ._store import ACTIVE_STATUSES, PolarStore

__all__ = ["page_params", "paginate", "parse_bool", "subscription_page"]

JSON = dict[str, Any]
Args = MultiDict[str, str]

SUBSCRIPTION_STATUSES = frozenset(
    {
        "incomplete",
        "incomplete_expired",
        "trialing",
        "active",
        "past_due",
        "canceled",
        "unpaid",
        "paused",
    }
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_bool(args: Args, name: str) -> bool | None:
    """A boolean query parameter as FastAPI reads it; anything else is a 422."""
    raw = args.get(name)
    if raw is None:
        return None
    lowered = raw.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise err.validation_error(
        ["query", name], "Input should be a valid boolean", "bool_parsing", raw
    )


def _parse_int(args: Args, name: str, default: int, low: int, high: int | None) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise err.validation_error(
            ["query", name], "Input should be a valid integer", "int_parsing", raw
        ) from None
    if value < low:
        raise err.validation_error(
            ["query", name], f"Input should be greater than {low - 1}", "greater_than", raw
        )
    if high is not None and value > high:
        raise err.validation_error(
            ["query", name],
            f"Input should be less than or equal to {high}",
            "less_than_equal",
            raw,
        )
    return value


def page_params(args: Args) -> tuple[int, int]:
    """``page`` (>= 1, default 1) and ``limit`` (1..100, default 10)."""
    return _parse_int(args, "page", 1, 1, None), _parse_int(args, "limit", 10, 1, 100)


def _parse_datetime(args: Args, name: str) -> datetime | None:
    raw = args.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise err.validation_error(
            ["query", name], "Input should be a valid datetime", "datetime_parsing", raw
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _metadata_filter(args: Args) -> dict[str, frozenset[str]]:
    wanted: dict[str, frozenset[str]] = {}
    for key in args:
        if key.startswith("metadata[") and key.endswith("]"):
            wanted[key[9:-1]] = frozenset(args.getlist(key))
    return wanted


def _meta_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def paginate(items: Sized, page: int, limit: int) -> tuple[int, int, int]:
    """Slice bounds and total for 1-based ``page``: (start, stop, total)."""
    total = len(items)
    start = (page - 1) * limit
    return start, min(start + limit, total), total


def _sort_key(store: PolarStore, prop: str) -> Callable[[Subscription], Any]:
    products, customers = store.products, store.customers
    if prop == "started_at":
        return lambda s: (s.started_at or _EPOCH, s.seq)
    if prop in ("current_period_end", "ended_at", "ends_at"):
        return lambda s: (getattr(s, prop) is None, getattr(s, prop) or _EPOCH)
    if prop == "status":
        return lambda s: s.status
    if prop == "customer":
        return lambda s: customers[s.customer_id].email
    if prop == "product":
        return lambda s: products[s.product_id].name
    if prop == "amount":
        return lambda s: products[s.product_id].amount(s.seats)
    if prop == "discount":
        return lambda s: 0
    raise err.validation_error(["query", "sorting", 0], "Invalid sorting criterion", "enum", prop)


def _filtered_ids(store: PolarStore, args: Args) -> list[str]:
    subs: Iterable[Subscription]
    wanted: set[str] | None = set(args.getlist("customer_id")) or None
    external = args.getlist("external_customer_id")
    if external:
        by_external = store.customers_by_external
        resolved = {cid for e in external if (cid := by_external.get(e)) is not None}
        wanted = resolved if wanted is None else wanted & resolved
    if wanted is not None:
        by_customer = store.subs_by_customer
        subs = [store.subscriptions[sid] for cid in wanted for sid in by_customer.get(cid, ())]
    else:
        subs = store.subscriptions.values()
    org_ids = args.getlist("organization_id")
    if (org_ids and ORGANIZATION_ID not in org_ids) or args.getlist("discount_id"):
        return []
    checks: list[Callable[[Subscription], bool]] = []
    products = set(args.getlist("product_id"))
    if products:
        checks.append(lambda s: s.product_id in products)
    statuses = set(args.getlist("status"))
    unknown = statuses - SUBSCRIPTION_STATUSES
    if unknown:
        raise err.validation_error(
            ["query", "status"], "Input should be a subscription status", "enum", sorted(unknown)
        )
    if statuses:
        checks.append(lambda s: s.status in statuses)
    active = parse_bool(args, "active")
    if active is not None:
        checks.append(lambda s: (s.status in ACTIVE_STATUSES) is active)
    canceling = parse_bool(args, "cancel_at_period_end")
    if canceling is not None:
        checks.append(lambda s: s.cancel_at_period_end is canceling)
    reasons = set(args.getlist("customer_cancellation_reason"))
    if reasons:
        checks.append(lambda s: s.customer_cancellation_reason in reasons)
    for name, attr, after in (
        ("canceled_at_after", "canceled_at", True),
        ("canceled_at_before", "canceled_at", False),
        ("started_after", "started_at", True),
        ("started_before", "started_at", False),
    ):
        bound = _parse_datetime(args, name)
        if bound is not None:
            checks.append(_bound_check(attr, bound, after))
    for key, values in _metadata_filter(args).items():
        checks.append(_metadata_check(key, values))
    selected = [s for s in subs if all(check(s) for check in checks)]
    selected.sort(key=lambda s: s.seq)
    for criterion in reversed(args.getlist("sorting") or ["-started_at"]):
        descending = criterion.startswith("-")
        selected.sort(key=_sort_key(store, criterion.lstrip("-")), reverse=descending)
    return [s.id for s in selected]


def _metadata_check(key: str, values: frozenset[str]) -> Callable[[Subscription], bool]:
    def check(sub: Subscription) -> bool:
        return key in sub.metadata and _meta_text(sub.metadata[key]) in values

    return check


def _bound_check(attr: str, bound: datetime, after: bool) -> Callable[[Subscription], bool]:
    def check(sub: Subscription) -> bool:
        value: datetime | None = getattr(sub, attr)
        if value is None:
            return False
        return value >= bound if after else value <= bound

    return check


def subscription_page(store: PolarStore, args: Args) -> JSON:
    """``GET /v1/subscriptions/`` under the store lock; cached per (filters, version)."""
    page, limit = page_params(args)
    key = tuple(sorted((k, tuple(args.getlist(k))) for k in args if k not in ("page", "limit")))
    with store.lock:
        ids = store.list_cache.get(key)
        if ids is None:
            ids = store.list_cache[key] = _filtered_ids(store, args)
        start, stop, total = paginate(ids, page, limit)
        items = [store.subscription_json(store.subscriptions[i]) for i in ids[start:stop]]
    return page_json(items, total, limit)
