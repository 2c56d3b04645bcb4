"""Blinker signals of flask-seat-billing, in one namespace.

The sender is always the Flask app (``current_app._get_current_object()``); receivers get
keyword arguments only, so connect with ``def receiver(app, **kw)``.

- ``seats_synced``: a sync finished and the provider holds the right quantity.
  ``organization_id``, ``subscription_id``, ``from_seats``, ``to_seats``, ``reason``, ``result``.
- ``seat_sync_failed``: a sync failed. ``organization_id``, ``error`` (the message),
  ``permanent`` (True: recorded, not retried), ``attempts``, ``retry_at`` (None when permanent).
- ``subscription_updated``: the local copy of a subscription changed (webhook, checkout, sync).
  ``organization_id``, ``subscription_id``, ``status``, ``seats``, ``source``.
- ``checkout_completed``: a checkout finished and its subscription is recorded.
  ``organization_id``, ``subscription_id``, ``plan``, ``session_id``.
- ``duplicate_subscription``: a completed checkout left the organization with more than one
  live subscription of a configured plan (also logged as an error; nothing is canceled: only
  the newest follows membership, cancel the others). ``organization_id``, ``subscription_id``
  (the new one), ``other_subscription_ids``, ``session_id``.
- ``seats_changed_externally``: the provider's quantity was changed outside the app.
  ``organization_id``, ``subscription_id``, ``from_seats``, ``to_seats``, ``billable``, ``action``.
- ``seat_decrease_scheduled``: a decrease waits for the period's end (``"at_period_end"``).
  ``organization_id``, ``subscription_id``, ``seats_now``, ``seats_from_next_period``,
  ``takes_effect_at`` (the renewal), ``sent_at`` (when the engine lowers the quantity; None when
  the provider holds the decrease itself, as Polar does).
- ``policy_denied``: a before-policy refused. ``hook``, ``policy``, ``code``, ``message``,
  ``details``, ``context``.
"""

from __future__ import annotations

from blinker import Namespace

namespace = Namespace()

seats_synced = namespace.signal("seats-synced")
seat_sync_failed = namespace.signal("seat-sync-failed")
subscription_updated = namespace.signal("subscription-updated")
checkout_completed = namespace.signal("checkout-completed")
duplicate_subscription = namespace.signal("duplicate-subscription")
seats_changed_externally = namespace.signal("seats-changed-externally")
policy_denied = namespace.signal("policy-denied")
seat_decrease_scheduled = namespace.signal("seat-decrease-scheduled")

__all__ = [
    "checkout_completed",
    "duplicate_subscription",
    "namespace",
    "policy_denied",
    "seat_decrease_scheduled",
    "seat_sync_failed",
    "seats_changed_externally",
    "seats_synced",
    "subscription_updated",
]
