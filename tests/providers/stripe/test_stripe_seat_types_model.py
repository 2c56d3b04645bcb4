"""A model-based test of several seat types: joins, leaves, promotions, faults and drains.

Hypothesis drives two organizations subscribed to the Studio plan (editor and viewer seats, each
an item of its own price on the Stripe stand-in) in manual sync mode. Members join with a type,
leave, change type (a promotion or a demotion is one change), or join with a type no price bills
(it counts in the total only). Faults are queued for the next subscription request. The rules it
checks:

- after each settle, every billed type's item quantity equals that type's billable count, and a
  type with no members and no item stays without one;
- a sync pass sends at most one subscription write per organization, however many types moved
  (types move in one write, one proration);
- the ledger rows of one write share its idempotency key, and no key is ever sent with two
  different sets of quantities.

Seat types are Stripe's only (Polar has no separate seat prices and refuses them at
``init_app``), so this runs on the Stripe stand-in alone.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from flask_seat_billing import Plan, Product
from tests.apps import build_app, products
from tests.behaviour.chaos.invariants import database_kind, write_summary
from tests.helpers import ledger_rows, outbox_rows

STUDIO_BASE = "price_studio_m"
EDITOR = "price_editor_m"
VIEWER = "price_viewer_m"
STUDIO = Plan(name="studio-monthly", plan_id=STUDIO_BASE, interval="month", cost=49,
              seat_prices={"editor": EDITOR, "viewer": VIEWER})
TYPE_OF_PRICE = {EDITOR: "editor", VIEWER: "viewer"}
ROLES = ["editor", "viewer", "intern"]  # interns are members no seat price bills
CONFIG = {
    "SEAT_BILLING_SYNC_MODE": "manual",
    "SEAT_BILLING_STRIPE_MAX_NETWORK_RETRIES": 0,
    "SEAT_BILLING_RETRY_BASE_SECONDS": 0.01,
    "SEAT_BILLING_RETRY_MAX_SECONDS": 0.05,
}
FAULTS = ["500", "409", "429", "drop_lost", "drop_applied"]
WRITE_PREFIXES = ("/v1/subscriptions/", "/v1/subscription_items/")


def _catalog(stripe: Any) -> None:
    product = stripe.create_product(name="Studio")["id"]
    for price, amount in ((STUDIO_BASE, 4900), (EDITOR, 1500), (VIEWER, 500)):
        stripe.create_price(id=price, product=product, unit_amount=amount, interval="month")


def _quantities(stripe: Any, sub: str) -> dict[str, int]:
    items = stripe.subscription(sub)["items"]["data"]
    return {TYPE_OF_PRICE[i["price"]["id"]]: int(i["quantity"]) for i in items
            if i["price"]["id"] in TYPE_OF_PRICE}


def _sent_quantities(request: Any) -> tuple[tuple[str, str], ...]:
    """What one subscription write asked for: (item or price, quantity) pairs, in order."""
    params = request.params
    if "items" not in params:
        return (("item", str(params.get("quantity"))),)
    items = params["items"]
    items = [items[k] for k in sorted(items, key=int)] if isinstance(items, dict) else items
    return tuple((str(i.get("id") or i.get("price")), str(i.get("quantity"))) for i in items)


def _key_reuse(stripe: Any) -> dict[str, set[Any]]:
    """Idempotency keys sent with more than one set of quantities (must be none)."""
    seen: dict[str, set[Any]] = defaultdict(set)
    for r in stripe.requests.all():
        if r.idempotency_key and r.method == "POST" and r.path.startswith(WRITE_PREFIXES):
            seen[r.idempotency_key].add(_sent_quantities(r))
    return {k: v for k, v in seen.items() if len(v) > 1}


def test_seat_types_model(stripe: Any, database_url: str) -> None:
    totals: Counter[str] = Counter()

    class TypesMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            stripe.reset()
            _catalog(stripe)
            self.t = build_app(
                database_url, config={**CONFIG, "SEAT_BILLING_STRIPE_API_BASE": stripe.url},
                products=[*products(), Product(id="studio", name="Studio", plans=[STUDIO])],
                seat_type=lambda M: M.role)
            self.ctx = self.t.app.app_context()
            self.ctx.push()
            self.orgs = [self.t.add_organization(f"org{i}").id for i in range(2)]
            self.subs: dict[Any, str] = {}
            self.serial = 0
            for n, org in enumerate(self.orgs):
                self._add(org, "editor", 1 + n)
                self._add(org, "viewer", n)
                items = [{"price": STUDIO_BASE, "quantity": 1},
                         {"price": EDITOR, "quantity": 1 + n}]
                if n:
                    items.append({"price": VIEWER, "quantity": n})
                sub = stripe.create_subscription(
                    items=items, metadata={"organization_id": str(org), "plan": STUDIO.name})
                self.t.billing.link_subscription(org, sub["id"])
                self.subs[org] = str(sub["id"])
            totals["examples"] += 1

        def _add(self, org: Any, role: str, count: int) -> None:
            M = self.t.Membership
            for _ in range(count):
                self.serial += 1
                self.t.db.session.add(M(organization_id=org, role=role,
                                        email=f"{role}{self.serial}@example.com"))
            self.t.db.session.commit()

        def _live(self, org: Any) -> list[Any]:
            M = self.t.Membership
            return list(M.query.filter(M.organization_id == org, M.deleted_at.is_(None)).all())

        def _drain(self) -> None:
            before = len(stripe.requests.all())
            results = self.t.billing.sync_pending()
            sent = stripe.requests.all()[before:]
            totals["syncs_retrying"] += sum(r.action == "retrying" for r in results)
            for sub in self.subs.values():
                # An item's path names the item, not the subscription: match it by its items.
                names = {sub} | {i["id"] for i in stripe.subscription(sub)["items"]["data"]}
                writes = [r for r in sent if r.method == "POST"
                          and r.path.startswith(WRITE_PREFIXES)
                          and r.path.split("/")[3] in names]
                assert len(writes) <= 1, [(r.path, r.params) for r in writes]
                totals["writes"] += len(writes)

        @rule(which=st.integers(0, 1), role=st.sampled_from(ROLES), count=st.integers(1, 3))
        def join(self, which: int, role: str, count: int) -> None:
            self._add(self.orgs[which], role, count)
            totals["join"] += 1

        @rule(which=st.integers(0, 1), data=st.data())
        def leave(self, which: int, data: st.DataObject) -> None:
            live = self._live(self.orgs[which])
            if live:
                self.t.db.session.delete(data.draw(st.sampled_from(live)))
                self.t.db.session.commit()
                totals["leave"] += 1

        @rule(which=st.integers(0, 1), role=st.sampled_from(ROLES), data=st.data())
        def change_type(self, which: int, role: str, data: st.DataObject) -> None:
            live = [m for m in self._live(self.orgs[which]) if m.role != role]
            if live:
                data.draw(st.sampled_from(live)).role = role
                self.t.db.session.commit()
                totals["change_type"] += 1

        @rule(kind=st.sampled_from(FAULTS))
        def fault_then_drain(self, kind: str) -> None:
            faults = stripe.faults
            if kind in ("500", "409"):
                faults.fail_next(1, status=int(kind), path_prefix="/v1/subscription")
            elif kind == "429":
                faults.rate_limit_next(1, retry_after=0.01, path_prefix="/v1/subscription")
            else:
                faults.drop_next(1, apply=kind == "drop_applied", path_prefix="/v1/subscription")
            self._drain()
            totals[f"fault_{kind}"] += 1

        @rule()
        def drain_once(self) -> None:
            self._drain()
            totals["drains"] += 1

        @rule()
        def settle(self) -> None:
            stripe.faults.clear()
            deadline = time.monotonic() + 10
            while outbox_rows(self.t):
                assert time.monotonic() < deadline, outbox_rows(self.t)
                self._drain()
                time.sleep(0.02)
            for org, sub in self.subs.items():
                wanted = self.t.billing.billable_seats_by_type(org)
                held = _quantities(stripe, sub)
                for seat_type in ("editor", "viewer"):
                    if seat_type in held or wanted.get(seat_type, 0):
                        assert held.get(seat_type) == wanted.get(seat_type, 0), (held, wanted)
                    totals["final_mismatches"] += int(
                        held.get(seat_type, 0) != wanted.get(seat_type, 0))
            totals["settles"] += 1

        @invariant()
        def one_key_one_write(self) -> None:
            assert _key_reuse(stripe) == {}
            by_key: dict[str, set[Any]] = defaultdict(set)
            for row in ledger_rows(self.t):
                if row["idempotency_key"]:
                    by_key[row["idempotency_key"]].add(row["seat_type"])
            # One write's rows name each type at most once (one row per type per write).
            for key, types in by_key.items():
                rows = [r for r in ledger_rows(self.t) if r["idempotency_key"] == key]
                assert len(rows) == len(types), rows

        def teardown(self) -> None:
            try:
                self.settle()
            finally:
                totals["provider_requests"] += len(stripe.requests.all())
                stripe.requests.clear()
                self.t.db.session.remove()
                self.t.db.drop_all()
                self.t.db.engine.dispose()
                self.ctx.pop()

    run_state_machine_as_test(TypesMachine, settings=settings(
        max_examples=15, stateful_step_count=25, deadline=None, derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    write_summary("seat_types_model", "stripe",
                  {"database": database_kind(database_url), **dict(totals)})
    assert totals["change_type"] > 0 and totals["settles"] > 0
    assert totals["final_mismatches"] == 0
