"""Per-app state of the extension, kept in ``app.extensions["seat_billing"]``.

The extension object itself holds no app (Flask's extension rule), so one ``SeatBilling`` can
serve several apps; everything an app needs at run time hangs off this object instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

from .counting import SeatCounter
from .dispatch import Dispatcher
from .hooks import Hooks
from .membership import MembershipSchema
from .plans import PlanCatalog
from .providers.base import BillingProvider
from .settings import Settings
from .sync import SyncEngine
from .tables import Tables


@dataclass
class SeatBillingState:
    """Everything one app's seat billing needs, built once in ``init_app``."""

    app: Flask
    db: Any
    settings: Settings
    catalog: PlanCatalog
    tables: Tables
    schema: MembershipSchema
    counter: SeatCounter
    provider: BillingProvider
    engine: SyncEngine
    dispatcher: Dispatcher
    """Who runs syncs after a commit: a thread here, or Celery (``SEAT_BILLING_DISPATCH``)."""
    hooks: Hooks
    """The app's policies, authorize callback and seat rule (shared with the extension)."""
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def mark_delay(self) -> float:
        """How long a new outbox row waits before it is due (the debounce of deferred mode)."""
        return self.settings.debounce_seconds if self.settings.sync_mode == "deferred" else 0.0

    def custom_rule_active(self) -> bool:
        return self.counter.rule is not None

    def sql_engine(self) -> sa.Engine:
        engine: sa.Engine = self.db.engine
        return engine

    def after_commit(self, keys: set[str]) -> None:
        """A transaction that changed these organizations committed: act per sync mode."""
        self.dispatcher.after_commit(keys)

    def run_after_events(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Run after-policies for a committed transaction, with a fresh ``db.session``."""
        with self.app.app_context():
            for hook, context in events:
                self.hooks.policies.run_after(self.app, hook, **context)


def get_state(app: Flask | None = None) -> SeatBillingState:
    """The state of ``app`` (default: the current app), with a helpful error if missing."""
    target = app if app is not None else current_app
    state: SeatBillingState | None = target.extensions.get("seat_billing")
    if state is None:
        raise RuntimeError(
            "flask-seat-billing is not initialized on this app. Did you forget to call "
            "seat_billing.init_app(app, db=..., member_model=..., products=...)?"
        )
    return state

