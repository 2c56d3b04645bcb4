"""``flask seats resync``: make every organization's provider quantity equal to its billable seats.

Three phases, each bounded in cost whatever the number of organizations:

1. pull: the provider's subscriptions in pages, diffed against the local table in memory and
   written back in bulk (see :mod:`.pull`); subscriptions only the provider knew are linked to
   their organization through the owner tag this app recorded (see :mod:`..ownership`). Each
   organization's subscription is then chosen by ``subscriptions.billing_subscription``'s own
   rule, in one query on the table as the pull left it: the one the engine bills is the one
   compared and pushed;
2. compare: billable seats of every organization from two grouped queries;
3. push: only drifted organizations, each through :meth:`SyncEngine.sync` with the listing's
   snapshot, so locks, idempotency keys, the ledger and signals all apply and no extra GET is
   needed. A re-run after an interruption re-reads the provider and finds finished work done.

``dry_run`` and ``check`` compute the same report from the listing without writing anything:
the pull is applied inside the transaction the choice is made in, then rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from .. import outbox, ownership, seat_types, subscriptions
from ..providers.base import BILLABLE, RemoteSubscription
from ..state import SeatBillingState
from ..subscriptions import LocalSubscription, newest_first
from ..sync import SyncResult
from ..tables import utcnow
from .errors import UnknownOrganization
from .pull import apply_pull, fetch_all, plan_pull
from .ratelimit import RateLimiter, default_rate

MAX_WAIT_SECONDS = 60.0
ProgressFn = Callable[[str, int, "int | None"], None]


@dataclass(frozen=True)
class Candidate:
    """An organization's subscription as resync sees it (from the listing or the local table)."""

    key: str
    subscription_id: str
    plan: str | None
    status: str
    seats: int | None
    snapshot: RemoteSubscription | None = None
    billable: bool = False  # the provider accepts a seat write now (``sync_state``)
    recorded: RemoteSubscription | None = None
    """Without a snapshot: the local copy's state (its seat types), to compare, never to sync."""

    @property
    def active(self) -> bool:
        return self.billable


@dataclass(frozen=True)
class OrgResync:
    """One row of the report. ``action``: ok, update (dry run), updated, failed, skip, or
    scheduled (a decrease that waits for the period's end, ``"at_period_end"``)."""

    organization: str
    plan: str | None
    status: str | None
    billable: int | None
    provider_seats: int | None
    action: str
    subscription_id: str | None = None
    error: str | None = None
    billable_by_type: dict[str, int] | None = None
    """A plan with seat types whose quantities differ from these counts per type."""


@dataclass
class ResyncReport:
    rows: list[OrgResync] = field(default_factory=list)
    listed: int = 0
    inserted: int = 0
    refreshed: int = 0
    linked: int = 0
    requests: int = 0
    slowdowns: int = 0
    dry_run: bool = False
    check: bool = False

    def count(self, *actions: str) -> int:
        return sum(1 for r in self.rows if r.action in actions)

    @property
    def drifted(self) -> int:
        return self.count("update", "updated", "failed")

    @property
    def exit_code(self) -> int:
        """1 when ``check`` found drift or a push failed: monitoring keys off this."""
        if self.check:
            return 1 if self.drifted else 0
        return 1 if self.count("failed") else 0

    def summary(self) -> str:
        parts = [
            f"{len(self.rows)} organizations: {self.count('ok')} in sync, {self.drifted} drifted "
            f"({self.count('updated')} updated, {self.count('failed')} failed), "
            f"{self.count('skip')} skipped",
            f"{self.listed} subscriptions listed ({self.inserted} new, {self.refreshed} "
            f"refreshed, {self.linked} linked)",
            f"{self.requests} provider requests ({self.slowdowns} slowdowns)",
        ]
        line = "; ".join(parts)
        return line + ("; dry run: nothing written" if self.dry_run else "")

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "rows"}
        data.update(drifted=self.drifted, exit_code=self.exit_code, summary=self.summary())
        return {"organizations": [_row_dict(r) for r in self.rows], "summary": data}


def _row_dict(row: OrgResync) -> dict[str, Any]:
    """A row as JSON; ``billable_by_type`` only for plans with seat types."""
    data = asdict(row)
    if data["billable_by_type"] is None:
        del data["billable_by_type"]
    return data


