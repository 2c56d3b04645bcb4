"""How a membership change is captured: from the app's flush to the seat sync after its commit.

- :mod:`.listeners`: unit-of-work events on the member (and invitation) model and the session;
- :mod:`.bulk`: bulk ``insert`` / ``update`` / ``delete`` statements on the member model;
- :mod:`.notes`: which app a change belongs to, and the outbox write in the change's transaction;
- :mod:`.marks_at_commit`: on PostgreSQL with psycopg, that write sent with the COMMIT itself
  (``SEAT_BILLING_OUTBOX_AT_COMMIT``, installed on the app's own engines);
- :mod:`.after_commit`: once committed, hand the organizations to the sync engine and run the
  after-policies.

Nothing here calls the provider: a change is noted durably, and synced after the commit.
"""
