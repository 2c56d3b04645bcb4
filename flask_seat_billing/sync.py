"""The sync engine: make the provider's seat quantity equal to the billable count, exactly once.

One pass, under the organization's lock:

1. read the outbox row (its generation) and the billable count, from committed data, now;
2. find the organization's subscription locally (``subscriptions.billing_subscription``), then
   read it from the provider (read-before-write: a retried or crashed write is seen as done,
   not resent); a subscription that is not billable now keeps the change owed (``held``);
3. send nothing when the quantity already matches; otherwise write it with an idempotency key
   of its own (subscription, item, change number, a per-pass id, target): the SDK's network
   retries of that call share it, and a later pass never needs it because it reads first;
4. in one transaction: update the local copy, append to the ledger, and delete the outbox row if
   no newer change bumped its generation (if one did, run another pass at once).

Failures keep the outbox row with the attempt count, the next attempt time and the error; a
permanent refusal parks it until membership changes again. Nothing here raises to the caller.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask

from . import ledger, outbox, ownership, seat_rules, seat_types, signals, subscriptions
from .backoff import retry_at, retry_delay
from .counting import SeatCounter
from .errors import PermanentProviderError, ProviderError, TransientProviderError
from .hooks import Hooks
from .locks import organization_lock
from .plans import PlanCatalog
from .providers.base import (
    BILLABLE,
    ENDED,
    ENDED_STATUSES,
    HELD,
    NAMESPACE_KEY,
    BillingProvider,
    RemoteSubscription,
)
from .settings import Settings
from .subscriptions import LocalSubscription
from .tables import Tables, utcnow

log = logging.getLogger("flask_seat_billing.sync")
MAX_PASSES = 5


@dataclass(frozen=True)
class SyncResult:
    """What a sync did: ``action`` says what was sent, or why nothing was.

    Actions: ``updated`` (quantity written), ``unchanged`` (already right), ``no_subscription``
    (nothing to bill: none, or it ended), ``held`` (the subscription is not billable now, e.g.
    paused or in dunning; the change stays owed in the outbox), ``not_seat_billed`` (the plan
    has no seat item), ``scheduled`` (a decrease waits for the period's end, see
    :mod:`.seat_rules`; ``to_seats`` is what is billed from the renewal), ``retrying``
    (transient failure, retried at ``retry_at``), ``refused`` (permanent failure, recorded).
    """

    organization_id: Any
    action: str
    billable: int | None = None
    from_seats: int | None = None
    to_seats: int | None = None
    subscription_id: str | None = None
    idempotency_key: str | None = None
    error: str | None = None
    retry_at: datetime | None = None
    seats_by_type: dict[str, int] | None = None
    """A plan with seat types: each type's quantity after the pass (:mod:`.seat_types`)."""

    @property
    def sent(self) -> bool:
        return self.action == "updated"

    @property
    def ok(self) -> bool:
        return self.action not in ("retrying", "refused")


