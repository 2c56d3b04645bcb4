"""The demo under hostile requests: sign-in's ``next`` and the first request's Host header."""

from __future__ import annotations

import socket
import threading

import pytest
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from tests.demo.conftest import DemoFactory, stand_in

OLIVIA = "olivia@example.com"


@pytest.mark.parametrize(
    "target",
    ["/\t/evil.example", "/\n/evil.example", "/\\evil.example", "//evil.example",
     "https://evil.example/", "/\r\n/evil.example", " //evil.example"],
)
def test_sign_in_never_redirects_off_site(client: FlaskClient, target: str) -> None:
    response = client.post("/signin", data={"email": OLIVIA, "next": target})

    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_sign_in_follows_a_local_next(client: FlaskClient) -> None:
    response = client.post("/signin", data={"email": OLIVIA, "next": "/orgs/1"})

    assert response.headers["Location"] == "/orgs/1"


def test_first_request_host_header_does_not_choose_the_webhook_target(
    make_demo: DemoFactory,
) -> None:
    app = make_demo()  # offline, webhooks delivered by the stand-in
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as sock:
            sock.sendall(b"GET /signin HTTP/1.1\r\nHost: evil.example:80\r\n"
                         b"Connection: close\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        [endpoint] = stand_in(app).webhooks.endpoints()
    finally:
        server.shutdown()
        thread.join(5)

    assert endpoint.url == f"http://127.0.0.1:{server.server_port}/billing/webhooks/stripe"
