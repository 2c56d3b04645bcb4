"""Hostile input only Stripe's webhook format can carry: validly signed events with odd content
(acknowledged once, never a retry loop) or an unusable id. Counted with the shared cases of
tests/behaviour/test_bad_input.py for docs/reliability.md."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests import web_helpers
from tests.bad_input import Watch, tally
from tests.web_helpers import WEBHOOK_SECRET, Served

_web = pytest.fixture(name="web")(web_helpers.web)
TALLY = tally("stripe")


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    TALLY.write()


def _check(kind: str, web: Served, stripe: Any, watch: Watch, status: int, expected: int,
           *, ignore: tuple[str, ...] = ()) -> None:
    rows, calls = watch.rows_written(ignore=ignore), watch.provider_calls()
    TALLY.record(kind, status, rows, calls)
    assert status == expected
    assert rows == 0
    assert calls == 0


# -- 2. validly signed, oddly shaped events: acknowledged, never a retry loop -------------------

def _signed(web: Served, stripe: Any, event: dict[str, Any]) -> Any:
    payload = json.dumps(event).encode()
    header = stripe.signature_header(payload, WEBHOOK_SECRET, int(time.time()))
    return web.post(web.webhook_url, data=payload,
                    headers={"Stripe-Signature": header, "Content-Type": "application/json"})


ODD_EVENTS: list[tuple[str, Any]] = [
    ("customer.subscription.updated", {"object": ["sub_1"]}),
    ("customer.subscription.updated", {"object": "sub_1"}),
    ("customer.subscription.updated", {"object": {"id": 123}}),
    ("customer.subscription.updated", {"object": {}}),
    ("customer.subscription.updated", {"object": {"id": "../customers/cus_1"}}),
    ("customer.subscription.updated", ["not", "an", "object"]),
    ("customer.subscription.deleted", None),
    ("invoice.paid", {"object": {"parent": ["x"]}}),
    ("invoice.paid", {"object": {"subscription": 42}}),
    ("invoice.payment_failed", {"object": {"subscription": {"id": ["sub_1"]}}}),
    ("checkout.session.completed", {"object": {"id": 5, "mode": "subscription"}}),
    ("checkout.session.completed", {"object": {"mode": ["subscription"]}}),
    # Ids of the wrong kind: no retry of the same payload can ever make them right.
    ("customer.subscription.updated", {"object": {"id": "cus_123"}}),
    ("invoice.paid", {"object": {"subscription": "in_123"}}),
    ("checkout.session.completed", {"object": {"id": "sub_123", "mode": "subscription"}}),
]


@pytest.mark.parametrize(("event_type", "data"), ODD_EVENTS)
def test_signed_event_with_odd_content_is_acknowledged_once(
    web: Served, stripe: Any, event_type: str, data: Any
) -> None:
    watch = Watch.start(web.t, stripe)
    event = {"id": "evt_odd", "type": event_type, "data": data}

    first, again = _signed(web, stripe, event), _signed(web, stripe, event)

    # "processed" where the handler itself records an event with nothing to apply.
    assert first.json["outcome"] in ("ignored", "processed")
    assert again.json["outcome"] == "duplicate"
    assert again.status == 200
    _check("signed event, odd content", web, stripe, watch, first.status, 200,
           ignore=("webhook_events",))


@pytest.mark.parametrize("event_id", [123, "", "e" * 300, ["evt_1"]])
def test_signed_event_without_a_usable_id_is_400(web: Served, stripe: Any, event_id: Any) -> None:
    watch = Watch.start(web.t, stripe)
    answer = _signed(web, stripe, {"id": event_id, "type": "invoice.paid", "data": {}})
    _check("signed event, unusable id or type", web, stripe, watch, answer.status, 400)
