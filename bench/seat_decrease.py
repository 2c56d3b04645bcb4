"""Decreases avoided by ``SEAT_BILLING_SEAT_DECREASE = "at_period_end"`` (issue 17).

The workload of bench/naive_vs_engine.py without its faults: 1,000 membership changes (random
joins and leaves, 45% leaves, one per transaction, seed 7) across 50 organizations of 3 members
each, in inline mode, spread over one billing period of the Stripe stand-in (its clock moves
forward between changes; the app reads the same clock). Then the clock reaches the last hour
of the period, the outbox is drained, and the period renews.

For "immediately" and for "at_period_end" it prints: provider requests and seat writes per
1,000 changes, quantity decreases written, prorated credits (count and total), and whether
every organization's renewal invoice bills its billable count.

    python -m bench.seat_decrease [--db sqlite|postgresql] [--changes 1000] [--orgs 50]
"""

from __future__ import annotations

import argparse
import logging
import random
from datetime import datetime, timedelta, timezone
from typing import Any

from bench.common import SEAT_PRICE, build_app, database_url, stand_in, teardown


def _period_end(stripe: Any, subs: list[str]) -> datetime:
    ends = [int(stripe.subscription(s)["items"]["data"][0]["current_period_end"]) for s in subs]
    return datetime.fromtimestamp(min(ends), timezone.utc).replace(tzinfo=None)


def run(kind: str, rule: str, changes: int, orgs: int) -> dict[str, Any]:
    with stand_in() as stripe:
        t = build_app(database_url(kind), clock=stripe.clock, config={
            "SEAT_BILLING_STRIPE_API_BASE": stripe.url, "SEAT_BILLING_SEAT_DECREASE": rule})
        try:
            rng = random.Random(7)
            subs: dict[Any, str] = {}
            members: dict[Any, list[int]] = {}
            with t.app.app_context():
                for n in range(orgs):
                    org = t.add_organization(f"org{n}")
                    members[org.id] = [m.id for m in t.add_members(org.id, 3)]
                    sub = stripe.create_subscription(
                        items=[{"price": "price_base_m", "quantity": 1},
                               {"price": SEAT_PRICE, "quantity": 3}],
                        metadata={"organization_id": str(org.id), "plan": "pro-monthly"})
                    t.billing.link_subscription(org.id, sub["id"])
                    subs[org.id] = sub["id"]
                end = _period_end(stripe, list(subs.values()))
                step = (end - timedelta(hours=2) - stripe.clock()) / changes
                before = len(stripe.requests)
                for i in range(changes):
                    org_id = rng.choice(list(subs))
                    if members[org_id] and rng.random() < 0.45:
                        t.db.session.delete(t.db.session.get(t.Membership, members[org_id].pop()))
                    else:
                        member = t.Membership(organization_id=org_id, email=f"c{i}@bench.io")
                        t.db.session.add(member)
                        t.db.session.flush()
                        members[org_id].append(member.id)
                    t.db.session.commit()
                    stripe.advance_time(step.total_seconds())
                stripe.advance_time((end - timedelta(minutes=30) - stripe.clock()).total_seconds())
                t.billing.sync_pending()  # the decreases that waited for the period's end
                billable = {org: t.billing.billable_seats(org) for org in subs}
                requests = len(stripe.requests) - before
                stripe.advance_time((end + timedelta(minutes=1) - stripe.clock()).total_seconds())
                t.db.session.remove()
            writes = [r for r in stripe.writes() if r.path.startswith("/v1/subscription_items/")]
            ledger = t.billing
            with t.app.app_context():
                rows = [c for org in subs for c in ledger.seat_changes(org, limit=10_000)]
            decreases = sum(1 for c in rows if c.from_seats is not None
                            and c.to_seats < c.from_seats)
            credits = [i["amount"] for s in subs.values() for i in stripe.invoice_items(s)
                       if i["amount"] < 0]
            wrong = 0
            for org, sub in subs.items():
                invoice = [i for i in stripe.invoices(sub)
                           if i["billing_reason"] == "subscription_cycle"][-1]
                [line] = [ln for ln in invoice["lines"]["data"]
                          if ln["pricing"]["price_details"]["price"] == SEAT_PRICE
                          and not ln["parent"]["subscription_item_details"]["proration"]]
                wrong += int(line["quantity"]) != billable[org]
            return {"requests": requests, "writes": len(writes), "decreases": decreases,
                    "credits": len(credits), "credited": -sum(credits), "wrong": wrong}
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
    print(f"[{args.db}] {args.changes} changes across {args.orgs} orgs over one period")
    results = {rule: run(args.db, rule, args.changes, args.orgs)
               for rule in ("immediately", "at_period_end")}
    for rule, r in results.items():
        print(f"  {rule:14s}: {r['requests'] * per_k:.0f} provider requests and "
              f"{r['writes'] * per_k:.0f} seat writes per 1,000 changes, "
              f"{r['decreases']} decreases written, {r['credits']} prorated credits "
              f"({r['credited'] / 100:.2f} USD), renewal invoices wrong: "
              f"{r['wrong']}/{args.orgs}")
    avoided = results["immediately"]["decreases"] - results["at_period_end"]["decreases"]
    print(f"  decreases avoided by at_period_end: {avoided} "
          f"({avoided / max(1, results['immediately']['decreases']):.0%})")


if __name__ == "__main__":
    main()