def resync(
    state: SeatBillingState,
    *,
    organizations: Iterable[Any] | None = None,
    dry_run: bool = False,
    check: bool = False,
    pull: bool = True,
    limiter: RateLimiter | None = None,
    progress: ProgressFn | None = None,
    max_attempts: int = 3,
) -> ResyncReport:
    """Pull, compare, push (see the module docstring).

    ``dry_run`` writes nothing anywhere; ``check`` is a dry run whose exit code reports drift.
    """
    dry_run = dry_run or check
    limiter = limiter or RateLimiter(default_rate(state.settings))
    given = state.schema.keys.key_or_given  # "--org 01" is organization 1
    wanted = None if organizations is None else sorted({given(o) for o in organizations})
    report = ResyncReport(dry_run=dry_run, check=check)
    step = progress or (lambda phase, n, total: None)
    listed: dict[str, RemoteSubscription] = {}
    if pull:
        listed, rows = _pull(state, report, limiter, dry_run, lambda n: step("listing", n, None))
    else:
        with state.sql_engine().connect() as conn:
            rows = _chosen_rows(conn, state)
    chosen = {key: _candidate(state, row, listed.get(row.provider_subscription_id))
              for key, row in rows.items() if wanted is None or key in wanted}
    billable = _as_billed(state, chosen, _billable(state, chosen, wanted))
    owed = _owed(state, chosen)
    with state.sql_engine().connect() as conn:
        typed = seat_types.drifted_types(conn, state.counter, state.catalog, chosen.values())
    drift = [c for c in chosen.values()
             if _drifted(c, billable.get(c.key)) or c.key in owed or c.key in typed]
    step("pushing", 0, 0 if dry_run else len(drift))
    results: dict[str, SyncResult] = {}
    if not dry_run:
        for candidate in drift:
            results[candidate.key] = _push(state, candidate, limiter, max_attempts)
            step("pushing", 1, len(drift))
    for key in sorted(set(chosen) | set(wanted or []), key=_sort_key):
        row = _row(key, chosen.get(key), billable.get(key), results.get(key), dry_run,
                   key in typed)
        report.rows.append(replace(row, billable_by_type=typed.get(key)))
    report.requests, report.slowdowns = limiter.requests, limiter.slowdowns
    return report


def _pull(
    state: SeatBillingState, report: ResyncReport, limiter: RateLimiter, dry_run: bool,
    progress: Callable[[int], None],
) -> tuple[dict[str, RemoteSubscription], dict[str, LocalSubscription]]:
    """The listing by id, and each organization's subscription chosen after the pull."""
    remotes = fetch_all(state.provider, limiter, progress)
    with state.sql_engine().connect() as conn:
        owners = ownership.keys_for_tags(
            conn, state.tables, state.provider.name,
            [r.owner_tag for r in remotes
             if r.owner_tag and ownership.namespace_matches(r.metadata, state.settings.namespace)],
        )
        owners = {tag: key for tag, key in owners.items() if state.schema.valid_key(key)}
        plan = plan_pull(conn, state.tables, state.provider.name, remotes, owners)
        apply_pull(conn, state.tables, plan)
        rows = _chosen_rows(conn, state)
        if dry_run:
            conn.rollback()  # the choice saw the listing; the table keeps what it had
        else:
            conn.commit()
    report.listed, report.linked = len(remotes), plan.linked
    report.inserted, report.refreshed = len(plan.inserts), len(plan.updates)
    return {r.id: r for r in remotes}, rows


def _chosen_rows(conn: sa.Connection, state: SeatBillingState) -> dict[str, LocalSubscription]:
    """Each linked organization's subscription by ``subscriptions.billing_subscriptions``; an
    organization whose rows all match no configured plan gets its newest, to be reported as
    such (never pushed)."""
    chosen = subscriptions.billing_subscriptions(conn, state.tables)
    t = state.tables.subscriptions
    rest = conn.execute(
        sa.select(t).where(t.c.organization_key.is_not(None), t.c.plan_name.is_(None))
        .order_by(*newest_first(t))
    )
    for row in rest:
        chosen.setdefault(str(row.organization_key), LocalSubscription(**dict(row._mapping)))
    return chosen


def _candidate(
    state: SeatBillingState, row: LocalSubscription, remote: RemoteSubscription | None
) -> Candidate:
    """The chosen row, with the listing's snapshot when the pull saw it."""
    key = str(row.organization_key)
    if remote is not None:
        return Candidate(key, remote.id, remote.plan_name, remote.status, remote.seats, remote,
                         state.provider.sync_state(remote) == BILLABLE)
    return Candidate(key, row.provider_subscription_id, row.plan_name, row.status, row.seats,
                     None, _billable_status(state, row.provider_subscription_id, row.status,
                                            row.cancel_at_period_end, row.ended_at),
                     row.billing_state)


def _billable_status(
    state: SeatBillingState, sub_id: str, status: str, canceling: bool, ended: Any
) -> bool:
    """The provider's ``sync_state`` of a local row (the listing was skipped)."""
    probe = RemoteSubscription(
        id=sub_id, customer_id=None, status=status, metadata={}, price_ids=frozenset(),
        plan_name=None, seat_item_id=None, seats=None, cancel_at_period_end=canceling,
        ended_at=ended,
    )
    return state.provider.sync_state(probe) == BILLABLE


