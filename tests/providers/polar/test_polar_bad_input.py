"""Hostile input only Polar's webhook format can carry (odd ``data``, an unusable ``type``): a clear
4xx, or an acknowledgement where no retry could help; nothing written, no call to Polar. Counted
with the shared cases of tests/behaviour/test_bad_input.py for docs/reliability.md."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from flask_seat_billing.testing.polar_server import signature_headers
from tests.apps import AppUnderTest
from tests.bad_input import Watch, tally
from tests.providers.polar.conftest import PolarWorld

TALLY = tally("polar")
PATH = "/billing/webhooks/polar"


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    TALLY.write()


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url + PATH, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _signed(url: str, polar: PolarWorld, event: dict[str, Any], event_id: str) -> tuple[int, Any]:
    body = json.dumps(event).encode()
    return _post(url, body, signature_headers(body, polar.secret, int(time.time()),
                                              event_id=event_id))


def _check(kind: str, t: AppUnderTest, polar: PolarWorld, watch: Watch, status: int,
           expected: int, *, ignore: tuple[str, ...] = ()) -> None:
    rows, calls = watch.rows_written(ignore=ignore), watch.provider_calls()
    TALLY.record(kind, status, rows, calls)
    assert status == expected
    assert rows == 0
    assert calls == 0


@pytest.mark.parametrize("header", ["webhook-signature", "webhook-id"])
def test_webhook_headers_that_are_not_ascii_are_403(
    t: AppUnderTest, polar: PolarWorld, served: str, header: str
) -> None:
    """As on Stripe (whose SDK raised TypeError comparing such a signature): a refusal, not a
    500. Sent as latin-1 text, the way a WSGI server hands such bytes over."""
    watch = Watch.start(t, polar.api)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time())),
               "webhook-signature": "v1," + "A" * 44}
    headers[header] = headers[header] + "\xe9" * 8
    status, body = _post(served, b'{"type": "subscription.updated", "data": {}}', headers)
    _check("webhook signature not ASCII", t, polar, watch, status, 403)
    assert body["error"] == "Invalid webhook-signature."


ODD_DATA: list[Any] = [
    ["not", "an", "object"], "sub", None, {}, {"id": 123}, {"id": "../customers/"},
    {"id": ["x"]}, {"id": "sub_not_a_uuid"}, {"id": str(uuid.uuid4()), "checkout_id": 5},
]


@pytest.mark.parametrize("data", ODD_DATA)
@pytest.mark.parametrize("event_type", ["subscription.updated", "subscription.created"])
def test_signed_event_with_odd_content_is_acknowledged_once(
    t: AppUnderTest, polar: PolarWorld, served: str, event_type: str, data: Any
) -> None:
    watch = Watch.start(t, polar.api)
    event = {"type": event_type, "data": data}

    first, again = _signed(served, polar, event, "msg_odd"), _signed(served, polar, event,
                                                                      "msg_odd")

    assert (first[1]["outcome"], again[1]["outcome"]) == ("ignored", "duplicate")
    assert again[0] == 202
    if isinstance(data, dict) and data.get("checkout_id") == 5 and event_type.endswith("updated"):
        # A well-formed subscription id Polar does not have: asked for once (404), then
        # acknowledged; counted with the not-found case, not as odd content.
        assert (first[0], watch.provider_calls()) == (202, 1)
        return
    _check("signed event, odd content", t, polar, watch, first[0], 202, ignore=("webhook_events",))


def test_event_for_a_subscription_polar_does_not_have_is_acknowledged(
    t: AppUnderTest, polar: PolarWorld, served: str
) -> None:
    """As Stripe's: a 404 can never turn into a success, so no retry loop."""
    event = {"type": "subscription.updated", "data": {"id": str(uuid.uuid4())}}
    watch = Watch.start(t, polar.api)

    status, body = _signed(served, polar, event, "msg_gone")

    assert (status, body["outcome"]) == (202, "ignored")
    assert watch.rows_written(ignore=("webhook_events",)) == 0
    assert t.billing.subscription_for(1) is None
    assert _signed(served, polar, event, "msg_gone")[1]["outcome"] == "duplicate"


@pytest.mark.parametrize("event_type", [5, "", "t" * 150, ["subscription.updated"]])
def test_signed_event_without_a_usable_type_is_400(
    t: AppUnderTest, polar: PolarWorld, served: str, event_type: Any
) -> None:
    watch = Watch.start(t, polar.api)
    status, _ = _signed(served, polar, {"type": event_type, "data": {}}, "msg_type")
    _check("signed event, unusable id or type", t, polar, watch, status, 400)
