"""When a seat change reaches the provider: at once, or (decreases) at the end of the period.

``SEAT_BILLING_SEAT_DECREASE`` (a plan's ``seat_decrease`` overrides it):

- ``"immediately"``: the quantity follows the billable count both ways, with the plan's
  proration (a removal is credited).
- ``"at_period_end"``: "you pay for the most seats you used this period". Additions are billed
  now; the quantity never goes down inside a period; it is lowered to the billable count at
  the period's end, so the renewal invoice bills the right number. A member removed and
  re-added within one period costs nothing extra: the quantity never left the period's maximum.

How the lowering lands before the renewal invoice:

- Stripe has no pending quantity for a subscription item (short of a subscription schedule,
  which would take the subscription out of the app's hands). The engine keeps the outbox row as
  ``scheduled``, due at the period's end (``current_period_end`` of the seat item) minus
  ``SEAT_BILLING_SEAT_DECREASE_MARGIN_SECONDS`` (1 hour). The worker or ``sync_pending`` sends
  it then with ``proration_behavior="none"``: no credit for the last hour, and the renewal
  invoice, made at the period's end from the item's quantity, bills the lower number. Inside the
  margin a decrease is sent at once, the same way.
- Polar holds a decrease itself: the write carries ``proration_behavior="next_period"`` and
  Polar applies it at the renewal (the subscription's ``pending_update``).
- On both, a renewal that came before the decrease was sent (no worker ran across it, or the
  write kept failing) billed seats no longer used: :func:`missed_renewal` sees it from the outbox
  row's ``created_at`` (the oldest change it holds), and the decrease goes at once with the
  plan's proration, crediting the excess.

A trialing subscription is billed nothing until the trial ends, so its decreases go at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask

from . import ledger, outbox, signals, subscriptions
from .ledger import SeatChange
from .outbox import OutboxEntry
from .plans import PlanCatalog
from .providers.base import RemoteSubscription, SeatPreview
from .settings import Settings
from .subscriptions import LocalSubscription
from .tables import Tables

IMMEDIATELY = "immediately"
AT_PERIOD_END = "at_period_end"
NEXT_PERIOD = "next_period"  # the proration name of a decrease held until the renewal
NO_PRORATION = "none"
PERIOD_END_REASON = "period_end"
# A period that starts this long after the subscription was created began at a renewal (a
# subscription's first period starts when it is created, to the second or closer).
RENEWED_AFTER = timedelta(minutes=1)

WRITE = "write"
UNCHANGED = "unchanged"
SCHEDULE = "schedule"


@dataclass(frozen=True)
class Decision:
    """What one sync pass does with the provider's quantity.

    ``action`` is ``write`` (send ``seats`` with ``proration``), ``unchanged`` or ``schedule``
    (send nothing now; come back at ``due_at``). ``seats_from_next_period`` and
    ``takes_effect_at`` describe a decrease that waits for the renewal; ``reason`` replaces the
    sync's own reason in the ledger when set (``period_end``).
    """

    action: str
    seats: int
    proration: str
    due_at: datetime | None = None
    seats_from_next_period: int | None = None
    takes_effect_at: datetime | None = None
    reason: str | None = None


def rule_for(catalog: PlanCatalog, plan_name: str | None, default: str) -> str:
    """The decrease rule of a subscription's plan, else the app's."""
    plan = catalog.get(plan_name) if plan_name else None
    if plan is not None and plan.seat_decrease:
        return plan.seat_decrease
    return default


def decide(
    *,
    remote: RemoteSubscription,
    billable: int,
    rule: str,
    proration: str,
    now: datetime,
    margin: timedelta,
    native_next_period: bool,
    entry: OutboxEntry | None = None,
) -> Decision:
    """The write (or the wait) that brings ``remote`` to ``billable`` under ``rule``."""
    current = int(remote.seats or 0)
    pending = remote.pending_seats
    if rule != AT_PERIOD_END or billable > current or remote.status == "trialing":
        if billable == current and pending in (None, current):
            return Decision(UNCHANGED, current, proration)
        return Decision(WRITE, billable, proration)  # on Polar this also drops a pending update
    if billable < current and missed_renewal(entry, remote):
        # A change of an earlier period that no sync sent before its renewal (no worker ran
        # across it, or the write kept failing): the renewal billed seats that were no longer
        # used, so the write credits them now, with the plan's proration, on either provider.
        return Decision(WRITE, billable, proration, reason=PERIOD_END_REASON)
    end = remote.current_period_end
    if native_next_period:
        if billable == current and pending in (None, current):
            return Decision(UNCHANGED, current, proration)
        if pending == billable:
            return Decision(UNCHANGED, current, proration, None, billable, remote.pending_at)
        return Decision(WRITE, billable, NEXT_PERIOD, None, billable, end, PERIOD_END_REASON)
    if billable == current:
        return Decision(UNCHANGED, current, proration)
    if end is None:  # no period known: nothing to wait for
        return Decision(WRITE, billable, proration)
    due = end - margin
    if now >= due:
        return Decision(WRITE, billable, NO_PRORATION, reason=PERIOD_END_REASON)
    return Decision(SCHEDULE, current, proration, due, billable, end, PERIOD_END_REASON)


def missed_renewal(entry: OutboxEntry | None, remote: RemoteSubscription) -> bool:
    """True when a renewal billed seats that were owed a decrease, which a write now credits
    down to the billable count.

    The row must hold a change made before the current period began at a renewal (not at the
    subscription's creation: a change older than the subscription was never billed by a
    renewal), and one of:

    - nothing changed since the renewal (``changed_at`` before it): today's billable count is
      the renewal's, so the credit is exact;
    - a decrease was scheduled and due before the renewal (``decrease_due_at``): it was owed
      then; members who left after the renewal, before this sync, are credited with it (the
      library keeps no history of counts to tell them apart).

    A row whose old change was not a known decrease and that changed after the renewal (say a
    member joined before it and two left after) is not: its removals are this period's, and
    wait for the period's end like any other.
    """
    start = remote.current_period_start
    if entry is None or start is None or not outbox.owed_before(entry, start):
        return False
    created = remote.created_at
    if created is not None and start - created <= RENEWED_AFTER:
        return False  # the first period: no renewal has billed anything yet
    if (entry.changed_at or entry.created_at) < start:
        return True
    return entry.decrease_due_at is not None and entry.decrease_due_at < start


@dataclass(frozen=True)
class PendingDecrease:
    """A decrease that waits for the renewal: billed ``seats_now`` until ``takes_effect_at``,
    ``seats_from_next_period`` after; ``sent_at`` is when the engine lowers it (Stripe) or
    None when the provider holds it (Polar, already sent)."""

    organization_key: str
    seats_now: int
    seats_from_next_period: int
    takes_effect_at: datetime | None
    sent_at: datetime | None


def pending_decrease(conn: sa.Connection, tables: Tables, key: str) -> PendingDecrease | None:
    """The organization's waiting decrease, read from local tables only (no provider call)."""
    local = subscriptions.billing_subscription(conn, tables, key)
    if local is None:
        return None
    changes = ledger.for_organization(conn, tables, key, 1)
    return decrease_of(key, local.seats, local.current_period_start, local.current_period_end,
                       outbox.read(conn, tables, key), changes[0] if changes else None)


