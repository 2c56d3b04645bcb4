"""Provider requests per 1,000 membership changes with two seat types against one (issue 17).

1,000 changes (seed 7) across 50 organizations of 3 members, inline mode, on the Stripe
stand-in: joins and leaves (65% / 35%), then again with 20% of them role changes (with two
types a role change is a promotion or a demotion that moves both types; with one, nothing).
Once with a plan of one seat price, once with a plan of two
(``seat_prices={"editor": ..., "viewer": ...}``, ``seat_type=lambda M: M.role``).
Target: the same number of requests, since the types move in one write.

    python -m bench.seat_types [--db sqlite|postgresql] [--changes 1000] [--orgs 50]
"""

from __future__ import annotations

import argparse
import logging
import random
from typing import Any

from bench.common import BASE_PRICE, SEAT_PRICE, build_app, database_url, stand_in, teardown
from flask_seat_billing import Plan, Product

EDITOR, VIEWER = "price_editor_m", "price_viewer_m"
TYPED = Plan(name="studio-monthly", plan_id=BASE_PRICE, interval="month", cost=49,
             seat_prices={"editor": EDITOR, "viewer": VIEWER})
SINGLE = Plan(name="pro-monthly", plan_id=BASE_PRICE, seat_price_id=SEAT_PRICE,
              interval="month", cost=19.99)


def run(kind: str, typed: bool, changes: int, orgs: int, promote: float) -> dict[str, Any]:
    with stand_in() as stripe:
        product = stripe.create_product(name="Seats")["id"]
        for price in (EDITOR, VIEWER):
            stripe.create_price(id=price, product=product, unit_amount=1000, interval="month")
        plan = TYPED if typed else SINGLE
        options: dict[str, Any] = {"seat_type": (lambda M: M.role)} if typed else {}
        t = build_app(database_url(kind), config={"SEAT_BILLING_STRIPE_API_BASE": stripe.url},
                      products=[Product(id="p", name="P", plans=[plan])], **options)
        try:
            rng = random.Random(7)
            members: dict[Any, list[int]] = {}
            subs: dict[Any, str] = {}
            with t.app.app_context():
                for n in range(orgs):
                    org = t.add_organization(f"org{n}")
                    made = [t.Membership(organization_id=org.id, email=f"m{i}@o{n}.io",
                                         role="editor" if i == 0 else "viewer")
                            for i in range(3)]
                    t.db.session.add_all(made)
                    t.db.session.commit()
                    members[org.id] = [m.id for m in made]
                    seat_items = ([{"price": EDITOR, "quantity": 1},
                                   {"price": VIEWER, "quantity": 2}] if typed
                                  else [{"price": SEAT_PRICE, "quantity": 3}])
                    sub = stripe.create_subscription(
                        items=[{"price": BASE_PRICE, "quantity": 1}, *seat_items],
                        metadata={"organization_id": str(org.id), "plan": plan.name})
                    t.billing.link_subscription(org.id, sub["id"])
                    subs[org.id] = sub["id"]
                before = len(stripe.requests)
                for i in range(changes):
                    org_id = rng.choice(list(subs))
                    roll = rng.random()
                    if members[org_id] and roll < 0.35:
                        t.db.session.delete(t.db.session.get(t.Membership, members[org_id].pop()))
                    elif members[org_id] and roll < 0.35 + promote:
                        member = t.db.session.get(t.Membership, rng.choice(members[org_id]))
                        member.role = "viewer" if member.role == "editor" else "editor"
                    else:
                        member = t.Membership(organization_id=org_id, email=f"c{i}@bench.io",
                                              role=rng.choice(["editor", "viewer"]))
                        t.db.session.add(member)
                        t.db.session.flush()
                        members[org_id].append(member.id)
                    t.db.session.commit()
                requests = len(stripe.requests) - before
                writes = sum(1 for r in stripe.writes() if r.path.startswith(
                    ("/v1/subscriptions/", "/v1/subscription_items/")))
                wrong = 0
                for org_id, sub in subs.items():
                    items = stripe.subscription(sub)["items"]["data"]
                    have = {i["price"]["id"]: int(i["quantity"]) for i in items}
                    if typed:
                        want = t.billing.billable_seats_by_type(org_id)
                        wrong += any(have.get(EDITOR if k == "editor" else VIEWER, 0) != n
                                     for k, n in want.items())
                    else:
                        wrong += have[SEAT_PRICE] != t.billing.billable_seats(org_id)
                t.db.session.remove()
            return {"requests": requests, "writes": writes, "wrong": wrong}
        finally:
            teardown(t)


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--orgs", type=int, default=50)
    args = parser.parse_args()
    per_k = 1000 / args.changes
    for promote, label in ((0.0, "joins and leaves"), (0.2, "20% role changes")):
        one = run(args.db, False, args.changes, args.orgs, promote)
        two = run(args.db, True, args.changes, args.orgs, promote)
        print(f"[{args.db}] {args.changes} changes ({label}) across {args.orgs} orgs")
        for name, r in (("one seat type", one), ("two seat types", two)):
            print(f"  {name:14s}: {r['requests'] * per_k:.0f} provider requests, "
                  f"{r['writes'] * per_k:.0f} writes per 1,000 changes; wrong at the end: "
                  f"{r['wrong']}/{args.orgs}")
        print(f"  ratio two/one: {two['requests'] / max(1, one['requests']):.2f} (requests), "
              f"{two['writes'] / max(1, one['writes']):.2f} (writes)")


if __name__ == "__main__":
    main()
