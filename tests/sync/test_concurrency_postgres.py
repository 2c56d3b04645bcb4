"""Concurrent membership changes on PostgreSQL end with the right quantity."""

from __future__ import annotations

import random
import threading
from typing import Any

from tests.apps import PRO_MONTHLY
from tests.conftest import AppFactory, subscribe
from tests.helpers import outbox_rows


def test_eight_threads_of_random_joins_and_leaves(
    make_app: AppFactory, stripe: Any, postgres_url: str
) -> None:
    t = make_app({"SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 20, "max_overflow": 10}},
                 database_url=postgres_url)
    with t.app.app_context():
        org = t.add_organization()
        t.add_members(org.id, 1)
        sub = subscribe(t, stripe, org.id)
        org_id = org.id
    errors: list[BaseException] = []

    def churn(seed: int) -> None:
        rng = random.Random(seed)
        mine: list[int] = []
        try:
            with t.app.app_context():
                for i in range(50):
                    if mine and rng.random() < 0.45:
                        member = t.db.session.get(t.Membership, mine.pop(rng.randrange(len(mine))))
                        t.db.session.delete(member)
                    else:
                        member = t.Membership(organization_id=org_id, email=f"t{seed}-{i}@x.io")
                        t.db.session.add(member)
                        t.db.session.flush()
                        mine.append(member.id)
                    t.db.session.commit()
                t.db.session.remove()
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    with t.app.app_context():
        t.billing.sync_pending()
        billable = t.billing.billable_seats(org_id)
        assert stripe.seats(sub, PRO_MONTHLY) == billable
        assert t.billing.subscription_for(org_id).seats == billable
        assert outbox_rows(t) == []