def decrease_of(
    key: str, seats: int | None, period_start: datetime | None, period_end: datetime | None,
    entry: OutboxEntry | None, last: SeatChange | None,
) -> PendingDecrease | None:
    """Stripe's waiting decrease is the outbox row's (``decrease_seats``, due at
    ``decrease_due_at``: kept while a mark, a failure or a hold makes the row pending, held or
    failed); Polar's is the last ``next_period`` write of the current period whose seats the
    local copy does not show yet."""
    if seats is None:
        return None
    if (entry is not None and entry.decrease_seats is not None
            and entry.decrease_due_at is not None):
        if entry.decrease_seats >= seats:
            return None  # settled by a write the row has not been told of yet
        return PendingDecrease(key, seats, entry.decrease_seats, period_end,
                               entry.decrease_due_at)
    if last is None or last.proration_behavior != NEXT_PERIOD or last.to_seats >= seats:
        return None
    if period_start is not None and last.created_at < period_start:
        return None  # written in an earlier period: the renewal has applied it
    return PendingDecrease(key, seats, last.to_seats, period_end, None)


def applied_at_renewal(
    conn: sa.Connection, tables: Tables, before_seats: int | None, remote: RemoteSubscription
) -> bool:
    """True when a quantity change seen on a subscription is the renewal applying the
    ``next_period`` decrease the engine sent (not a change made elsewhere)."""
    if before_seats is None or remote.seats is None or remote.seats >= before_seats:
        return False
    led = tables.ledger
    last = conn.execute(
        sa.select(led.c.to_seats, led.c.proration_behavior)
        .where(led.c.provider_subscription_id == remote.id)
        .order_by(led.c.id.desc()).limit(1)
    ).first()
    return (
        last is not None
        and last.proration_behavior == NEXT_PERIOD
        and int(last.to_seats) == remote.seats
    )


def announce(
    app: Flask, organization_id: Any, remote: RemoteSubscription, decision: Decision,
    entry: OutboxEntry | None = None,
) -> None:
    """Send ``seat_decrease_scheduled`` for a decrease that now waits for the renewal (once per
    target: a pass that finds the same decrease already waiting stays quiet, also when a mark,
    a failure or a hold rewrote the row's status meanwhile)."""
    if decision.seats_from_next_period is None:
        return
    if (entry is not None and entry.decrease_due_at is not None
            and entry.decrease_seats == decision.seats_from_next_period):
        return
    signals.seat_decrease_scheduled.send(
        app, organization_id=organization_id, subscription_id=remote.id,
        seats_now=remote.seats, seats_from_next_period=decision.seats_from_next_period,
        takes_effect_at=decision.takes_effect_at, sent_at=decision.due_at,
    )


def decrease_waits(
    catalog: PlanCatalog, settings: Settings, local: LocalSubscription, current: int, seats: int
) -> bool:
    """Whether a move from ``current`` to ``seats`` (the subscription's seats, or one seat
    type's) waits for the renewal under the plan's rule, for a preview."""
    rule = rule_for(catalog, local.plan_name, settings.seat_decrease)
    return rule == AT_PERIOD_END and seats < current and local.status != "trialing"


def preview_decrease(
    catalog: PlanCatalog, settings: Settings, local: LocalSubscription, seats: int
) -> SeatPreview | None:
    """The preview of a move to ``seats`` that would wait for the renewal, or None when the
    change would be billed (or credited) now and the provider must price it."""
    current = local.seats
    if current is None or not decrease_waits(catalog, settings, local, current, seats):
        return None
    return SeatPreview(
        organization_id=local.organization_key, from_seats=current, to_seats=current,
        amount_due_now=0, prorated_amount=0, currency=plan_currency(catalog, local.plan_name),
        seats_from_next_period=seats, takes_effect_at=local.current_period_end,
    )


def plan_currency(catalog: PlanCatalog, plan_name: str | None) -> str:
    product = catalog.product_of.get(plan_name) if plan_name else None
    return (product.currency if product else "usd").lower()
