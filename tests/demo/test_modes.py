"""Offline by default; Stripe test mode when a secret key (and the price ids) are given."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo_app import create_app
from demo_app.offline import offline_stripe


def test_offline_by_default_points_stripe_at_a_lazy_stand_in(tmp_path: Path) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite'}"})
    offline = offline_stripe(app)
    assert offline is not None and offline.stand_in is None  # not started until a request
    assert app.config["SEAT_BILLING_STRIPE_API_BASE"] == offline.url
    assert app.config["SEAT_BILLING_STRIPE_WEBHOOK_SECRET"].startswith("whsec_")


def test_stripe_test_mode_needs_the_price_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite'}"}
    monkeypatch.setenv("SEAT_BILLING_STRIPE_SECRET_KEY", "sk_test_demo")
    monkeypatch.setenv("SEAT_BILLING_STRIPE_WEBHOOK_SECRET", "whsec_demo")
    with pytest.raises(RuntimeError, match="STRIPE_PRICE_TEAM_MONTHLY"):
        create_app(database)
    monkeypatch.setenv("STRIPE_PRICE_TEAM_MONTHLY", "price_base")
    monkeypatch.setenv("STRIPE_SEAT_PRICE_TEAM_MONTHLY", "price_seat")
    app = create_app(database)
    assert offline_stripe(app) is None
    assert app.config["SEAT_BILLING_STRIPE_API_BASE"] is None
    assert app.config["DEMO_SEAT_PRICE_ID"] == "price_seat"
