"""Resync's pull: list the provider's subscriptions in pages and bring the local table up to date.

One listing call per page, never one per organization, and one query to load every local row:
the diff is computed in memory and written back with one bulk insert and one bulk update, so
10,000 subscriptions cost a handful of statements rather than 20,000.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..errors import ProviderUnavailable, TransientProviderError
from ..providers.base import (
    NAMESPACE_KEY,
    SUBSCRIBED_STATUSES,
    BillingProvider,
    RemoteSubscription,
)
from ..tables import Tables, utcnow
from .ratelimit import RateLimiter

log = logging.getLogger("flask_seat_billing.cli")
PAGE_SIZE = 100
PAGE_ATTEMPTS = 8
SYNCED_FIELDS = (
    "provider_customer_id", "plan_name", "seat_item_id", "seats", "status",
    "current_period_start", "current_period_end", "trial_start", "trial_end",
    "cancel_at_period_end", "cancel_at", "canceled_at", "ended_at", "provider_created_at",
    "namespace",
)
Progress = Callable[[int], None]


def fetch_all(
    provider: BillingProvider, limiter: RateLimiter, progress: Progress | None = None
) -> list[RemoteSubscription]:
    """Every provider subscription, page by page; a 429 slows down and retries the page."""
    result: list[RemoteSubscription] = []
    for page in _pages(provider, limiter):
        result.extend(page)
        if progress is not None:
            progress(len(page))
    return result


def _pages(provider: BillingProvider, limiter: RateLimiter) -> Iterator[list[RemoteSubscription]]:
    cursor: str | None = None
    while True:
        for attempt in range(1, PAGE_ATTEMPTS + 1):
            limiter.acquire()
            try:
                page = provider.list_subscriptions_page(starting_after=cursor, page_size=PAGE_SIZE)
            except NotImplementedError:
                yield _whole_listing(provider, limiter)
                return
            except ProviderUnavailable:
                raise  # the SDK already retried the connection; waiting longer rarely helps
            except TransientProviderError as error:
                if attempt == PAGE_ATTEMPTS:
                    raise
                wait = limiter.slow_down(error.retry_after)
                log.warning("listing page failed (%s); slowing down, retry in %.1fs", error, wait)
                continue
            limiter.succeeded()
            break
        yield page.subscriptions
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _whole_listing(provider: BillingProvider, limiter: RateLimiter) -> list[RemoteSubscription]:
    """For providers without cursor paging: the whole listing, restarted if a page fails."""
    for attempt in range(1, PAGE_ATTEMPTS + 1):
        try:
            return list(provider.list_subscriptions(page_size=PAGE_SIZE))
        except TransientProviderError as error:
            if attempt == PAGE_ATTEMPTS:
                raise
            time.sleep(limiter.slow_down(error.retry_after))
    return []


def by_age(remotes: list[RemoteSubscription]) -> list[RemoteSubscription]:
    """Oldest first by the provider's clock; ties keep the reverse of the listing's order
    (Stripe lists newest first, and its clock counts seconds)."""
    return sorted(reversed(remotes), key=lambda r: r.created_at or datetime.min)


@dataclass
class PullPlan:
    """What the pull would write: new rows, changed rows, and seat changes made elsewhere."""

    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    external: list[dict[str, Any]] = field(default_factory=list)
    linked: int = 0
    keys: dict[str, str | None] = field(default_factory=dict)

    @property
    def writes(self) -> int:
        return len(self.inserts) + len(self.updates)


def _values(remote: RemoteSubscription) -> dict[str, Any]:
    return {
        "provider_customer_id": remote.customer_id, "plan_name": remote.plan_name,
        "seat_item_id": remote.seat_item_id, "seats": remote.seats, "status": remote.status,
        "current_period_start": remote.current_period_start,
        "current_period_end": remote.current_period_end, "trial_start": remote.trial_start,
        "trial_end": remote.trial_end, "cancel_at_period_end": remote.cancel_at_period_end,
        "cancel_at": remote.cancel_at, "canceled_at": remote.canceled_at,
        "ended_at": remote.ended_at, "provider_created_at": remote.created_at,
        "namespace": remote.metadata.get(NAMESPACE_KEY) or "",  # the sync's fence (sync.py)
    }


def plan_pull(
    conn: sa.Connection, tables: Tables, provider_name: str, remotes: list[RemoteSubscription],
    owners: dict[str, str] | None = None,
) -> PullPlan:
    """Diff the listing against the local table, read in one query; writes nothing.

    A row keeps the organization it is linked to; an unlinked one is linked only through an
    owner tag this app recorded (``owners``: tag -> organization key, see ``ownership``), never
    through ``metadata.organization_id`` alone.
    """
    owners = owners or {}
    t = tables.subscriptions
    cols = [t.c.id, t.c.provider_subscription_id, t.c.organization_key]
    existing = {
        row.provider_subscription_id: row
        for row in conn.execute(sa.select(*cols, *(t.c[f] for f in SYNCED_FIELDS)))
    }
    plan = PullPlan()
    now = utcnow()
    # Oldest first, so that the new rows' ids agree with the provider's clock where it ties.
    for remote in by_age(remotes):
        values = _values(remote)
        before = existing.get(remote.id)
        key = (before.organization_key if before is not None else None) or owners.get(
            remote.owner_tag or "")
        plan.keys[remote.id] = key
        if before is None:
            plan.linked += key is not None
            plan.inserts.append({
                "provider_subscription_id": remote.id, "organization_key": key,
                "provider": provider_name, "created_at": now, "updated_at": now, **values,
            })
            continue
        old = {f: getattr(before, f) for f in SYNCED_FIELDS}
        if old == values and before.organization_key == key:
            continue
        plan.linked += before.organization_key is None and key is not None
        plan.updates.append({"row_id": before.id, "organization_key": key, "updated_at": now,
                             **values})
        if key and before.seats is not None and remote.seats is not None \
                and before.seats != remote.seats and remote.status in SUBSCRIBED_STATUSES:
            plan.external.append({
                "organization_key": key, "provider_subscription_id": remote.id,
                "from_seats": before.seats, "to_seats": remote.seats, "reason": "external",
                "created_at": now,
            })
    return plan


def apply_pull(conn: sa.Connection, tables: Tables, plan: PullPlan) -> None:
    """Write the plan in bulk (executemany); the caller commits."""
    t = tables.subscriptions
    if plan.inserts:
        # In the plan's order, oldest first (``by_age``): the rows share one ``created_at``, so
        # their ids ascend with the provider's order and break its clock's ties the same way.
        conn.execute(t.insert(), plan.inserts)
    if plan.updates:
        # The SET clause comes from the parameter keys; one executemany for every changed row.
        conn.execute(t.update().where(t.c.id == sa.bindparam("row_id")), plan.updates)
    if plan.external:
        conn.execute(tables.ledger.insert(), plan.external)
