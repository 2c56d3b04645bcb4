"""Jinja filters: money in minor units, dates."""

from __future__ import annotations

import datetime as dt

from flask import Flask

SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


def money(amount: int | None, currency: str | None = "usd") -> str:
    """``1234, "usd"`` -> ``$12.34``; a credit shows as ``-$12.34``; None as a dash."""
    if amount is None:
        return "—"
    code = (currency or "usd").lower()
    symbol = SYMBOLS.get(code)
    sign = "-" if amount < 0 else ""
    value = f"{abs(amount) / 100:,.2f}"
    return f"{sign}{symbol}{value}" if symbol else f"{sign}{value} {code.upper()}"


def when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def register_filters(app: Flask) -> None:
    app.add_template_filter(money, "money")
    app.add_template_filter(when, "when")
