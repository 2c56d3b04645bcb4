"""What ``python3 tasks.py demo`` runs, in a subprocess on a free port: it answers over HTTP."""

from __future__ import annotations

import http.cookiejar
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the demo exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise AssertionError(f"the demo did not answer at {url} within {timeout}s")


def test_demo_command_migrates_seeds_and_serves(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite'}",
        "DEMO_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("SEAT_BILLING_STRIPE_SECRET_KEY", "SEAT_BILLING_STRIPE_API_BASE"):
        env.pop(name, None)
    flask = [sys.executable, "-m", "flask", "--app", "demo_app"]
    for step in (["db", "upgrade", "--directory", "migrations"], ["seed-demo"]):
        done = subprocess.run([*flask, *step], cwd=ROOT, env=env, capture_output=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr.decode()
    log = (tmp_path / "demo.log").open("wb")
    server = subprocess.Popen([*flask, "run", "--port", env["DEMO_PORT"]], cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/signin", server)
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        page = opener.open(base + "/signin", timeout=10).read().decode()
        assert "olivia@example.com" in page
        form = urllib.parse.urlencode({"email": "olivia@example.com"}).encode()
        home = opener.open(base + "/signin", data=form, timeout=10).read().decode()
        assert "Globex" in home
        # The first request started the offline Stripe stand-in: the dashboard previews nothing
        # yet (no subscription) but checkout reaches the stand-in's hosted page.
        dashboard = opener.open(base + "/orgs/2", timeout=10).read().decode()
        assert 'id="subscribe"' in dashboard
        checkout = urllib.parse.urlencode({
            "plan": "team-monthly", "organization_id": "2",
            "success_url": base + "/orgs/2/billing/done", "cancel_url": base + "/orgs/2",
        }).encode()
        hosted = opener.open(base + "/billing/checkout", data=checkout, timeout=10)
        assert "/checkout/cs_" in hosted.geturl()
        assert 'id="pay"' in hosted.read().decode()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
