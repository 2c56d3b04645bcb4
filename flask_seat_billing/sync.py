"""The sync engine: make the provider's seat quantity equal to the billable count, exactly once.

One pass, under the organization's lock:

1. in one statement: read the outbox row (its generation), the organization's subscription
   (``subscriptions.billing_subscription``, the local copy) and the billable count (on
   PostgreSQL with psycopg it travels with the lock: :func:`.locks.organization_lock`'s
   ``first``);
2. when the copy is current (the common case), decide from it and send at most **one**
   request: the quantity write, addressed with the locally known seat item. The provider is
   read first only with a reason: no local copy to address, a copy of another namespace (or
   of none recorded yet), a write in doubt (``write_key`` on the copy: an earlier write timed
   out, lost its connection, died with its process or was answered with an error), or
   a write refused because the copy was stale (the item gone after a plan switch, the
   subscription canceled or paused, an idempotency conflict); a snapshot from a listing
   (resync) stands in for that read while it still agrees with the copy. The decrease rule
   (:mod:`.seat_rules`) decides from the copy too; it reads first only when the copy lacks
   what the rule needs (Polar's pending update, a period already over, quantities per seat
   type not recorded yet: see ``SyncEngine._copy_suffices``). A plan with seat types is the
   same pass, its one write carrying every type that moved (:mod:`.seat_types`);
3. before the write leaves, the copy records it (``write_seq`` + 1, ``write_key``) in the same
   commit as anything observed: the key, ``fsb:{sub}:{item}:{row}.{seq}:{target}``, is derived
   from that durable number, so it is the same for the SDK's network retries of the call and
   new for every later write (a later write never replays an earlier answer: bugs 3 and 4 of
   docs/reliability.md), and a crash inside the call leaves the mark that makes the next pass
   read first (Polar takes no keys at all; the read is what keeps it exact there);
4. in one transaction: the copy's quantity (clearing the mark), the ledger row, and the outbox
   row deleted if no newer change bumped its generation (if one did, another pass at once); on
   PostgreSQL with psycopg one statement, sent with the lock's release once it is committed
   (:func:`.locks.commit_and_release`), so the ``seats_synced`` signal and the after-policies
   run just after the release. That commit does not wait for the disk: the mark of step 3
   did, and a database crash that loses the record leaves a write in doubt, as a crash of
   the process after the request does (docs/reliability.md).

A subscription that is not billable now keeps the change owed (``held``). Failures keep the
outbox row with the attempt count, the next attempt time and the error; a permanent refusal
parks it until membership changes again. Nothing here raises to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask

from . import ledger, outbox, ownership, seat_rules, seat_types, signals, subscriptions
from .backoff import retry_at, retry_delay
from .circuit import CircuitOpen, ProviderCircuit
from .counting import SeatCount, SeatCounter
from .errors import PermanentProviderError, ProviderError, TransientProviderError
from .hooks import Hooks
from .locks import commit_and_release, organization_lock, take_first_read
from .plans import PlanCatalog
from .providers.base import (
    BILLABLE,
    ENDED,
    ENDED_STATUSES,
    HELD,
    NAMESPACE_KEY,
    BillingProvider,
    RemoteSubscription,
    SeatUpdate,
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
        self.circuit = ProviderCircuit(
            settings.circuit_breaker_failures, base=settings.retry_base_seconds,
            cap=settings.retry_max_seconds)
        self._first_read_statement: sa.Select[Any] | None = None
        self._record: Any = None
        self._owed_statement: Any = None

    # -- public --------------------------------------------------------------------------------

    def sync(
        self, key: str, *, reason: str = "membership", snapshot: RemoteSubscription | None = None
    ) -> SyncResult:
        """Sync one organization now; ``snapshot``, a fresh provider read, saves the GET."""
        result = self._sync(key, reason, snapshot, pending_only=False)
        assert result is not None
        return result

    def _sync(
        self, key: str, reason: str, snapshot: RemoteSubscription | None, *, pending_only: bool
    ) -> SyncResult | None:
        """``pending_only``: a drain's pass, which leaves alone a row that is gone (another
        process synced it), parked (held, failed) or scheduled for later: None then."""
        with organization_lock(self.engine(), key, first=self.first_read(key)) as conn:
            outcome = self._pass(conn, key, reason, snapshot, pending_only)
            if outcome is None:
                conn.commit()
                return None
            result, again = outcome
            for _ in range(MAX_PASSES - 1):
                if not result.ok or not again:
                    break
                if self.settings.sync_mode == "deferred":
                    # Changes are still streaming in: wait one more window instead of chasing
                    # each of them with a write (Stripe allows ~200 quantity updates an hour).
                    window = timedelta(seconds=self.settings.debounce_seconds)
                    outbox.defer(conn, self.tables, key, utcnow() + window)
                    conn.commit()
                    break
                outcome = self._pass(conn, key, reason, None, True)  # a change arrived meanwhile
                if outcome is None:
                    break
                result, again = outcome
            conn.commit()
            return result

    def drain(self, keys: Iterable[str] | None = None) -> list[SyncResult]:
        """Sync the given organizations that have a pending row, or every due row once."""
        results: list[SyncResult] = []
        if keys is not None:
            for key in sorted(set(keys)):
                result = self._sync_logged(key)
                if result is not None:
                    results.append(result)
            return results
        attempted: set[str] = set()
        while True:
            with self.engine().connect() as conn:
                due_now = outbox.due_keys(conn, self.tables, self.clock())
            due = [k for k in due_now if k not in attempted]
            if not due:
                return results
            for key in due:
                attempted.add(key)
                result = self._sync_logged(key)
                if result is not None:
                    results.append(result)

    def _sync_logged(self, key: str) -> SyncResult | None:
        """One organization of a drain: its failure must not stop the others."""
        try:
            return self._sync(key, "membership", None, pending_only=True)
        except Exception as error:  # e.g. the database went away mid-sync; the row stays
            log.exception("seat sync of organization %s failed", key)
            return SyncResult(key, "retrying", error=f"{type(error).__name__}: {error}")

    # -- one pass ------------------------------------------------------------------------------

    def _pass(
        self, conn: sa.Connection, key: str, reason: str, snapshot: RemoteSubscription | None,
        pending_only: bool,
    ) -> tuple[SyncResult, bool] | None:
        """One pass; (result, whether a newer change is waiting), or None (nothing to do)."""
        _statements_alone(conn, True)
        first = self._first_read(conn, key)
        entry = first.entry if first is not None else outbox.read(conn, self.tables, key)
        if pending_only and not _due(entry, self.clock()):
            return None
        generation = entry.generation if entry else None
        organization_id: Any = key
        billable: int | None = None
        try:
            organization_id = self.counter.schema.parse_key(key)
            if first is not None:
                local = first.local
                billable = self.counter.billable_of(first.count)
            else:
                local = subscriptions.billing_subscription(conn, self.tables, key)
                billable = self.counter.billable(conn, organization_id)
            if local is None or local.status in ENDED_STATUSES:
                return self._finish(conn, key, generation, SyncResult(
                    organization_id, "no_subscription", billable=billable))
            refused: PermanentProviderError | None = None
            resend = self._resend_key(local, billable)
            if snapshot is None and self._copy_is_ours(local) and (
                    local.write_key is None or resend is not None):
                try:
                    done = self._from_copy(conn, key, generation, reason, local, billable,
                                           entry, resend)
                    if done is not None:
                        return done
                except _Replayed:
                    # The write in doubt had landed; what the provider holds now is unknown
                    # (a dashboard edit may have followed it): read, then decide.
                    conn.rollback()
                except PermanentProviderError as error:
                    # Perhaps refused because the copy is stale (the item deleted by a plan
                    # switch, the subscription canceled or paused meanwhile): read, then decide.
                    conn.rollback()
                    refused = error
                local = subscriptions.billing_subscription(conn, self.tables, key) or local
            conn.commit()  # no transaction is held across the provider call
            remote = snapshot if _still_current(snapshot, local) else None
            if remote is None:
                self.circuit.check()
                remote = self.provider.retrieve_subscription(local.provider_subscription_id)
                self.circuit.succeeded()
            if refused is not None and _still_current(remote, local):
                raise refused  # the copy was current: the refusal is the provider's answer
            _statements_alone(conn, False)
            return self._from_remote(conn, key, generation, reason, local, remote, billable,
                                     entry)
        except ProviderError as error:
            conn.rollback()
            _statements_alone(conn, False)
            if not isinstance(error, CircuitOpen):  # a request was sent: what did it say?
                self.circuit.observe(error)
            return self._fail(conn, key, entry, organization_id, billable, error), False
        except Exception as error:  # a bug or a database hiccup must not lose the change
            conn.rollback()
            _statements_alone(conn, False)
            log.exception("seat sync of organization %s failed unexpectedly", key)
            wrapped = TransientProviderError(f"{type(error).__name__}: {error}")
            return self._fail(conn, key, entry, organization_id, billable, wrapped), False

    def first_read(self, key: str) -> tuple[sa.Select[Any], dict[str, Any]] | None:
        """What a pass reads first, in one statement: the outbox row, the local copy and the
        billable count (members, and pending invitations when they count); with its
        parameters. None when the key does not parse (the pass then reads the row alone, and
        fails on the key). The statement is built once and sent with new parameters."""
        try:
            organization_id = self.counter.schema.parse_key(key)
        except Exception:
            return None
        if self._first_read_statement is None:
            self._first_read_statement = self._build_first_read()
        return self._first_read_statement, {"fsb_key": key, "fsb_org": organization_id,
                                            "fsb_now": utcnow()}

    def _build_first_read(self) -> sa.Select[Any]:
        key = sa.bindparam("fsb_key", type_=sa.String())
        row = self.tables.outbox  # joined directly (its key is unique): shorter SQL than a
        # subquery, which keeps it within psycopg's cache of parsed queries (4,096 bytes)
        copy = subscriptions.billing_subscription_statement(self.tables, key).subquery("fsb_copy")
        members, pending = self.counter.count_statements(
            sa.bindparam("fsb_org"), sa.bindparam("fsb_now", type_=sa.DateTime()))
        one = sa.select(sa.literal(1).label("one")).subquery("fsb_one")
        return sa.select(
            *[c.label(f"o_{c.name}") for c in row.c],
            *[c.label(f"s_{c.name}") for c in copy.c],
            members.scalar_subquery().label("n_members"),
            (pending.scalar_subquery() if pending is not None
             else sa.literal(0)).label("n_pending"),
        ).select_from(one.outerjoin(row, row.c.organization_key == key)
                      .outerjoin(copy, sa.true()))

    def _first_read(self, conn: sa.Connection, key: str) -> _FirstRead | None:
        """The first statement's answer: read with the lock when the lock sent it
        (:func:`.locks.organization_lock`'s ``first``), else now."""
        values = take_first_read(conn)
        if values is None:
            first = self.first_read(key)
            if first is None:
                return None
            values = dict(conn.execute(*first).one()._mapping)
        entry = None
        if values["o_organization_key"] is not None:
            entry = outbox.entry_from(values, prefix="o_")
        local = None
        if values["s_id"] is not None:
            local = subscriptions.from_mapping(
                {c.name: values[f"s_{c.name}"] for c in self.tables.subscriptions.c})
        count = self.counter.from_counts(self.counter.schema.parse_key(key),
                                         values["n_members"], values["n_pending"])
        return _FirstRead(entry, local, count)

    def _copy_is_ours(self, local: LocalSubscription) -> bool:
        """Whether the copy may decide without a read: the namespace it last recorded agrees
        with this app's, under :func:`.ownership.namespace_matches` (the rule of the read).

        A copy that never recorded one (rows from before the column) or recorded another
        namespace (a restored dump of another deployment's database) is read first, and the
        read decides (``_from_remote`` holds another deployment's subscription).
        """
        if local.namespace is None:
            return False
        recorded = {NAMESPACE_KEY: local.namespace} if local.namespace else {}
        return ownership.namespace_matches(recorded, self.settings.namespace)

    def _resend_key(self, local: LocalSubscription, billable: int) -> str | None:
        """The key of the write in doubt, when sending that very write again is safe.

        With idempotency keys (Stripe), a write that got no answer at all (a timeout, a dropped
        connection, a crash) is sent again with its own key, if it still is the write to send
        (same item, same target); one answered with an error never is (its mark says so,
        ``subscriptions.answered_write``): Stripe stores a 500 or an endpoint's 4xx under the
        key and replays it, so that pass reads and writes with a new number. The provider
        applies it now if it never did, or answers from its idempotency store if it did. The
        key was never used for anything else (its number was new), so a replayed answer means
        exactly "applied earlier", and the pass then reads to learn what followed it.
        """
        if local.write_key is None or not self.provider.capabilities.idempotency_keys:
            return None
        same = _key(local.provider_subscription_id, local.seat_item_id, local, local.write_seq,
                    billable)
        return same if local.write_key == same and local.seats != billable else None

    def _from_copy(
        self, conn: sa.Connection, key: str, generation: int | None, reason: str,
        local: LocalSubscription, billable: int, entry: outbox.OutboxEntry | None,
        resend: str | None = None,
    ) -> tuple[SyncResult, bool] | None:
        """Decide from the local copy, which webhooks and every write and read keep current.

        The decrease rule (:mod:`.seat_rules`) decides here too: the copy carries the seat
        item's period (``current_period_start``/``current_period_end``), the status (trialing)
        and, with the outbox row, a waiting ``scheduled`` decrease, which is all Stripe's rule
        needs. None (read first, then decide) when the copy lacks what the decision needs: see
        :meth:`_copy_suffices`.
        """
        copy = local.billing_state
        state = self.provider.sync_state(copy)
        if state == BILLABLE and not self._copy_suffices(copy, billable):
            return None
        organization_id = self.counter.schema.parse_key(key)
        typed = state == BILLABLE and copy.seats_by_type is not None
        decision = (self._decide(copy, billable, entry)
                    if state == BILLABLE and copy.seats is not None and not typed else None)
        # Only the write runs its statements alone (autocommit); the record of an explicit
        # sync (no outbox row) takes more than one statement, as does a typed write's.
        _statements_alone(conn, decision is not None and decision.action == seat_rules.WRITE
                          and generation is not None)
        if state == HELD:
            return self._hold(conn, key, generation, SyncResult(
                organization_id, "held", billable=billable, subscription_id=copy.id,
                from_seats=copy.seats), copy), False
        if typed:  # several seat types: the copy holds each type's quantity and item
            return seat_types.sync_types(self, conn, key, generation, reason, local, copy,
                                         read=False)
        if decision is None:  # ended, or no seat item
            action = "no_subscription" if state == ENDED else "not_seat_billed"
            return self._finish(conn, key, generation, SyncResult(
                organization_id, action, billable=billable, subscription_id=copy.id,
                from_seats=copy.seats))
        if decision.action != seat_rules.WRITE and resend is not None:
            return None  # a write in doubt that is no longer the one to send: read first
        if decision.action == seat_rules.SCHEDULE:
            return self._schedule(conn, key, generation, entry, decision, SyncResult(
                organization_id, "scheduled", billable=billable, from_seats=copy.seats,
                to_seats=billable, subscription_id=copy.id), copy), False
        if decision.action == seat_rules.UNCHANGED:
            return self._finish(conn, key, generation, SyncResult(
                organization_id, "unchanged", billable=billable, from_seats=copy.seats,
                to_seats=copy.seats, subscription_id=copy.id))
        return self._write(conn, key, generation, decision.reason or reason, local, copy,
                           decision.seats, resend=resend, proration=decision.proration)

    def _copy_suffices(self, copy: RemoteSubscription, billable: int) -> bool:
        """Whether the local copy holds all a decision needs; else the pass reads first.

        (a) A plan with seat types (``seat_prices``) decides from each type's quantity and item
        (``seat_types`` on the copy): a copy recorded without them (before the column) reads.
        The copy does not store (b) a pending update the provider holds for the renewal
        (Polar's ``next_period``: ``pending_seats``). So on a provider that holds decreases
        natively an ``"at_period_end"`` pass that is not an increase reads (an increase is
        written at once and drops any pending update, which needs no knowledge of it). (c)
        Elsewhere such a pass reads once the copy's period has ended (below); with seat types
        any pass may lower a type (a promotion keeps the total), so the total cannot tell.
        Everything else the rule needs (the item's period, the status, the ``scheduled``
        outbox row) is in the copy.
        """
        plan = self.catalog.get(copy.plan_name) if copy.plan_name else None
        typed = plan is not None and bool(plan.seat_prices)
        if typed and copy.seats_by_type is None:
            return False
        rule = seat_rules.rule_for(self.catalog, copy.plan_name, self.settings.seat_decrease)
        if (rule != seat_rules.AT_PERIOD_END or copy.seats is None
                or (billable > copy.seats and not typed) or copy.status == "trialing"):
            return True
        if self.provider.capabilities.native_next_period:
            return False
        # (c) The copy's period is over: the renewal may have happened unseen (no webhook yet),
        # and whether it did decides the proration (a missed boundary is credited).
        end = copy.current_period_end
        return end is None or self.clock() < end

    def _from_remote(
        self, conn: sa.Connection, key: str, generation: int | None, reason: str,
        local: LocalSubscription, remote: RemoteSubscription, billable: int,
        entry: outbox.OutboxEntry | None,
    ) -> tuple[SyncResult, bool]:
        """Decide from a fresh read of the provider (or a listing's snapshot of it)."""
        organization_id = self.counter.schema.parse_key(key)
        state = self.provider.sync_state(remote)
        if state == HELD or (state == BILLABLE and not ownership.namespace_matches(
                remote.metadata, self.settings.namespace) and remote.owner_tag):
            return self._hold(conn, key, generation, SyncResult(
                organization_id, "held", billable=billable, subscription_id=remote.id,
                from_seats=remote.seats), remote, store=True), False
        if state == ENDED or remote.seats is None or remote.plan_name is None:
            action = "no_subscription" if state == ENDED else "not_seat_billed"
            return self._finish(conn, key, generation, SyncResult(
                organization_id, action, billable=billable, subscription_id=remote.id,
                from_seats=remote.seats), remote=remote)
        if remote.seats_by_type is not None:  # several seat types: one write for all
            return seat_types.sync_types(self, conn, key, generation, reason, local, remote)
        decision = self._decide(remote, billable, entry)
        if decision.action == seat_rules.SCHEDULE:
            return self._schedule(conn, key, generation, entry, decision, SyncResult(
                organization_id, "scheduled", billable=billable, from_seats=remote.seats,
                to_seats=billable, subscription_id=remote.id), remote, store=True), False
        # A write that landed but whose answer was lost (or a dashboard edit) moved the
        # provider since our copy: record that step before ours, so the ledger has no gap.
        observed = local.seats if local.seats not in (None, remote.seats) else None
        if seat_rules.applied_at_renewal(conn, self.tables, observed, remote):
            observed = None  # our own next_period write, already in the ledger
        if decision.action == seat_rules.UNCHANGED:
            return self._finish(conn, key, generation, SyncResult(
                organization_id, "unchanged", billable=billable, from_seats=remote.seats,
                to_seats=remote.seats, subscription_id=remote.id), remote=remote,
                observed_from=observed)
        return self._write(conn, key, generation, decision.reason or reason, local, remote,
                           decision.seats, observed_from=observed, read=True,
                           proration=decision.proration)

    def _write(
        self,
        conn: sa.Connection,
        key: str,
        generation: int | None,
        reason: str,
        local: LocalSubscription,
        remote: RemoteSubscription,
        billable: int,
        *,
        observed_from: int | None = None,
        read: bool = False,
        resend: str | None = None,
        proration: str | None = None,
    ) -> tuple[SyncResult, bool]:
        """Send the quantity; ``read`` says ``remote`` is a provider read, not the local copy;
        ``resend`` is the key of the write in doubt when it is sent again as it was;
        ``proration`` is the decrease rule's (:mod:`.seat_rules`), else the app's."""
        proration = proration or self.provider.proration_for(
            remote, self.settings.proration_behavior)
        if read:
            subscriptions.upsert(conn, self.tables, self.provider.name, remote, key)
            if observed_from is not None and remote.seats is not None:
                ledger.append(
                    conn, self.tables, organization_key=key, subscription_id=remote.id,
                    from_seats=observed_from, to_seats=remote.seats, reason="observed",
                )
        idempotency_key = resend or _key(remote.id, remote.seat_item_id, local,
                                         local.write_seq + 1, billable)
        update = self._send(conn, local, idempotency_key, lambda: self.provider.update_seats(
            remote, billable, proration_behavior=proration, idempotency_key=idempotency_key
        ), resend=resend is not None)
        organization_id = self.counter.schema.parse_key(key)
        result = SyncResult(
            organization_id, "updated", billable=billable, from_seats=remote.seats,
            to_seats=update.subscription.seats, subscription_id=remote.id,
            idempotency_key=idempotency_key,
        )
        row = ledger.append_values(
            organization_key=key, subscription_id=remote.id,
            from_seats=remote.seats, to_seats=billable, reason=reason,
            proration_behavior=proration, idempotency_key=idempotency_key,
            prorated_amount=update.prorated_amount, currency=update.currency,
        )
        seats = update.subscription.seats if update.subscription.seats is not None else billable
        if read:
            subscriptions.upsert(conn, self.tables, self.provider.name, update.subscription, key)
            conn.execute(self.tables.ledger.insert().values(row))
            again = self._complete(conn, key, generation)
        elif _alone(conn) and generation is not None:
            # One statement for the copy, the ledger row and the outbox row: PostgreSQL runs
            # every data-modifying WITH clause, all in the statement's transaction.
            values = {**subscriptions.record_write_params(local, seats),
                      **ledger.template_values(row),
                      "fsb_row_key": key, "fsb_row_generation": generation}
            # On psycopg the lock goes in the same round trip, after the commit, unless a
            # newer change is owed (then this holder makes another pass). The signals below
            # then run after the release, as they would after a pass on another process.
            # The record need not wait for the disk (flush=False): the mark did, before the
            # request left. A database crash that loses the record keeps the mark and the
            # outbox row, which is a crash after the request: the next pass resolves the
            # write in doubt (resend with its key, or read) as it does after any crash.
            sent = commit_and_release(conn, self._record_template(), values, self._owed(),
                                      flush=False)
            if sent is None:
                again = conn.execute(self._record_template(), values).first() is None
            else:
                # Released only when no row is owed: one deleted by something outside the lock
                # (an admin's script) leaves nothing for another pass either.
                again = not sent[0] and not sent[1]
            if again:  # a newer change keeps the row (and the lock): the decrease it waited
                outbox.settle(conn, self.tables, key)  # for is written
        else:
            subscriptions.record_write(conn, self.tables, local, seats)
            conn.execute(self.tables.ledger.insert().values(row))
            again = self._complete(conn, key, generation)
        conn.commit()
        if proration == seat_rules.NEXT_PERIOD:  # Polar holds it: billed seats move at renewal
            seat_rules.announce(self.app, organization_id, remote, seat_rules.Decision(
                seat_rules.SCHEDULE, billable, proration, None, billable,
                update.subscription.pending_at or remote.current_period_end))
        self._signal_synced(result, reason)
        return result, again

    def _send(
        self, conn: sa.Connection, local: LocalSubscription, idempotency_key: str,
        request: Callable[[], SeatUpdate], *, resend: bool = False,
    ) -> SeatUpdate:
        """Send a seat write (one quantity, or several seat types) under the write protocol.

        Durable before the request leaves: the key's number, and the mark that makes the next
        pass read first (or resend this very write) if its outcome is never recorded; a
        ``resend`` is already recorded as the write in doubt. The caller records the answer.
        """
        self.circuit.check()  # before the mark: a write never sent leaves nothing in doubt
        if not resend:
            subscriptions.begin_write(conn, self.tables, local, idempotency_key)
        conn.commit()
        try:
            update = request()
        except ProviderError as error:
            if error.status is not None:
                # Answered with an error: Stripe may have stored that answer under the key and
                # replays it to the key for a day, so the next pass reads and writes anew.
                subscriptions.answered_write(conn, self.tables, local, idempotency_key)
                conn.commit()
            raise
        self.circuit.succeeded()
        if update.replayed:  # the key's number is new: an earlier write cannot have used it
            raise _Replayed(f"the provider replayed the answer to {idempotency_key}")
        return update
    def _record_template(self) -> Any:
        """The write's record in one statement (PostgreSQL): the copy's quantity, the ledger
        row and the outbox row's delete, as data-modifying WITH clauses; built once, with
        bound parameters (``subscriptions.record_write_params``, ``ledger.template_values``,
        ``fsb_row_key``, ``fsb_row_generation``)."""
        if self._record is None:
            t = self.tables
            row_key: Any = sa.bindparam("fsb_row_key", type_=t.outbox.c.organization_key.type)
            row_generation: Any = sa.bindparam("fsb_row_generation",
                                               type_=t.outbox.c.generation.type)
            self._record = outbox.complete_statement(t, row_key, row_generation).add_cte(
                subscriptions.record_write_template(t).returning(t.subscriptions.c.id)
                .cte("seat_billing_copy"),
                ledger.append_template(t).returning(t.ledger.c.id).cte("seat_billing_entry"),
            ).returning(t.outbox.c.organization_key)
        return self._record

    def _owed(self) -> Any:
        """Whether the organization's outbox row exists (``fsb_row_key``): a change is owed."""
        if self._owed_statement is None:
            table = self.tables.outbox
            self._owed_statement = sa.select(sa.exists().where(
                table.c.organization_key == sa.bindparam(
                    "fsb_row_key", type_=table.c.organization_key.type)))
        return self._owed_statement

    def _complete(self, conn: sa.Connection, key: str, generation: int | None) -> bool:
        """Delete the outbox row if no newer change arrived; True when one did (another pass).

        The pass wrote the quantity or found it right, so a decrease the row waited for is
        settled either way: a row kept for a newer change forgets it (``outbox.settle``)."""
        if outbox.complete(conn, self.tables, key, generation):
            return False
        outbox.settle(conn, self.tables, key)
        if generation is not None:
            return True
        entry = outbox.read(conn, self.tables, key)  # an explicit sync that started with no row
        return entry is not None and entry.status == outbox.PENDING

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
        remote: RemoteSubscription, *, store: bool = False,
    ) -> SyncResult:
        """Keep a decrease for the period's end: the row is due then, the quantity stays.

        ``store``: ``remote`` is a provider read, to be kept as the local copy."""
        assert decision.due_at is not None and decision.seats_from_next_period is not None
        _statements_alone(conn, False)
        if store:
            subscriptions.upsert(conn, self.tables, self.provider.name, remote, key)
        outbox.schedule(conn, self.tables, key, generation, decision.due_at,
                        decision.seats_from_next_period, now=self.clock())
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
    ) -> tuple[SyncResult, bool]:
        """Record a pass that needed no write; the outbox row is done with."""
        if remote is not None:
            subscriptions.upsert(conn, self.tables, self.provider.name, remote, key)
            if observed_from is not None and remote.seats is not None:
                ledger.append(
                    conn, self.tables, organization_key=key, subscription_id=remote.id,
                    from_seats=observed_from, to_seats=remote.seats, reason="observed",
                )
        again = self._complete(conn, key, generation)
        conn.commit()
        if result.action == "unchanged":
            self._signal_synced(result, "unchanged")
        return result, again

    def _hold(
        self, conn: sa.Connection, key: str, generation: int | None, result: SyncResult,
        remote: RemoteSubscription, *, store: bool = False,
    ) -> SyncResult:
        """Keep the change owed: the subscription cannot be billed now (paused, dunning...).

        ``store``: ``remote`` is a provider read, to be kept as the local copy.
        """
        if store:
            subscriptions.upsert(conn, self.tables, self.provider.name, remote, key)
        reason = (f"subscription {remote.id} is {remote.status}"
                  f"{' and canceling' if remote.cancel_at_period_end else ''}: "
                  "seat change held until it is billable again")
        if not ownership.namespace_matches(remote.metadata, self.settings.namespace):
            reason = (f"subscription {remote.id} carries another namespace "
                      f"({remote.metadata.get(NAMESPACE_KEY)!r}): never written by this app")
        outbox.hold(conn, self.tables, key, generation, reason, result.billable,
                    now=self.clock())
        conn.commit()
        log.info("seat sync of organization %s held: %s", key, reason)
        return replace(result, error=reason)

    def _fail(
        self,
        conn: sa.Connection,
        key: str,
        entry: outbox.OutboxEntry | None,
        organization_id: Any,
        billable: int | None,
        error: ProviderError,
    ) -> SyncResult:
        permanent = isinstance(error, PermanentProviderError)
        attempts = (entry.attempts if entry else 0) + 1
        retry_after = error.retry_after if isinstance(error, TransientProviderError) else None
        delay = retry_delay(
            attempts, base=self.settings.retry_base_seconds,
            cap=self.settings.retry_max_seconds, retry_after=retry_after,
        )
        now = utcnow()
        next_at = retry_at(now, delay)
        attempts = outbox.record_failure(
            conn, self.tables, key, generation=entry.generation if entry else None,
            error=error.message, next_attempt_at=next_at, permanent=permanent,
            target_seats=billable, now=self.clock(),
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


@dataclass(frozen=True)
class _FirstRead:
    """What a pass starts from: the outbox row, the local copy, the seat count."""

    entry: outbox.OutboxEntry | None
    local: LocalSubscription | None
    count: SeatCount


class _Replayed(TransientProviderError):
    """A write answered from the provider's idempotency store: applied earlier, not now.

    The pass that resent a write in doubt reads next; anywhere else (a key's number is new for
    every write) it is retried like any failure, after a read.
    """


def _key(
    subscription_id: str, item_id: str | None, local: LocalSubscription, number: int,
    target: int | str,
) -> str:
    """``fsb:{subscription}:{item}:{row}.{write number}:{target}``: derived from what the copy
    recorded before the write left, so the same write has the same key, and no other has.
    Seat types: ``item`` is ``types`` and ``target`` spells every type sent (``editor=2,...``).
    """
    return f"fsb:{subscription_id}:{item_id or 'seats'}:{local.id}.{number}:{target}"[:255]


def _statements_alone(conn: sa.Connection, alone: bool) -> None:
    """On PostgreSQL, let each statement be its own transaction (``alone``), or not.

    The common pass needs no multi-statement transaction: its reads happen under the lock (a
    change committed meanwhile bumps the outbox generation, which the final statement checks),
    the write's mark is one UPDATE, and its record one statement. Sent in autocommit they save
    a BEGIN and a COMMIT round trip each. Every other step (an observation with its ledger row,
    a hold, a failure) runs in a transaction as before. Switching is client-side in the driver.
    """
    if conn.dialect.name != "postgresql" or _alone(conn) == alone:
        return
    conn.commit()  # nothing may be open while the level changes
    conn.execution_options(isolation_level="AUTOCOMMIT" if alone else
                           conn.default_isolation_level)


def _alone(conn: sa.Connection) -> bool:
    return bool(conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT")


def _due(entry: outbox.OutboxEntry | None, now: datetime) -> bool:
    """A drain's pass syncs a pending row, or a ``scheduled`` decrease whose time has come."""
    if entry is None:
        return False
    return entry.status == outbox.PENDING or (
        entry.status == outbox.SCHEDULED and entry.next_attempt_at <= now)


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
        and (local.seat_types is None or (
            snapshot.seats_by_type == local.seats_by_type
            and (snapshot.seat_items_by_type or {}) == local.seat_items_by_type))
    )
