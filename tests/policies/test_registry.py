"""The policy registry: registration, order, refusals, the denial signal, after-hook failures."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from flask_seat_billing import PolicyDenied, SeatBilling, SeatLimitReached, signals
from flask_seat_billing.policies import (
    AFTER_HOOKS,
    BEFORE_HOOKS,
    HOOKS,
    PolicyContext,
    allow,
    deny,
)
from flask_seat_billing.seat_limits import seat_limit_policies
from tests.apps import AppUnderTest


@pytest.fixture
def billing(t: AppUnderTest) -> SeatBilling:
    """The extension without its built-in seat-limit policies: each test sees only its own."""
    for builtin in seat_limit_policies():
        t.billing.unregister_policy(builtin.name, builtin.hook)
    return t.billing


def test_hooks_are_the_seed_kits_lifecycle() -> None:
    assert BEFORE_HOOKS == ("before_invitation_create", "before_invitation_accept",
                            "before_member_remove", "before_checkout")
    assert AFTER_HOOKS == ("after_invitation_accept", "after_member_add", "after_member_remove",
                           "after_checkout_completed", "after_seats_synced")
    assert HOOKS == BEFORE_HOOKS + AFTER_HOOKS


def test_decorator_registers_in_order_and_returns_the_function(billing: SeatBilling) -> None:
    def first(ctx: PolicyContext) -> Any:
        """Only admins invite.

        More text that is not the description.
        """
        return allow()

    decorated = billing.policy("before_invitation_create")(first)

    @billing.policy("before_invitation_create", name="second", description="Domain check")
    def _second(ctx: PolicyContext) -> Any:
        return allow()

    @billing.policy("after_member_add")
    def later(ctx: PolicyContext) -> None:
        pass

    assert decorated is first
    listed = billing.policies("before_invitation_create")
    assert [(p.name, p.description, p.hook) for p in listed] == [
        ("first", "Only admins invite.", "before_invitation_create"),
        ("second", "Domain check", "before_invitation_create"),
    ]
    assert listed[0].fn is first
    assert [p.name for p in billing.policies()] == ["first", "second", "later"]
    assert billing.policies("before_checkout") == []


def test_unknown_hook_is_refused_naming_the_valid_ones(billing: SeatBilling) -> None:
    with pytest.raises(ValueError, match="before_invite") as error:
        billing.policy("before_invite")
    assert "before_invitation_create" in str(error.value)
    assert "after_seats_synced" in str(error.value)
    with pytest.raises(ValueError, match="before_invite"):
        billing.policies("before_invite")


def test_duplicate_name_on_one_hook_is_refused(billing: SeatBilling) -> None:
    def rule(ctx: PolicyContext) -> Any:
        return allow()

    billing.policy("before_checkout")(rule)
    with pytest.raises(ValueError, match="'rule' is already registered on before_checkout"):
        billing.policy("before_checkout")(rule)
    billing.policy("before_member_remove")(rule)  # the same name on another hook is fine
    assert [p.hook for p in billing.policies() if p.name == "rule"] == [
        "before_member_remove", "before_checkout"]


def test_unregister_one_hook_or_every_hook(billing: SeatBilling) -> None:
    def rule(ctx: PolicyContext) -> Any:
        return allow()

    billing.policy("before_checkout")(rule)
    billing.policy("before_member_remove")(rule)
    billing.policy("before_checkout", name="other")(rule)

    billing.unregister_policy("rule", "before_checkout")
    assert [(p.name, p.hook) for p in billing.policies()] == [
        ("rule", "before_member_remove"), ("other", "before_checkout")]
    billing.unregister_policy("rule")
    assert [p.name for p in billing.policies()] == ["other"]

    with pytest.raises(KeyError, match="No policy named 'rule' is registered on any hook"):
        billing.unregister_policy("rule")
    with pytest.raises(KeyError, match="'other' is registered on before_member_remove"):
        billing.unregister_policy("other", "before_member_remove")
    with pytest.raises(ValueError, match="Unknown policy hook"):
        billing.unregister_policy("other", "nope")


@pytest.mark.parametrize("hook", BEFORE_HOOKS)
def test_every_before_hook_allows_and_denies(billing: SeatBilling, hook: str) -> None:
    seen: list[PolicyContext] = []
    verdict: dict[str, Any] = {"answer": allow()}

    @billing.policy(hook)
    def rule(ctx: PolicyContext) -> Any:
        seen.append(ctx)
        return verdict["answer"]

    billing.check(hook, organization_id=7, action="invite")
    assert seen[0].hook == hook and seen[0].organization_id == 7 and seen[0].action == "invite"

    verdict["answer"] = deny("NOT_ADMIN", "Only admins may do this.", {"role": "member"})
    with pytest.raises(PolicyDenied) as error:
        billing.check(hook, organization_id=7)
    assert type(error.value) is PolicyDenied
    assert error.value.to_dict() == {
        "code": "NOT_ADMIN", "message": "Only admins may do this.", "details": {"role": "member"}}


def test_policies_run_in_order_and_the_first_refusal_wins(billing: SeatBilling) -> None:
    ran: list[str] = []

    def make(name: str, answer: Any) -> None:
        def rule(ctx: PolicyContext) -> Any:
            ran.append(name)
            return answer

        billing.policy("before_invitation_create", name=name)(rule)

    make("a", allow())
    make("b", deny("B", "b says no"))
    make("c", deny("C", "c says no"))

    with pytest.raises(PolicyDenied) as error:
        billing.check("before_invitation_create", organization_id=1)
    assert error.value.code == "B"
    assert ran == ["a", "b"]


def test_a_seat_limit_refusal_raises_seat_limit_reached(billing: SeatBilling) -> None:
    @billing.policy("before_invitation_accept")
    def full(ctx: PolicyContext) -> Any:
        return deny("SEAT_LIMIT_REACHED", "Full.", {"purchased": 3})

    with pytest.raises(SeatLimitReached) as error:
        billing.check("before_invitation_accept", organization_id=1)
    assert error.value.code == "SEAT_LIMIT_REACHED"
    assert error.value.details == {"purchased": 3}


def test_a_failing_before_policy_propagates_and_stops_the_check(billing: SeatBilling) -> None:
    ran: list[str] = []

    @billing.policy("before_member_remove")
    def broken(ctx: PolicyContext) -> Any:
        raise RuntimeError("database down")

    @billing.policy("before_member_remove")
    def never(ctx: PolicyContext) -> Any:
        ran.append("never")
        return allow()

    with pytest.raises(RuntimeError, match="database down"):
        billing.check("before_member_remove", organization_id=1)
    assert ran == []


def test_a_before_policy_that_forgets_to_return_does_not_allow(billing: SeatBilling) -> None:
    @billing.policy("before_checkout")
    def forgot(ctx: PolicyContext) -> Any:
        deny("NO", "meant to refuse")  # no return

    with pytest.raises(TypeError, match="'forgot' on before_checkout returned None"):
        billing.check("before_checkout", organization_id=1)


def test_policy_denied_signal_carries_the_documented_kwargs(
    billing: SeatBilling, t: AppUnderTest
) -> None:
    received: list[tuple[Any, dict[str, Any]]] = []

    def receiver(app: Any, **kwargs: Any) -> None:
        received.append((app, kwargs))

    @billing.policy("before_checkout", name="domain-only")
    def domain_only(ctx: PolicyContext) -> Any:
        return deny("WRONG_DOMAIN", "Use your work address.", {"domain": "gmail.com"})

    with signals.policy_denied.connected_to(receiver), pytest.raises(PolicyDenied):
        billing.check("before_checkout", organization_id=5, user="ann", plan="pro-monthly")

    [(sender, kwargs)] = received
    assert sender is t.app
    assert set(kwargs) == {"hook", "policy", "code", "message", "details", "context"}
    assert kwargs["hook"] == "before_checkout"
    assert kwargs["policy"] == "domain-only"
    assert kwargs["code"] == "WRONG_DOMAIN"
    assert kwargs["message"] == "Use your work address."
    assert kwargs["details"] == {"domain": "gmail.com"}
    context = kwargs["context"]
    assert isinstance(context, PolicyContext)
    assert (context.organization_id, context.user, context.plan) == (5, "ann", "pro-monthly")


def test_a_policy_raising_policy_denied_is_its_refusal(billing: SeatBilling) -> None:
    received: list[dict[str, Any]] = []

    @billing.policy("before_invitation_create")
    def raises(ctx: PolicyContext) -> Any:
        raise SeatLimitReached("Full.", {"purchased": 1})

    def receiver(app: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    with signals.policy_denied.connected_to(receiver), pytest.raises(SeatLimitReached):
        billing.check("before_invitation_create", organization_id=1)
    assert [(k["policy"], k["code"]) for k in received] == [("raises", "SEAT_LIMIT_REACHED")]


def test_no_denial_signal_when_every_policy_allows(billing: SeatBilling) -> None:
    received: list[Any] = []

    @billing.policy("before_checkout")
    def fine(ctx: PolicyContext) -> Any:
        return allow()

    with signals.policy_denied.connected_to(lambda app, **kw: received.append(kw)):
        billing.check("before_checkout", organization_id=1)
    assert received == []


def test_hooks_run_only_on_their_side(billing: SeatBilling) -> None:
    with pytest.raises(ValueError, match="check\\(\\) runs before-hooks"):
        billing.check("after_member_add", organization_id=1)
    with pytest.raises(ValueError, match="run_after\\(\\) runs after-hooks"):
        billing.run_after("before_checkout", organization_id=1)
    with pytest.raises(ValueError, match="Unknown policy hook 'before_nothing'"):
        billing.check("before_nothing", organization_id=1)


def test_after_policy_errors_are_logged_with_context_and_not_raised(
    billing: SeatBilling, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    @billing.policy("after_member_remove", name="update-crm")
    def broken(ctx: PolicyContext) -> None:
        ran.append("broken")
        raise RuntimeError("CRM unreachable")

    @billing.policy("after_member_remove", name="audit")
    def audit(ctx: PolicyContext) -> None:
        ran.append(f"audit {ctx.organization_id} {ctx.member}")

    with caplog.at_level(logging.ERROR, logger="flask_seat_billing.policies"):
        billing.run_after("after_member_remove", organization_id=42, member="m-1")

    assert ran == ["broken", "audit 42 m-1"]
    [record] = [r for r in caplog.records if r.name == "flask_seat_billing.policies"]
    message = record.getMessage()
    assert "'update-crm'" in message and "after_member_remove" in message
    assert "organization_id=42" in message and "member='m-1'" in message
    assert record.exc_info is not None and "CRM unreachable" in str(record.exc_info[1])
    assert record.__dict__["policy"] == "update-crm"


def test_context_sorts_keywords_into_fields_and_extra(
    billing: SeatBilling, t: AppUnderTest
) -> None:
    seen: list[PolicyContext] = []

    @billing.policy("before_invitation_create")
    def look(ctx: PolicyContext) -> Any:
        seen.append(ctx)
        return allow()

    with t.app.test_request_context("/invite", headers={"X-Team": "blue"}):
        billing.check("before_invitation_create", organization_id=3, email="a@b.io", role="admin")
    ctx = seen[0]
    assert ctx.extra == {"email": "a@b.io", "role": "admin"}
    assert ctx.get("email") == "a@b.io" and ctx.get("organization_id") == 3
    assert ctx.get("missing", "default") == "default"
    assert ctx.request.headers["X-Team"] == "blue"
    assert ctx.app is t.app

    with pytest.raises(TypeError, match="app is set by the registry"):
        billing.check("before_invitation_create", organization_id=3, app=object())
