"""The seat-change ledger: every quantity the provider was moved to, when, why, from what."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .tables import Tables, utcnow


@dataclass(frozen=True)
class SeatChange:
    """One ledger row."""

    id: int
    organization_key: str
    provider_subscription_id: str
    from_seats: int | None
    to_seats: int
    reason: str
    proration_behavior: str | None
    idempotency_key: str | None
    prorated_amount: int | None
    currency: str | None
    created_at: datetime
    seat_type: str | None = None
    """A plan with seat types: the type whose quantity this row records (from, to)."""


def append_values(
    *,
    organization_key: str,
    subscription_id: str,
    from_seats: int | None,
    to_seats: int,
    reason: str,
    proration_behavior: str | None = None,
    idempotency_key: str | None = None,
    prorated_amount: int | None = None,
    currency: str | None = None,
    seat_type: str | None = None,
) -> dict[str, Any]:
    """The values of one ledger row, by column name."""
    return {
        "organization_key": organization_key,
        "provider_subscription_id": subscription_id,
        "from_seats": from_seats,
        "to_seats": to_seats,
        "reason": reason,
        "proration_behavior": proration_behavior,
        "idempotency_key": idempotency_key,
        "prorated_amount": prorated_amount,
        "currency": currency,
        "created_at": utcnow(),
        "seat_type": seat_type,
    }


def append_statement(tables: Tables, **row: Any) -> sa.Insert:
    """The INSERT of one ledger row (the sync engine may send it inside a larger statement);
    the keywords are :func:`append_values`'."""
    return tables.ledger.insert().values(append_values(**row))


_TEMPLATES: dict[sa.Table, sa.Insert] = {}


def append_template(tables: Tables) -> sa.Insert:
    """:func:`append_statement` with a bound parameter ``fsb_ledger_<column>`` for each value
    of :func:`append_values`: built once, sent with new values (no statement to build and key
    on every write)."""
    t = tables.ledger
    template = _TEMPLATES.get(t)
    if template is None:
        names = append_values(organization_key="", subscription_id="", from_seats=None,
                              to_seats=0, reason="")
        template = _TEMPLATES[t] = t.insert().values(
            {name: sa.bindparam(f"fsb_ledger_{name}", type_=t.c[name].type) for name in names})
    return template


def template_values(values: dict[str, Any]) -> dict[str, Any]:
    """:func:`append_values`' values named for :func:`append_template`."""
    return {f"fsb_ledger_{name}": value for name, value in values.items()}


def append(conn: sa.Connection, tables: Tables, **row: Any) -> None:
    """Append one row; the keywords are :func:`append_statement`'s."""
    conn.execute(append_statement(tables, **row))


def for_organization(
    conn: sa.Connection, tables: Tables, key: str, limit: int = 50
) -> list[SeatChange]:
    t = tables.ledger
    rows = conn.execute(
        sa.select(t).where(t.c.organization_key == key).order_by(t.c.id.desc()).limit(limit)
    )
    return [SeatChange(**dict(row._mapping)) for row in rows]


def row_dict(change: SeatChange) -> dict[str, Any]:
    return {k: getattr(change, k) for k in SeatChange.__dataclass_fields__}