def _billable(
    state: SeatBillingState, chosen: dict[str, Candidate], wanted: list[str] | None
) -> dict[str, int]:
    """Billable seats in grouped queries; organizations with no members are counted in chunks."""
    parse = state.schema.parse_key
    with state.sql_engine().connect() as conn:
        if wanted is not None:
            ids = _parse_all(parse, wanted)
            counts = state.counter.billable_many(conn, ids.values())
            unknown = [k for k in wanted if k not in ids or (k not in chosen and not _has_people(
                state, conn, ids[k]))]
            if unknown:
                raise UnknownOrganization(unknown)
            return counts
        counts = state.counter.billable_many(conn, None)
        missing = list(_parse_all(parse, [k for k in chosen if k not in counts]).values())
        for start in range(0, len(missing), 500):
            counts.update(state.counter.billable_many(conn, missing[start:start + 500]))
    return counts


def _as_billed(
    state: SeatBillingState, chosen: dict[str, Candidate], billable: dict[str, int]
) -> dict[str, int]:
    """The totals of organizations whose plan has included or minimum seats per type, as the
    sync writes them (one grouped count by type for those alone)."""
    plans = {key: plan for key, c in chosen.items()
             if key in billable and (plan := state.catalog.get(c.plan) if c.plan else None)
             and (plan.included_seats or plan.minimum_seats)}
    if not plans:
        return billable
    ids = _parse_all(state.schema.parse_key, list(plans))
    with state.sql_engine().connect() as conn:
        by_type = state.counter.count_by_type_many(conn, ids.values())
    return {**billable, **{key: plan.billed_total(billable[key], by_type.get(key, {}))
                           for key, plan in plans.items()}}


def _owed(state: SeatBillingState, chosen: dict[str, Candidate]) -> set[str]:
    """Organizations now billable whose change was held (or parked) while they were not."""
    with state.sql_engine().connect() as conn:
        entries = outbox.read_all(conn, state.tables)
    parked = (outbox.HELD, outbox.FAILED)
    return {e.organization_key for e in entries if e.status in parked
            and (c := chosen.get(e.organization_key)) is not None and c.billable
            and c.plan is not None and c.seats is not None}


def _parse_all(parse: Callable[[str], Any], keys: Iterable[str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for key in keys:
        try:
            parsed[key] = parse(key)
        except (TypeError, ValueError):
            continue  # a metadata id the app's key type cannot hold: shown, never counted
    return parsed


def _has_people(state: SeatBillingState, conn: sa.Connection, organization_id: Any) -> bool:
    count = state.counter.count(conn, organization_id)
    return count.members + count.pending_invitations > 0


def _drifted(candidate: Candidate, billable: int | None) -> bool:
    return (
        candidate.active and candidate.plan is not None and candidate.seats is not None
        and billable is not None and candidate.seats != billable
    )


def _push(
    state: SeatBillingState, candidate: Candidate, limiter: RateLimiter, max_attempts: int
) -> SyncResult:
    """One drifted organization through the engine; a transient failure slows down and retries.

    Only the first attempt reuses the listing's snapshot: after a failure the write may have
    landed anyway, so later attempts let the engine read the subscription again first.
    """
    result: SyncResult | None = None
    for attempt in range(max_attempts):
        snapshot = candidate.snapshot if attempt == 0 else None
        for _ in range(1 if snapshot is not None else 2):
            limiter.acquire()
        result = state.engine.sync(candidate.key, reason="resync", snapshot=snapshot)
        if result.ok or result.action == "refused":
            limiter.succeeded()
            break
        wait = (result.retry_at - utcnow()).total_seconds() if result.retry_at else 1.0
        limiter.slow_down(min(MAX_WAIT_SECONDS, max(0.0, wait)))
    assert result is not None
    return result


def _row(
    key: str, c: Candidate | None, billable: int | None, result: SyncResult | None, dry_run: bool,
    types_drifted: bool = False,
) -> OrgResync:
    if c is None:
        return OrgResync(key, None, None, billable, None, "skip", error="no subscription")
    row = OrgResync(key, c.plan, c.status, billable, c.seats, "ok", c.subscription_id)
    if not c.active or c.seats is None or c.plan is None:
        reason = ("not billable now" if not c.active else "no configured plan"
                  if c.plan is None else "not billed per seat")
        return OrgResync(**{**asdict(row), "action": "skip", "error": reason})
    if not _drifted(c, billable) and not types_drifted:
        return row
    if result is None:
        return OrgResync(**{**asdict(row), "action": "update" if dry_run else "failed"})
    action = {"updated": "updated", "unchanged": "ok", "no_subscription": "skip",
              "not_seat_billed": "skip", "scheduled": "scheduled"}.get(result.action, "failed")
    # A decrease waiting for the period's end ("at_period_end") leaves the seats as they are.
    seats = c.seats if action == "scheduled" or result.to_seats is None else result.to_seats
    return OrgResync(**{**asdict(row), "action": action, "provider_seats": seats,
                        "error": result.error if action == "failed" else None})


def _sort_key(key: str) -> tuple[int, int, str]:
    return (0, int(key), "") if key.isdigit() else (1, 0, key)
