"""``python3 tasks.py demo``, as the README writes it, in a clean copy of the repository.

The copy holds the tracked files only (no instance folder, no database); its ``.venv`` is this
test run's environment, linked in with its install stamp, so the command's own set-up step finds
the project installed instead of reinstalling it (CI's fresh clone exercises that step).
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import os
import shutil
import signal
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


def clean_copy(destination: Path) -> Path:
    """The repository's tracked files, copied; ``.venv`` linked to the running environment."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    for name in listed.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)
    venv = Path(sys.prefix)
    stamp = venv / ".installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists():  # our environment is installed: say so, as tasks.py would
        stamp.write_text(digest)
    assert stamp.read_text() == digest, "the running .venv was installed from another pyproject"
    (destination / ".venv").symlink_to(venv, target_is_directory=True)
    return destination


def test_demo_command_migrates_seeds_and_serves(tmp_path: Path) -> None:
    repo = clean_copy(tmp_path / "repo")
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite'}",
        "DEMO_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("SEAT_BILLING_STRIPE_SECRET_KEY", "SEAT_BILLING_STRIPE_API_BASE"):
        env.pop(name, None)
    log = (tmp_path / "demo.log").open("wb")
    # Exactly the README's command; its own session, so stopping it stops the server it starts.
    server = subprocess.Popen(["python3", "tasks.py", "demo"], cwd=repo, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/signin", server, timeout=120)
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
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
