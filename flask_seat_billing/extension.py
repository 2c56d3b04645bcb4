"""The ``SeatBilling`` extension: wiring for one or more Flask apps."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask

from . import checkout, ledger, outbox, reconcile, seat_rules, seat_types, subscriptions
from .capture import listeners, marks_at_commit
from .cli import seats as seats_group
from .counting import SeatCount, SeatCounter, SeatRule
from .dispatch import Dispatcher
from .dispatch.celery_queue import CeleryDispatcher
from .dispatch.thread import ThreadDispatcher
from .errors import ConfigurationError
from .hooks import AuthorizeCallback, Hooks
from .ledger import SeatChange
from .membership import BillableFilter, InvitationFields, MembershipSchema
from .outbox import OutboxEntry
from .plans import Plan, Product
from .policies import Policy
from .providers import BillingProvider, build_provider
from .providers.base import ACTIVE_STATUSES, SeatPreview
from .seat_limits import seat_limit_policies
from .seat_rules import PendingDecrease
from .settings import DEFAULTS, check_catalog, read_settings
from .state import SeatBillingState, get_state
from .subscriptions import LocalSubscription
from .sync import SyncEngine, SyncResult
from .tables import define_tables, utcnow
from .web.routes import register_blueprints

F = TypeVar("F", bound=Callable[..., Any])


class SeatBilling:
    """Per-seat billing for a Flask + SQLAlchemy app: the seat quantity follows membership.

    Create it once, then call :meth:`init_app` (or pass ``app`` and the same keyword arguments
    to the constructor). The object holds no app; per-app state lives in
    ``app.extensions["seat_billing"]``.
    """

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        # One set of hooks, handed to every app's state: the built-in seat cap is registered
        # here, once, so it runs first, and a decorator used at any time reaches every app.
        self._hooks = Hooks()
        self._last_app: Flask | None = None
        for builtin in seat_limit_policies():
            self._hooks.policies.register(
                builtin.hook, builtin.fn, name=builtin.name, description=builtin.description
            )
        if app is not None:
            self.init_app(app, **options)

    def init_app(
        self,
        app: Flask,
        *,
        db: Any,
        member_model: Any,
        products: list[Product],
        organization_key: str = "organization_id",
        billable_filter: BillableFilter | Any | None = None,
        invitation_model: Any | None = None,
        invitation_fields: InvitationFields | None = None,
        provider: BillingProvider | None = None,
        clock: Callable[[], datetime] | None = None,
        seat_type: Any | None = None,
    ) -> None:
        """Register seat billing on ``app``: listeners, the blueprint and the ``flask seats`` CLI.

        ``db`` is the app's Flask-SQLAlchemy instance; ``member_model`` the mapped class whose
        rows are members (one row = one member of one organization); ``organization_key`` the
        attribute naming the organization (int, str or UUID). ``billable_filter`` is a SQL
        condition, or a function of the member model returning one, that billable members meet
        (e.g. ``lambda M: M.deleted_at.is_(None)``). ``invitation_model`` enables pending
        invitations in counts and the seat-limit policy. ``seat_type`` (a SQL expression, or a
        function of the member model returning one, e.g. ``lambda M: M.role``) sorts members
        into the seat types of plans with ``seat_prices``. ``clock`` (naive UTC now) is the time
        the engine decides by when a decrease waits for the period's end: leave it None in an
        app; tests that move a provider's clock (a Stripe test clock, a stand-in's
        ``advance_time``) pass that clock so both sides agree on the time.

        Configuration keys read (defaults in parentheses):

        - ``SEAT_BILLING_PROVIDER`` ("stripe"): "stripe" or "polar".
        - ``SEAT_BILLING_STRIPE_SECRET_KEY`` (None): required for Stripe unless the API base is
          a local stand-in.
        - ``SEAT_BILLING_STRIPE_WEBHOOK_SECRET`` (None): ``whsec_...``; without it the Stripe
          webhook endpoint refuses every request.
        - ``SEAT_BILLING_STRIPE_API_BASE`` (None): None is Stripe itself; a URL points the SDK
          at a stand-in.
        - ``SEAT_BILLING_STRIPE_MAX_NETWORK_RETRIES`` (2): the SDK's own retries per call.
        - ``SEAT_BILLING_POLAR_ACCESS_TOKEN``, ``SEAT_BILLING_POLAR_WEBHOOK_SECRET`` (None),
          ``SEAT_BILLING_POLAR_SERVER_URL`` (None: production; "sandbox"; or a URL).
        - ``SEAT_BILLING_PROVIDER_TIMEOUT_SECONDS`` (20): per-request timeout.
        - ``SEAT_BILLING_PRORATION_BEHAVIOR`` ("create_prorations"): or "always_invoice",
          "none"; a plan may override it.
        - ``SEAT_BILLING_INCLUDED_SEATS`` (0): free seats, not billed.
        - ``SEAT_BILLING_MINIMUM_SEATS`` (1): never bill fewer.
        - ``SEAT_BILLING_COUNT_PENDING_INVITATIONS`` (False): bill pending invitations too.
        - ``SEAT_BILLING_SYNC_MODE`` ("inline"): "inline", "deferred" or "manual".
        - ``SEAT_BILLING_SYNC_DEBOUNCE_SECONDS`` (2.0): deferred mode's coalescing window.
        - ``SEAT_BILLING_RETRY_BASE_SECONDS`` (2.0), ``SEAT_BILLING_RETRY_MAX_SECONDS`` (600):
          backoff of failed syncs.
        - ``SEAT_BILLING_CIRCUIT_BREAKER_FAILURES`` (3): failures in a row that say the provider
          is down, after which this process's syncs send nothing for a backoff window
          (:mod:`.circuit`); 0: off.
        - ``SEAT_BILLING_POLL_SECONDS`` (5.0): how often the worker looks for due retries.
        - ``SEAT_BILLING_URL_PREFIX`` ("/billing"): where the blueprint is mounted.
        - ``SEAT_BILLING_EXTERNAL_CHANGE`` ("accept"): "accept" or "correct" a quantity
          changed outside the app.
        - ``SEAT_BILLING_WEBHOOK_MAX_BYTES`` (1 MiB), ``SEAT_BILLING_WEBHOOK_TOLERANCE_SECONDS``
          (300): webhook body limit and signature age limit.
        - ``SEAT_BILLING_MAX_REQUESTS_PER_SECOND`` (None: 20 for test keys, 80 live): the CLI
          resync's client-side rate limit.
        - ``SEAT_BILLING_ALLOWED_REDIRECT_HOSTS`` (None): hosts that checkout and portal may
          send the customer back to (``success_url``, ``cancel_url``, ``return_url``), added to
          Flask's ``TRUSTED_HOSTS`` and ``SERVER_NAME``; a leading dot allows subdomains.
        - ``SEAT_BILLING_NAMESPACE`` (None): written into checkout metadata; a subscription
          whose metadata names another namespace is never owned nor written by this app.
        - ``SEAT_BILLING_OUTBOX_AT_COMMIT`` (True): on PostgreSQL with psycopg, send the outbox
          row with the COMMIT instead of as a statement of its own at flush (one round trip
          less per membership change). Installed on the engines ``db`` has for this app, so
          call ``db.init_app(app)`` first; False writes the row at flush on every database.
        - ``SEAT_BILLING_DISPATCH`` ("thread"): who runs syncs, a thread in each app process or
          Celery workers ("celery", with :meth:`use_celery`).
        - ``SEAT_BILLING_WEBHOOK_PROCESSING`` ("inline"): "queued" records verified events and
          answers at once; a Celery task processes them (needs "celery" dispatch).
        - ``SEAT_BILLING_CELERY_APP_ID`` (None: ``app.name``), ``SEAT_BILLING_CELERY_QUEUE``
          (None: Celery's default), ``SEAT_BILLING_CELERY_REDIS_URL`` (None: the broker, if
          Redis), ``SEAT_BILLING_CELERY_KEY_PREFIX`` ("seat_billing"),
          ``SEAT_BILLING_SWEEP_SECONDS`` (30): see docs/deployment.md.
        - ``SEAT_BILLING_SEAT_DECREASE`` ("immediately"): or "at_period_end" (removals are not
          credited; the quantity is lowered at the period's end); a plan's ``seat_decrease``
          overrides it.
        - ``SEAT_BILLING_SEAT_DECREASE_MARGIN_SECONDS`` (3600): how long before the period's
          end a waiting decrease is sent (Stripe; Polar holds it itself).
        """
        if "seat_billing" in app.extensions:
            raise RuntimeError("flask-seat-billing is already initialized on this app.")
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        settings = read_settings(app.config)
        catalog = check_catalog(list(products), settings.provider)
        if db is None or not hasattr(db, "metadata"):
            raise ConfigurationError("init_app needs db=, the app's Flask-SQLAlchemy instance.")
        schema = MembershipSchema(
            member_model,
            organization_key,
            billable_filter,
            invitation_model=invitation_model,
            invitation_fields=invitation_fields,
            seat_type=seat_type,
        )
        if any(plan.seat_prices for plan in catalog.plans) and schema.seat_type is None:
            raise ConfigurationError(
                "A plan sets seat_prices (several seat types), so init_app needs seat_type=, "
                "a SQL expression of the member model naming each member's type "
                "(e.g. seat_type=lambda M: M.role)."
            )
        tables = define_tables(db.metadata)
        counter = SeatCounter(
            schema,
            included=settings.included_seats,
            minimum=settings.minimum_seats,
            count_pending_invitations=settings.count_pending_invitations,
            rules=self._hooks,
        )
        chosen = provider or build_provider(
            settings.provider, settings.provider_settings, catalog,
            timeout=settings.provider_timeout,
        )

        def engine() -> sa.Engine:
            sql_engine: sa.Engine = db.engine
            return sql_engine

        sync_engine = SyncEngine(
            app=app, engine=engine, tables=tables, counter=counter, provider=chosen,
            catalog=catalog, settings=settings, hooks=self._hooks, clock=clock or utcnow,
        )
        dispatcher: Dispatcher = (
            CeleryDispatcher(app, settings) if settings.dispatch == "celery"
            else ThreadDispatcher(app, sync_engine, settings)
        )
        state = SeatBillingState(
            app=app, db=db, settings=settings, catalog=catalog, tables=tables,
            schema=schema, counter=counter, provider=chosen, engine=sync_engine,
            dispatcher=dispatcher, hooks=self._hooks,
        )
        app.extensions["seat_billing"] = state
        listeners.install(state)
        if settings.outbox_at_commit:
            for sql_engine in _engines_of(app, db):
                marks_at_commit.install(sql_engine)
        register_blueprints(app, settings.url_prefix)
        app.cli.add_command(seats_group, "seats")
        if settings.sync_mode != "manual" and settings.dispatch == "thread":
            app.before_request(_start_worker_once)
        self._last_app = app

    def use_celery(self, celery_app: Any, app: Flask | None = None) -> None:
        """Run this app's syncs (and queued webhooks) as tasks of ``celery_app``.

        Call it after :meth:`init_app`, with ``SEAT_BILLING_DISPATCH = "celery"`` set, in the
        module both the web processes and ``celery -A ... worker`` import: it registers the
        tasks (``flask_seat_billing.sync``, ``.webhook``, ``.sweep``), the app they run in
        (by ``SEAT_BILLING_CELERY_APP_ID``, default ``app.name``) and a beat entry that sweeps
        due work every ``SEAT_BILLING_SWEEP_SECONDS``. ``app`` defaults to the app most
        recently given to :meth:`init_app`. See docs/deployment.md.
        """
        from .dispatch.celery_tasks import use_celery

        target = app if app is not None else self._last_app
        if target is None:
            raise RuntimeError("use_celery: call init_app(app, ...) first, or pass app=.")
        use_celery(celery_app, target)

    def sweep(self) -> tuple[int, int]:
        """Celery dispatch: publish every due outbox row and queued webhook event now.

        What the beat schedule runs; returns (syncs published, events published).
        """
        from .dispatch.celery_tasks import sweep

        return sweep(get_state())

    # -- counting ------------------------------------------------------------------------------

    def seat_counter(self, rule: SeatRule) -> SeatRule:
        """Decorator: replace the counting rule. ``rule(organization_id, count) -> int``.

        ``count`` is the default :class:`SeatCount` (members, pending invitations, included,
        minimum, and ``count.billable``), so a rule can adjust the default rather than redo it.
        """
        self._hooks.seat_rule = rule
        return rule

    def billable_seats(self, organization_id: Any) -> int:
        """What the organization's subscription should be billed for now (committed rows)."""
        state = get_state()
        with state.sql_engine().connect() as conn:
            organization_id = state.schema.parse_key(organization_id)
            plan = _typed_plan(state, conn, organization_id)
            return state.counter.billable_for(conn, organization_id, plan)

    def billable_seats_by_type(self, organization_id: Any) -> dict[str, int]:
        """Billable seats per seat type (``init_app(seat_type=...)``), in one grouped query:
        the members of each type, less the included seats of the organization's plan for that
        type, never below its minimum (``Plan.included_seats``/``minimum_seats``). Types with
        no member (and no minimum) are absent. ``billable_seats`` stays the total."""
        state = get_state()
        with state.sql_engine().connect() as conn:
            organization_id = state.schema.parse_key(organization_id)
            plan = _typed_plan(state, conn, organization_id)
            return state.counter.billable_by_type(conn, organization_id, plan)

    def seat_count(self, organization_id: Any) -> SeatCount:
        """The parts of the default count: members, pending invitations, included, minimum."""
        state = get_state()
        with state.sql_engine().connect() as conn:
            return state.counter.count(conn, state.schema.parse_key(organization_id))

    # -- syncing -------------------------------------------------------------------------------

    def sync_organization(self, organization_id: Any, *, reason: str = "manual") -> SyncResult:
        """Sync one organization now, on this thread; the result says what was sent or why not."""
        state = get_state()
        result = state.engine.sync(state.schema.key(organization_id), reason=reason)
        if result.action == "retrying":
            # The outbox row waits for its retry; make sure someone comes (not in manual mode).
            wait = (result.retry_at - utcnow()).total_seconds() if result.retry_at else 0.0
            state.dispatcher.retry(state.schema.key(organization_id), wait)
        return result

    def sync_pending(self) -> list[SyncResult]:
        """Drain the outbox once: every due organization, one sync each."""
        return get_state().engine.drain()

    def pending_syncs(self) -> list[OutboxEntry]:
        """The outbox as it stands: organizations waiting for a sync, with their last error."""
        state = get_state()
        with state.sql_engine().connect() as conn:
            return outbox.read_all(conn, state.tables)

    def stop_worker(self, timeout: float = 5.0) -> None:
        """Stop this app's background worker (the outbox keeps whatever is pending)."""
        get_state().dispatcher.stop(timeout)

    # -- policies ------------------------------------------------------------------------------

    def policy(
        self, hook: str, *, name: str | None = None, description: str | None = None
    ) -> Callable[[F], F]:
        """Decorator: register a policy on ``hook`` (see :mod:`flask_seat_billing.policies`)."""
        return self._hooks.policies.policy(hook, name=name, description=description)

    def unregister_policy(self, name: str, hook: str | None = None) -> None:
        self._hooks.policies.unregister(name, hook)

    def policies(self, hook: str | None = None) -> list[Policy]:
        """Registered policies in the order they run."""
        return self._hooks.policies.list(hook)

    def check(self, hook: str, **context: Any) -> None:
        """Run the before-policies of ``hook``; raise ``PolicyDenied`` on the first refusal."""
        self._hooks.policies.check(get_state().app, hook, **context)

    def run_after(self, hook: str, **context: Any) -> None:
        """Run the after-policies of ``hook`` now; failures are logged, never raised."""
        self._hooks.policies.run_after(get_state().app, hook, **context)

    def authorize(self, callback: AuthorizeCallback) -> AuthorizeCallback:
        """Decorator: ``callback(request, organization_id, action) -> bool`` guards billing routes.

        ``action`` is ``"checkout"`` or ``"portal"``. Without this (or a ``before_checkout``
        policy) the checkout and portal routes answer 403: billing is closed by default.
        """
        self._hooks.authorize = callback
        return callback

    # -- checkout and previews -----------------------------------------------------------------

    def complete_checkout(self, session_id: str) -> LocalSubscription | None:
        """Record a completed checkout now (for the success page), before its webhook lands."""
        return checkout.complete_checkout(get_state(), session_id)

    def preview_seat_change(
        self, organization_id: Any, seats: int | Mapping[str, int]
    ) -> SeatPreview:
        """What moving the organization to ``seats`` would cost now (the prorated amount).

        Raises ``NotImplementedError`` where the provider cannot preview
        (``provider.capabilities.invoice_preview``), and ``LookupError`` without a
        subscription.
        With ``"at_period_end"`` decreases, a lower ``seats`` costs nothing now: the preview
        keeps ``to_seats`` at today's seats and says when ``seats_from_next_period`` begins
        (``takes_effect_at``), on every provider, without a provider call.

        A plan with seat types takes ``seats`` as a mapping of some of its types to quantities
        (``seats={"editor": 3, "viewer": 1}``: a promotion is both; types not named keep
        theirs), priced as the one write a sync would send, with the decrease rule per type;
        the preview then also has ``from_seats_by_type``, ``to_seats_by_type`` and
        ``seats_from_next_period_by_type`` (``from_seats``/``to_seats`` are the totals). An
        unknown type, or an int for such a plan, raises ``ValueError``/``TypeError`` naming
        its types; a mapping for a plan of one seat price raises ``TypeError``.
        """
        state = get_state()
        local = self.subscription_for(organization_id)
        if local is None or local.status not in ACTIVE_STATUSES:
            raise LookupError(f"Organization {organization_id} has no active subscription.")
        plan = state.catalog.get(local.plan_name) if local.plan_name else None
        if plan is not None and plan.seat_prices:
            wanted = seat_types.checked_quantities(plan, seats)
            return seat_types.preview(state.provider, state.catalog, state.settings,
                                      organization_id, local, wanted)
        if isinstance(seats, Mapping):
            raise TypeError(f"Plan {local.plan_name!r} has no seat types: pass seats as a "
                            "number.")
        waiting = seat_rules.preview_decrease(state.catalog, state.settings, local, seats)
        if waiting is not None:
            return replace(waiting, organization_id=organization_id)
        if not state.provider.capabilities.invoice_preview:
            raise NotImplementedError(f"{state.provider.name} cannot preview a seat change.")
        remote = state.provider.retrieve_subscription(local.provider_subscription_id)
        proration = state.provider.proration_for(remote, state.settings.proration_behavior)
        preview = state.provider.preview_seat_change(remote, seats, proration_behavior=proration)
        return replace(preview, organization_id=organization_id)

    # -- local state ---------------------------------------------------------------------------

    def link_subscription(
        self, organization_id: Any, subscription_id: str
    ) -> LocalSubscription:
        """Record a provider subscription as the organization's (reads it from the provider).

        This is an explicit claim of ownership: from now on the subscription's seats follow the
        organization (if its prices match a configured plan). Like any observation, it sends a
        seat change held while the subscription was not billable and, under
        ``SEAT_BILLING_EXTERNAL_CHANGE = "correct"``, corrects a drifted quantity.
        """
        state = get_state()
        key = state.schema.key(organization_id)  # refused before any provider call
        applied = reconcile.apply_subscription(
            state, subscription_id, organization_key=key, source="link"
        )
        if applied.after is None:  # unreachable: no event, so never a duplicate
            raise RuntimeError(f"subscription {subscription_id} was not recorded")
        return applied.after

    def subscription_for(self, organization_id: Any) -> LocalSubscription | None:
        """The organization's subscription: the one syncs, the seat cap and the portal use
        (``subscriptions.billing_subscription``), else its newest row of any plan."""
        state = get_state()
        key = state.schema.key(organization_id)
        with state.sql_engine().connect() as conn:
            chosen = subscriptions.billing_subscription(conn, state.tables, key)
            return chosen or subscriptions.for_organization(conn, state.tables, key)

    def pending_seat_decrease(self, organization_id: Any) -> PendingDecrease | None:
        """The decrease waiting for the period's end (``"at_period_end"``), or None."""
        state = get_state()
        with state.sql_engine().connect() as conn:
            key = state.schema.key(organization_id)
            return seat_rules.pending_decrease(conn, state.tables, key)

    def seat_changes(self, organization_id: Any, limit: int = 50) -> list[SeatChange]:
        """The organization's seat-change ledger, newest first."""
        state = get_state()
        with state.sql_engine().connect() as conn:
            key = state.schema.key(organization_id)
            return ledger.for_organization(conn, state.tables, key, limit)

    def plan(self, name: str) -> Plan | None:
        """The configured plan called ``name`` (its ``seat_limit``, ``interval``...), or None."""
        return get_state().catalog.get(name)

    @property
    def provider(self) -> BillingProvider:
        """The current app's provider (capability flags: ``provider.capabilities``)."""
        return get_state().provider


def _engines_of(app: Flask, db: Any) -> list[sa.Engine]:
    """The engines ``db`` holds for ``app`` (its binds too); none before ``db.init_app(app)``."""
    with app.app_context():
        try:
            engines = getattr(db, "engines", None)
            found = list(engines.values()) if engines is not None else [db.engine]
        except (RuntimeError, KeyError):
            return []
    return [engine for engine in found if isinstance(engine, sa.Engine)]


def _start_worker_once() -> None:
    """On a process's first request, let the worker pick up rows a previous process left."""
    state = get_state()
    if not state.extras.get("worker_started"):
        state.extras["worker_started"] = True
        state.dispatcher.nudge()



def _typed_plan(state: SeatBillingState, conn: sa.Connection, organization_id: Any) -> Plan | None:
    """The organization's plan when it sets included or minimum seats per seat type (what
    changes its counts); None otherwise, without a query when no plan of the app sets them."""
    if not any(p.included_seats or p.minimum_seats for p in state.catalog.plans):
        return None
    key = state.schema.key(organization_id)
    local = subscriptions.billing_subscription(conn, state.tables, key)
    return state.catalog.get(local.plan_name) if local and local.plan_name else None
