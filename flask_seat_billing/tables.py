"""The extension's own tables, defined on the app's ``db.metadata``.

They live in the app's metadata (not a private one) so that ``db.create_all()`` creates them and
Flask-Migrate's autogenerate puts them in the app's own migrations with no extra step. They are
Core tables rather than mapped classes so that one set of definitions can serve any number of
``SQLAlchemy`` instances (a fresh app per test) without mapper clashes.

Times are naive UTC (see :func:`utcnow`): SQLite keeps no time zone, so one convention
everywhere keeps comparisons honest on both databases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa

PREFIX = "seat_billing_"


def utcnow() -> datetime:
    """Naive UTC now, the only clock the tables use."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class Tables:
    """Handles on the six tables of one metadata."""

    subscriptions: sa.Table
    outbox: sa.Table
    ledger: sa.Table
    webhook_events: sa.Table
    owner_tags: sa.Table
    webhook_queue: sa.Table


def _subscriptions(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        PREFIX + "subscriptions",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("organization_key", sa.String(64), index=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("provider_subscription_id", sa.String(255), nullable=False, unique=True),
        sa.Column("provider_customer_id", sa.String(255)),
        sa.Column("plan_name", sa.String(100)),
        sa.Column("seat_item_id", sa.String(255)),
        sa.Column("seats", sa.Integer),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("current_period_start", sa.DateTime),
        sa.Column("current_period_end", sa.DateTime),
        sa.Column("trial_start", sa.DateTime),
        sa.Column("trial_end", sa.DateTime),
        sa.Column("cancel_at_period_end", sa.Boolean, nullable=False, default=False),
        sa.Column("cancel_at", sa.DateTime),
        sa.Column("canceled_at", sa.DateTime),
        sa.Column("ended_at", sa.DateTime),
        # When the provider created it (Stripe ``created``, Polar ``created_at``): what "the
        # newest" means among equal subscriptions; the local created_at of rows inserted
        # together by a pull says nothing about which is newer.
        sa.Column("provider_created_at", sa.DateTime),
        # The sync engine's write protocol (``sync.py``): ``write_seq`` counts the seat writes
        # sent, so each write's idempotency key is new; ``write_key`` is set, before the
        # request leaves, to the key of a write whose outcome is not recorded yet (cleared by
        # the next record of the provider's state), so that the next sync reads first; it is
        # prefixed "answered:" once that write got an HTTP error answer (never resent then).
        sa.Column("write_seq", sa.Integer, nullable=False, default=0, server_default="0"),
        sa.Column("write_key", sa.String(255)),
        # The namespace the provider's metadata named at the last record of its state ("" for
        # none; NULL: never recorded, so the next sync reads first). The fast path writes from
        # the copy only while it agrees with SEAT_BILLING_NAMESPACE (a restored dump in another
        # deployment must not write the subscriptions of the one it was copied from).
        sa.Column("namespace", sa.String(255)),
        # A plan with seat types (``Plan.seat_prices``): each type's quantity and item as last
        # recorded, ``{"seats": {type: n}, "items": {type: item id}}`` (NULL: none, or never
        # recorded yet, so the next sync reads first). With it the engine writes a typed change
        # from the copy in one request, as it does a single seat quantity.
        sa.Column("seat_types", sa.JSON),
        sa.Column("created_at", sa.DateTime, nullable=False, default=utcnow),
        sa.Column("updated_at", sa.DateTime, nullable=False, default=utcnow),
    )


def _outbox(metadata: sa.MetaData) -> sa.Table:
    # One row per organization: a burst of member changes folds into a single pending sync, and
    # ``generation`` tells a finishing sync whether a newer change arrived while it ran.
    return sa.Table(
        PREFIX + "outbox",
        metadata,
        sa.Column("organization_key", sa.String(64), primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False, default=1),
        sa.Column("status", sa.String(16), nullable=False, default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False, index=True),
        sa.Column("last_error", sa.Text),
        sa.Column("target_seats", sa.Integer),
        # A seat decrease waiting for the period's end (``"at_period_end"`` on a provider that
        # cannot hold it, Stripe): when it was first due and the seats it lowers to. Set by
        # ``outbox.schedule`` only and left alone by marks, failures and holds, which rewrite
        # ``status``/``next_attempt_at``/``target_seats``: a decrease due before the renewal
        # stays known as such (and is credited) until a pass writes the quantity or finds it
        # right. Gone with the row; cleared by a pass that settles it while a newer change keeps
        # the row (``outbox.settle``).
        sa.Column("decrease_due_at", sa.DateTime),
        sa.Column("decrease_seats", sa.Integer),
        # The newest change the row holds (every mark writes it, by the app's clock).
        sa.Column("changed_at", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False, default=utcnow),
        sa.Column("updated_at", sa.DateTime, nullable=False, default=utcnow),
    )


def _ledger(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        PREFIX + "seat_changes",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("organization_key", sa.String(64), nullable=False, index=True),
        sa.Column("provider_subscription_id", sa.String(255), nullable=False, index=True),
        sa.Column("from_seats", sa.Integer),
        sa.Column("to_seats", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("proration_behavior", sa.String(32)),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("prorated_amount", sa.Integer),
        sa.Column("currency", sa.String(8)),
        sa.Column("created_at", sa.DateTime, nullable=False, default=utcnow),
        # A plan with seat types: the type this row moved (None: the subscription's only seats).
        sa.Column("seat_type", sa.String(64)),
    )


def _webhook_events(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        PREFIX + "webhook_events",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("processed_at", sa.DateTime, nullable=False, default=utcnow),
        sa.UniqueConstraint("provider", "event_id", name=PREFIX + "webhook_events_uq"),
    )


def _owner_tags(metadata: sa.MetaData) -> sa.Table:
    # The proofs of ownership (see ``ownership``), apart from the webhook events so that an app
    # trimming that table never makes its own subscriptions strangers. Looked up by tag, and by
    # organization for its open checkouts.
    return sa.Table(
        PREFIX + "owner_tags",
        metadata,
        sa.Column("tag", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("organization_key", sa.String(64), nullable=False, index=True),
        # The checkout the tag was written into, once the provider answered, and its plan:
        # a second checkout request reuses or expires it rather than opening a parallel one.
        # ``checkout_status`` is "open" until the app sees it complete or expire.
        sa.Column("checkout_id", sa.String(255)),
        sa.Column("plan_name", sa.String(100)),
        sa.Column("checkout_status", sa.String(16)),
        sa.Column("created_at", sa.DateTime, nullable=False, default=utcnow),
    )


def _webhook_queue(metadata: sa.MetaData) -> sa.Table:
    # Verified webhook events waiting for a worker (SEAT_BILLING_WEBHOOK_PROCESSING = "queued"):
    # the neutral event as the parser read it, never the payload's copy of the object. A row is
    # deleted once the event is processed (then it is in webhook_events); while it fails it
    # stays, with its attempts and next attempt time, like an outbox row.
    return sa.Table(
        PREFIX + "webhook_queue",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("subscription_id", sa.String(255)),
        sa.Column("checkout_id", sa.String(255)),
        sa.Column("malformed", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False, index=True),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False, default=utcnow),
        sa.UniqueConstraint("provider", "event_id", name=PREFIX + "webhook_queue_uq"),
    )


def define_tables(metadata: sa.MetaData) -> Tables:
    """The extension's tables in ``metadata``, defined once however many apps share it."""

    def table(name: str, build: object) -> sa.Table:
        existing = metadata.tables.get(PREFIX + name)
        if existing is not None:
            return existing
        return build(metadata)  # type: ignore[operator, no-any-return]

    return Tables(
        subscriptions=table("subscriptions", _subscriptions),
        outbox=table("outbox", _outbox),
        ledger=table("seat_changes", _ledger),
        webhook_events=table("webhook_events", _webhook_events),
        owner_tags=table("owner_tags", _owner_tags),
        webhook_queue=table("webhook_queue", _webhook_queue),
    )
