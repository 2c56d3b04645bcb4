"""Bad configuration fails at init_app with an error naming the key or plan."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column

from flask_seat_billing import ConfigurationError, Plan, Product, SeatBilling
from tests.apps import build_app, products


def _init(tmp_path: Any, config: dict[str, Any] | None = None, **options: Any) -> Any:
    return build_app(f"sqlite:///{tmp_path / 'c.db'}", config=config, **options)


def _products(*plans: Plan) -> list[Product]:
    return [Product(id="p", name="P", plans=list(plans))]


LOCAL = {"SEAT_BILLING_STRIPE_API_BASE": "http://127.0.0.1:9"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"SEAT_BILLING_PROVIDER": "paddle", **LOCAL}, "SEAT_BILLING_PROVIDER"),
        ({}, "SEAT_BILLING_STRIPE_SECRET_KEY"),
        ({"SEAT_BILLING_PRORATION_BEHAVIOR": "sometimes", **LOCAL},
         "SEAT_BILLING_PRORATION_BEHAVIOR"),
        ({"SEAT_BILLING_INCLUDED_SEATS": -1, **LOCAL}, "SEAT_BILLING_INCLUDED_SEATS"),
        ({"SEAT_BILLING_MINIMUM_SEATS": -2, **LOCAL}, "SEAT_BILLING_MINIMUM_SEATS"),
        ({"SEAT_BILLING_SYNC_MODE": "eventually", **LOCAL}, "SEAT_BILLING_SYNC_MODE"),
        ({"SEAT_BILLING_CIRCUIT_BREAKER_FAILURES": -1, **LOCAL},
         "SEAT_BILLING_CIRCUIT_BREAKER_FAILURES must be a non-negative number, got -1"),
        ({"SEAT_BILLING_CIRCUIT_BREAKER_FAILURES": "3", **LOCAL},
         "SEAT_BILLING_CIRCUIT_BREAKER_FAILURES must be a non-negative number, got '3'"),
    ],
)
def test_bad_keys_are_named(tmp_path: Any, config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _init(tmp_path, config)


def test_real_stripe_without_key_is_refused(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match="SEAT_BILLING_STRIPE_SECRET_KEY"):
        _init(tmp_path, {"SEAT_BILLING_STRIPE_API_BASE": "https://api.stripe.com"})


def test_mixed_intervals_sharing_a_seat_price_are_refused(tmp_path: Any) -> None:
    plans = _products(
        Plan(name="m", plan_id="price_m", seat_price_id="price_seat", interval="month"),
        Plan(name="y", plan_id="price_y", seat_price_id="price_seat", interval="year"),
    )
    with pytest.raises(ConfigurationError, match="'m' .*'y'.*price_seat"):
        _init(tmp_path, LOCAL, products=plans)


def test_duplicate_plan_names_are_refused(tmp_path: Any) -> None:
    plans = _products(Plan(name="m", plan_id="a"), Plan(name="m", plan_id="b"))
    with pytest.raises(ConfigurationError, match="'m' is used twice"):
        _init(tmp_path, LOCAL, products=plans)


def test_plan_with_unknown_proration_is_refused(tmp_path: Any) -> None:
    plans = _products(Plan(name="m", plan_id="a", proration_behavior="later"))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="'m'.*later"):
        _init(tmp_path, LOCAL, products=plans)


def test_member_model_without_organization_attribute(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match="team_id"):
        _init(tmp_path, LOCAL, organization_key="team_id")


def test_seat_price_with_polar_is_refused(tmp_path: Any) -> None:
    config = {"SEAT_BILLING_PROVIDER": "polar", "SEAT_BILLING_POLAR_SERVER_URL": "http://127.0.0.1:9"}
    with pytest.raises(ConfigurationError, match="'pro-monthly'.*Stripe-only"):
        _init(tmp_path, config)


def test_init_app_twice_is_an_error(tmp_path: Any) -> None:
    t = _init(tmp_path, LOCAL)
    with pytest.raises(RuntimeError, match="already initialized"):
        t.billing.init_app(t.app, db=t.db, member_model=t.Membership, products=[])


def test_using_the_extension_without_init_app_says_so(tmp_path: Any) -> None:
    t = _init(tmp_path, LOCAL, init=False)
    with t.app.app_context(), pytest.raises(RuntimeError, match="forget to call"):
        t.billing.billable_seats(1)


def test_defaults_are_set_on_the_config(tmp_path: Any) -> None:
    t = _init(tmp_path, LOCAL)
    assert t.app.config["SEAT_BILLING_PROVIDER"] == "stripe"
    assert t.app.config["SEAT_BILLING_URL_PREFIX"] == "/billing"
    assert t.app.config["SEAT_BILLING_MINIMUM_SEATS"] == 1


def test_a_member_model_on_another_bind_is_refused(tmp_path: Any) -> None:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'main.db'}",
                      SQLALCHEMY_BINDS={"people": f"sqlite:///{tmp_path / 'people.db'}"}, **LOCAL)
    db = SQLAlchemy(app)

    class Member(db.Model):  # type: ignore[name-defined,misc]
        __bind_key__ = "people"
        id: Mapped[int] = mapped_column(primary_key=True)
        organization_id: Mapped[int]

    with pytest.raises(ConfigurationError, match="Member is on the bind 'people'"):
        SeatBilling(app, db=db, member_model=Member, organization_key="organization_id",
                    products=products())
