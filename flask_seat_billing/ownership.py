"""Which provider subscriptions are this app's own: only those it can prove it made, or was told.

A subscription is owned by an organization when one of these holds, and nothing else:

- the local row is already linked to the organization (a link, once made, is the app's own
  record: it survives provider-side metadata edits and configuration changes);
- its metadata carries an owner tag that ``/billing/checkout`` generated, wrote server-side
  (Stripe ``subscription_data.metadata``, Polar checkout metadata, which Polar copies to the
  subscription), and recorded in this app's database together with the organization; and the
  metadata names no namespace other than this app's ``SEAT_BILLING_NAMESPACE``;
- the app called ``link_subscription``.

Fields a buyer can set (Stripe's ``client_reference_id`` through Payment Links and the pricing
table, Polar's ``external_customer_id``) and a bare ``metadata.organization_id`` prove nothing:
another app or a staging copy on the same provider account writes the same metadata keys. The
tag is random and recorded in the app's own database, so two deployments of the same code (with
their own databases) never own each other's subscriptions, with no configuration at all.

The tags have a table of their own, ``seat_billing_owner_tags`` (tag, provider, organization
key), apart from the webhook events: an app that trims old events to keep that table small
loses no proof, and a checkout still open during the trim stays the app's own.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

import sqlalchemy as sa

from .providers.base import NAMESPACE_KEY, RemoteSubscription
from .tables import Tables


def new_tag(conn: sa.Connection, tables: Tables, provider: str, key: str) -> str:
    """A fresh owner tag for a checkout of organization ``key``, recorded (caller commits)."""
    tag = secrets.token_hex(16)
    conn.execute(
        tables.owner_tags.insert().values(tag=tag, provider=provider, organization_key=key))
    return tag


def forget_tag(conn: sa.Connection, tables: Tables, provider: str, tag: str) -> None:
    """Remove a tag whose checkout was never opened (the provider refused or was unreachable)."""
    t = tables.owner_tags
    conn.execute(t.delete().where(t.c.provider == provider, t.c.tag == tag))


def keys_for_tags(
    conn: sa.Connection, tables: Tables, provider: str, tags: Iterable[str]
) -> dict[str, str]:
    """{tag: organization key} for the tags this app recorded (one query per 500 tags)."""
    wanted = sorted({t for t in tags if t})
    if not wanted:
        return {}
    t = tables.owner_tags
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        rows = conn.execute(sa.select(t.c.tag, t.c.organization_key).where(
            t.c.provider == provider, t.c.tag.in_(wanted[start:start + 500])))
        for tag, key in rows:
            found[str(tag)] = str(key)
    return found


def namespace_matches(metadata: dict[str, str], namespace: str | None) -> bool:
    """False only when the metadata names *another* namespace than this app's.

    Metadata with no namespace matches whatever ``SEAT_BILLING_NAMESPACE`` is: subscriptions
    sold before a deployment set it carry none, and they stay the app's (already linked, or
    proven by an owner tag recorded in its own database). The namespace fences off only what
    another deployment sold after setting its own.
    """
    theirs = metadata.get(NAMESPACE_KEY) or None
    return theirs is None or theirs == (namespace or None)


def claimed_key(
    conn: sa.Connection, tables: Tables, provider: str, tag: str | None,
    metadata: dict[str, str], namespace: str | None,
) -> str | None:
    """The organization an owner tag proves, or None when it proves nothing here."""
    if not tag or not namespace_matches(metadata, namespace):
        return None
    return keys_for_tags(conn, tables, provider, [tag]).get(tag)


def owner_of(
    conn: sa.Connection, tables: Tables, provider: str, remote: RemoteSubscription,
    namespace: str | None,
) -> str | None:
    """The organization that owns ``remote`` by its metadata, if this app made it."""
    return claimed_key(conn, tables, provider, remote.owner_tag, remote.metadata, namespace)


# -- the checkout a tag was written into (see ``open_checkouts``) ------------------------------

OPEN = "open"


def record_checkout(
    conn: sa.Connection, tables: Tables, provider: str, tag: str, checkout_id: str, plan: str,
) -> None:
    """The provider opened ``checkout_id`` with ``tag``: remember it as the organization's open
    checkout of ``plan`` (caller commits)."""
    t = tables.owner_tags
    conn.execute(t.update().where(t.c.provider == provider, t.c.tag == tag).values(
        checkout_id=checkout_id, plan_name=plan, checkout_status=OPEN))


def open_checkouts(
    conn: sa.Connection, tables: Tables, provider: str, key: str
) -> list[tuple[str, str | None]]:
    """(checkout id, plan) of the organization's checkouts not yet seen complete or expired."""
    t = tables.owner_tags
    rows = conn.execute(
        sa.select(t.c.checkout_id, t.c.plan_name)
        .where(t.c.provider == provider, t.c.organization_key == key,
               t.c.checkout_status == OPEN)
        .order_by(t.c.created_at, t.c.tag))
    return [(str(checkout_id), plan) for checkout_id, plan in rows]


def close_checkout(
    conn: sa.Connection, tables: Tables, provider: str, checkout_id: str, status: str
) -> None:
    """The checkout is no longer open (``complete``, ``expired``...; caller commits)."""
    t = tables.owner_tags
    conn.execute(t.update().where(t.c.provider == provider, t.c.checkout_id == checkout_id)
                 .values(checkout_status=status[:16]))
