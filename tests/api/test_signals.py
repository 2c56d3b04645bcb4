"""Every signal is sent, by the app, with exactly the keyword arguments the README documents."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flask_seat_billing import PolicyDenied
from flask_seat_billing.policies import deny
from tests.apps import PRO_MONTHLY
from tests.conftest import AppFactory, subscribe
from tests.web_helpers import Served, record_signals, serve_app

DOCUMENTED = {
    "seats_synced": {"organization_id", "subscription_id", "from_seats", "to_seats", "reason",
                     "result"},
    "seat_sync_failed": {"organization_id", "error", "permanent", "attempts", "retry_at"},
    "subscription_updated": {"organization_id", "subscription_id", "status", "seats", "source"},
    "checkout_completed": {"organization_id", "subscription_id", "plan", "session_id"},
    "seats_changed_externally": {"organization_id", "subscription_id", "from_seats", "to_seats",
                                 "billable", "action"},
    "policy_denied": {"hook", "policy", "code", "message", "details", "context"},
}


@pytest.fixture
def seen() -> Iterator[dict[str, list[dict[str, Any]]]]:
    received, keep = record_signals(*DOCUMENTED)
    yield received
    for signal, receiver in keep:
        signal.disconnect(receiver)


@pytest.fixture
def web(make_app: AppFactory, stripe: Any) -> Iterator[Served]:
    yield from serve_app(make_app, stripe)


def test_sync_signals_carry_their_documented_arguments(
    web: Served, stripe: Any, seen: dict[str, list[dict[str, Any]]]
) -> None:
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    sub = subscribe(t, stripe, org.id)

    t.add_members(org.id, 1)
    [synced] = seen["seats_synced"]
    assert set(synced) == DOCUMENTED["seats_synced"]
    assert (synced["organization_id"], synced["subscription_id"]) == (org.id, sub)
    assert (synced["from_seats"], synced["to_seats"], synced["reason"]) == (2, 3, "membership")

    t.billing.stop_worker()
    stripe.faults.fail_next(1, status=400, path_prefix="/v1/subscription_items")
    t.add_members(org.id, 1)
    [failed] = seen["seat_sync_failed"]
    assert set(failed) == DOCUMENTED["seat_sync_failed"]
    assert failed["organization_id"] == org.id and failed["permanent"] is True
    assert failed["attempts"] == 1 and failed["retry_at"] is None


def test_checkout_and_external_change_signals(
    web: Served, stripe: Any, seen: dict[str, list[dict[str, Any]]]
) -> None:
    t = web.t
    org = t.add_organization()
    t.add_members(org.id, 2)
    answer = web.checkout(org.id)
    session_id = answer.json["id"]
    stripe.complete_checkout(session_id)
    t.billing.complete_checkout(session_id)

    [completed] = seen["checkout_completed"]
    assert set(completed) == DOCUMENTED["checkout_completed"]
    assert (completed["organization_id"], completed["plan"], completed["session_id"]) == (
        org.id, "pro-monthly", session_id)
    updated = seen["subscription_updated"][0]
    assert set(updated) == DOCUMENTED["subscription_updated"]
    assert (updated["organization_id"], updated["status"], updated["seats"]) == (
        org.id, "active", 2)

    sub = completed["subscription_id"]
    stripe.set_seats(sub, 5, PRO_MONTHLY)  # a dashboard edit
    stripe.deliver_pending()
    [external] = seen["seats_changed_externally"]
    assert set(external) == DOCUMENTED["seats_changed_externally"]
    assert (external["from_seats"], external["to_seats"], external["billable"],
            external["action"]) == (2, 5, 2, "accept")


def test_policy_denied_carries_its_documented_arguments(
    make_app: AppFactory, seen: dict[str, list[dict[str, Any]]]
) -> None:
    t = make_app()

    @t.billing.policy("before_member_remove", name="keep-owners", description="Owners stay")
    def keep_owners(ctx: Any) -> Any:
        return deny("OWNER", "Owners cannot be removed", {"role": "owner"})

    with t.app.app_context(), pytest.raises(PolicyDenied):
        t.billing.check("before_member_remove", organization_id=7)
    [denied] = seen["policy_denied"]
    assert set(denied) == DOCUMENTED["policy_denied"]
    assert (denied["hook"], denied["policy"], denied["code"], denied["details"]) == (
        "before_member_remove", "keep-owners", "OWNER", {"role": "owner"})