class SyncEngine:
    """Runs syncs for one app; built by ``init_app`` and reached through ``SeatBilling``."""

    def __init__(
        self,
        *,
        app: Flask,
        engine: Callable[[], sa.Engine],
        tables: Tables,
        counter: SeatCounter,
        provider: BillingProvider,
        catalog: PlanCatalog,
        settings: Settings,
        hooks: Hooks,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.app = app
        self.engine = engine
        self.tables = tables
        self.counter = counter
        self.provider = provider
        self.catalog = catalog
        self.settings = settings
        self.hooks = hooks  # the app's after_seats_synced policies run after each write
        self.clock = clock  # naive UTC now: decides when a waiting decrease is due

    # -- public --------------------------------------------------------------------------------

    def sync(
        self, key: str, *, reason: str = "membership", snapshot: RemoteSubscription | None = None
    ) -> SyncResult:
        """Sync one organization now; ``snapshot``, a fresh provider read, saves the GET."""
        with organization_lock(self.engine(), key) as conn:
            result = self._pass(conn, key, reason, snapshot)
            for _ in range(MAX_PASSES - 1):
                entry = outbox.read(conn, self.tables, key)
                if not result.ok or entry is None or entry.status != outbox.PENDING:
                    conn.commit()
                    break
                if self.settings.sync_mode == "deferred":
                    # Changes are still streaming in: wait one more window instead of chasing
                    # each of them with a write (Stripe allows ~200 quantity updates an hour).
                    window = timedelta(seconds=self.settings.debounce_seconds)
                    outbox.defer(conn, self.tables, key, utcnow() + window)
                    conn.commit()
                    break
                conn.commit()
                result = self._pass(conn, key, reason, None)  # a change arrived meanwhile
            return result

    def drain(self, keys: Iterable[str] | None = None) -> list[SyncResult]:
        """Sync the given organizations that have a pending row, or every due row once."""
        results: list[SyncResult] = []
        if keys is not None:
            with self.engine().connect() as conn:
                wanted = [
                    k
                    for k in sorted(set(keys))
                    if (e := outbox.read(conn, self.tables, k)) and e.status == outbox.PENDING
                ]
            return [self._sync_logged(k) for k in wanted]
        attempted: set[str] = set()
        while True:
            with self.engine().connect() as conn:
                due_now = outbox.due_keys(conn, self.tables, self.clock())
            due = [k for k in due_now if k not in attempted]
            if not due:
                return results
            for key in due:
                attempted.add(key)
                results.append(self._sync_logged(key))

    def _sync_logged(self, key: str) -> SyncResult:
        """One organization of a drain: its failure must not stop the others."""
        try:
            return self.sync(key)
        except Exception as error:  # e.g. the database went away mid-sync; the row stays
            log.exception("seat sync of organization %s failed", key)
            return SyncResult(key, "retrying", error=f"{type(error).__name__}: {error}")

    # -- one pass ------------------------------------------------------------------------------

    def _pass(
        self, conn: sa.Connection, key: str, reason: str, snapshot: RemoteSubscription | None
    ) -> SyncResult:
        entry = outbox.read(conn, self.tables, key)
        generation = entry.generation if entry else None
        organization_id: Any = key
        billable: int | None = None
        try:
            organization_id = self.counter.schema.parse_key(key)
            billable = self.counter.billable(conn, organization_id)
            local = subscriptions.billing_subscription(conn, self.tables, key)
            conn.commit()
            if local is None or local.status in ENDED_STATUSES:
                return self._finish(conn, key, generation, SyncResult(
                    organization_id, "no_subscription", billable=billable))
            remote = snapshot if _still_current(snapshot, local) else None
            remote = remote or self.provider.retrieve_subscription(local.provider_subscription_id)
            state = self.provider.sync_state(remote)
            if state == HELD or (state == BILLABLE and not ownership.namespace_matches(
                    remote.metadata, self.settings.namespace) and remote.owner_tag):
                return self._hold(conn, key, generation, SyncResult(
                    organization_id, "held", billable=billable, subscription_id=remote.id,
                    from_seats=remote.seats), remote)
            if state == ENDED or remote.seats is None or remote.plan_name is None:
                action = "no_subscription" if state == ENDED else "not_seat_billed"
                return self._finish(conn, key, generation, SyncResult(
                    organization_id, action, billable=billable, subscription_id=remote.id,
                    from_seats=remote.seats), remote=remote)
            if remote.seats_by_type is not None:  # several seat types: one write for all
                return seat_types.sync_types(self, conn, key, generation, reason, remote,
                                             local.seats if local.seats != remote.seats else None)
            decision = self._decide(remote, billable, entry)
            if decision.action == seat_rules.SCHEDULE:
                return self._schedule(conn, key, generation, entry, decision, SyncResult(
                    organization_id, "scheduled", billable=billable, from_seats=remote.seats,
                    to_seats=billable, subscription_id=remote.id), remote)
            if decision.action == seat_rules.UNCHANGED:
                observed = local.seats if local.seats != remote.seats else None
                if seat_rules.applied_at_renewal(conn, self.tables, observed, remote):
                    observed = None  # our own next_period write, already in the ledger
                return self._finish(conn, key, generation, SyncResult(
                    organization_id, "unchanged", billable=billable, from_seats=remote.seats,
                    to_seats=remote.seats, subscription_id=remote.id), remote=remote,
                    observed_from=observed)
            # A write that landed but whose answer was lost (or a dashboard edit) moved the
            # provider since our copy: record that step before ours, so the ledger has no gap.
            observed = local.seats if local.seats not in (None, remote.seats) else None
            return self._write(conn, key, generation, decision.reason or reason, remote,
                               decision.seats, observed, decision.proration)
        except ProviderError as error:
            conn.rollback()
            return self._fail(conn, key, generation, organization_id, billable, error)
        except Exception as error:  # a bug or a database hiccup must not lose the change
            conn.rollback()
            log.exception("seat sync of organization %s failed unexpectedly", key)
            wrapped = TransientProviderError(f"{type(error).__name__}: {error}")
            return self._fail(conn, key, generation, organization_id, billable, wrapped)

    def _write(
        self,
        conn: sa.Connection,
        key: str,
        generation: int | None,
        reason: str,
        remote: RemoteSubscription,
        billable: int,
        observed_from: int | None = None,
        proration: str | None = None,
    ) -> SyncResult:
        proration = proration or self.provider.proration_for(
            remote, self.settings.proration_behavior)
        if observed_from is not None and remote.seats is not None:
            subscriptions.upsert(conn, self.tables, self.provider.name, remote, key)
            ledger.append(
                conn, self.tables, organization_key=key, subscription_id=remote.id,
                from_seats=observed_from, to_seats=remote.seats, reason="observed",
            )
            conn.commit()
        number = ledger.change_number(conn, self.tables, remote.id)
        conn.commit()
        pass_id = uuid.uuid4().hex[:12]  # a new pass never needs an old key: it read Stripe first
        idempotency_key = (
            f"fsb:{remote.id}:{remote.seat_item_id or 'seats'}:{number}:{pass_id}:{billable}"
        )
        update = self.provider.update_seats(
            remote, billable, proration_behavior=proration, idempotency_key=idempotency_key
        )
        organization_id = self.counter.schema.parse_key(key)
        result = SyncResult(
            organization_id, "updated", billable=billable, from_seats=remote.seats,
            to_seats=update.subscription.seats, subscription_id=remote.id,
            idempotency_key=idempotency_key,
        )
        subscriptions.upsert(conn, self.tables, self.provider.name, update.subscription, key)
        ledger.append(
            conn, self.tables, organization_key=key, subscription_id=remote.id,
            from_seats=remote.seats, to_seats=billable, reason=reason,
            proration_behavior=proration, idempotency_key=idempotency_key,
            prorated_amount=update.prorated_amount, currency=update.currency,
        )
        outbox.complete(conn, self.tables, key, generation)
        conn.commit()
        if proration == seat_rules.NEXT_PERIOD:  # Polar holds it: billed seats move at renewal
            seat_rules.announce(self.app, organization_id, remote, seat_rules.Decision(
                seat_rules.SCHEDULE, billable, proration, None, billable,
                update.subscription.pending_at or remote.current_period_end))
        self._signal_synced(result, reason)
        return result

    def _decide(
        self, remote: RemoteSubscription, billable: int, entry: outbox.OutboxEntry | None
    ) -> seat_rules.Decision:
        """What to send now under the plan's decrease rule (:mod:`.seat_rules`)."""
        return seat_rules.decide(
            remote=remote, billable=billable,
            rule=seat_rules.rule_for(self.catalog, remote.plan_name, self.settings.seat_decrease),
            proration=self.provider.proration_for(remote, self.settings.proration_behavior),
            now=self.clock(), margin=timedelta(seconds=self.settings.seat_decrease_margin_seconds),
            native_next_period=self.provider.capabilities.native_next_period, entry=entry,
        )

    def _schedule(
        self, conn: sa.Connection, key: str, generation: int | None,
        entry: outbox.OutboxEntry | None, decision: seat_rules.Decision, result: SyncResult,
        remote: RemoteSubscription,
    ) -> SyncResult:
        """Keep a decrease for the period's end: the row is due then, the quantity stays."""
        assert decision.due_at is not None and decision.seats_from_next_period is not None
        subscriptions.upsert(conn, self.tables, self.provider.name, remote, key)
        outbox.schedule(conn, self.tables, key, generation, decision.due_at,
                        decision.seats_from_next_period)
        conn.commit()
        seat_rules.announce(self.app, result.organization_id, remote, decision, entry)
        return replace(result, retry_at=decision.due_at)

    def _finish(
        self,
        conn: sa.Connection,
        key: str,
        generation: int | None,
        result: SyncResult,
        *,
        remote: RemoteSubscription | None = None,
        observed_from: int | None = None,
    ) -> SyncResult:
        """Record a pass that needed no write; the outbox row is done with."""
        if remote is not None:
            subscriptions.upsert(conn, self.tables, self.provider.name, remote, key)
            if observed_from is not None and remote.seats is not None:
                ledger.append(
                    conn, self.tables, organization_key=key, subscription_id=remote.id,
                    from_seats=observed_from, to_seats=remote.seats, reason="observed",
                )
        outbox.complete(conn, self.tables, key, generation)
        conn.commit()
        if result.action == "unchanged":
            self._signal_synced(result, "unchanged")
        return result

    def _hold(
        self, conn: sa.Connection, key: str, generation: int | None, result: SyncResult,
        remote: RemoteSubscription,
    ) -> SyncResult:
        """Keep the change owed: the subscription cannot be billed now (paused, dunning...)."""
        subscriptions.upsert(conn, self.tables, self.provider.name, remote, key)
        reason = (f"subscription {remote.id} is {remote.status}"
                  f"{' and canceling' if remote.cancel_at_period_end else ''}: "
                  "seat change held until it is billable again")
        if not ownership.namespace_matches(remote.metadata, self.settings.namespace):
            reason = (f"subscription {remote.id} carries another namespace "
                      f"({remote.metadata.get(NAMESPACE_KEY)!r}): never written by this app")
        outbox.hold(conn, self.tables, key, generation, reason, result.billable)
        conn.commit()
        log.info("seat sync of organization %s held: %s", key, reason)
        return replace(result, error=reason)

    def _fail(
        self,
        conn: sa.Connection,
        key: str,
        generation: int | None,
        organization_id: Any,
        billable: int | None,
        error: ProviderError,
    ) -> SyncResult:
        permanent = isinstance(error, PermanentProviderError)
        entry = outbox.read(conn, self.tables, key)
        attempts = (entry.attempts if entry else 0) + 1
        retry_after = error.retry_after if isinstance(error, TransientProviderError) else None
        delay = retry_delay(
            attempts, base=self.settings.retry_base_seconds,
            cap=self.settings.retry_max_seconds, retry_after=retry_after,
        )
        now = utcnow()
        next_at = retry_at(now, delay)
        attempts = outbox.record_failure(
            conn, self.tables, key, generation=generation, error=error.message,
            next_attempt_at=next_at, permanent=permanent, target_seats=billable,
        )
        conn.commit()
        log.warning(
            "seat sync of organization %s failed (attempt %d, %s): %s",
            key, attempts, "permanent" if permanent else f"retry in {delay:.1f}s", error.message,
        )
        result = SyncResult(
            organization_id, "refused" if permanent else "retrying", billable=billable,
            error=error.message, retry_at=None if permanent else next_at,
        )
        signals.seat_sync_failed.send(
            self.app, organization_id=organization_id, error=error.message, permanent=permanent,
            attempts=attempts, retry_at=result.retry_at,
        )
        return result

    def _signal_synced(self, result: SyncResult, reason: str) -> None:
        signals.seats_synced.send(
            self.app, organization_id=result.organization_id,
            subscription_id=result.subscription_id, from_seats=result.from_seats,
            to_seats=result.to_seats, reason=reason, result=result,
        )
        if result.sent:
            self.hooks.policies.run_after(
                self.app, "after_seats_synced", organization_id=result.organization_id,
                from_seats=result.from_seats, to_seats=result.to_seats,
                subscription_id=result.subscription_id,
            )


def _still_current(snapshot: RemoteSubscription | None, local: LocalSubscription) -> bool:
    """A listing's snapshot may stand in for the GET only while nothing moved since it was read.

    Every write and observation under the lock updates the local row, so a local copy that no
    longer agrees with the snapshot (another process synced this organization between the
    listing and now) means the snapshot is stale: writing from it would send the same quantity
    again and record the step twice in the ledger.
    """
    return (
        snapshot is not None
        and snapshot.id == local.provider_subscription_id
        and snapshot.seats == local.seats
        and snapshot.status == local.status
        and snapshot.seat_item_id == local.seat_item_id
        and snapshot.plan_name == local.plan_name
        and snapshot.cancel_at_period_end == local.cancel_at_period_end
        and snapshot.ended_at == local.ended_at
    )
