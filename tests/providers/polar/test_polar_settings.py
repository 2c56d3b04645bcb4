"""``SEAT_BILLING_POLAR_SERVER_URL``: a stand-in URL, ``"sandbox"``, or unset for production."""

from __future__ import annotations

import pytest

from flask_seat_billing.providers.polar.client import make_client


@pytest.mark.parametrize(("server_url", "host"), [
    ("sandbox", "sandbox-api.polar.sh"),
    (None, "api.polar.sh"),
    ("http://127.0.0.1:9/", "127.0.0.1"),
])
def test_server_url_picks_the_environment(server_url: str | None, host: str) -> None:
    client = make_client("polar_oat_x", server_url, 1.0)
    assert client._client._client.base_url.host == host
