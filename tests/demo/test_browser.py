"""The demo in a real browser: headless Chromium over HTTP, Stripe's hosted page from the stand-in.

Needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``); nothing is ever downloaded. Without them the test skips, or fails when
``SEAT_BILLING_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.demo.conftest import DemoFactory, org_id, stand_in

CHROMIUM = os.environ.get("SEAT_BILLING_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SEAT_BILLING_CHROMEDRIVER", "/usr/bin/chromedriver")
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,1400",
)


def require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if not missing:
        return
    message = f"{', '.join(missing)} not found: apt-get install chromium chromium-driver"
    if os.environ.get("SEAT_BILLING_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def served(make_demo: DemoFactory) -> Iterator[tuple[Flask, str]]:
    """The demo on 127.0.0.1 (werkzeug in a thread); the stand-in posts webhooks to it."""
    app = make_demo()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    require_browser()
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tmp_path / "chromium-profile"
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """A few verbs over the driver, each waiting for what it needs."""

    def __init__(self, driver: Any, base: str) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.base = base
        self.wait = WebDriverWait(driver, 15)

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        return self.wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))

    def click(self, css: str) -> None:
        from selenium.common.exceptions import WebDriverException

        old = self.driver.find_element("css selector", "html")
        self.find(css).click()

        def page_replaced(driver: Any) -> bool:
            # While the old document is torn down Chromium may answer "node does not belong to
            # the document" instead of "stale element": both mean the click navigated.
            try:
                old.is_enabled()
            except WebDriverException:
                return True
            return False

        self.wait.until(page_replaced)

    def text(self, css: str) -> str:
        return str(self.find(css).text).strip()

    def wait_text(self, css: str, expected: str) -> None:
        self.wait.until(lambda _: expected in self.text(css), f"{css} never showed {expected!r}")

    def flashes(self) -> list[str]:
        return [e.text.strip() for e in self.driver.find_elements("css selector", ".flash")]

    def sign_in(self, who: str) -> None:
        self.open("/signin")
        self.click(f"#signin-{who}")

    def sign_out(self) -> None:
        self.click("#signout")

    def invite(self, email: str) -> list[str]:
        self.find("#invite-email").send_keys(email)
        self.click("#invite")
        return self.flashes()


def test_subscribe_invite_accept_remove_and_hit_the_cap(
    served: tuple[Flask, str], browser: Any, tmp_path: Path
) -> None:
    app, base = served
    globex = org_id(app, "Globex")
    page = Page(browser, base)

    page.sign_in("olivia")
    assert "Olivia Owner" in page.text("#signed-in-as")
    page.open(f"/orgs/{globex}")
    assert page.text("#subscription-status") == "none"

    page.click("#subscribe")  # the stand-in's hosted checkout
    assert "/checkout/cs_" in browser.current_url
    page.click("#pay")  # pays, then Stripe-style redirect to the success URL
    assert "/billing/done" in browser.current_url
    assert "active" in page.text("#checkout-result")
    page.click("#back-to-dashboard")
    assert page.text("#subscription-status") == "active"
    assert page.text("#seats-billed") == "1"

    assert page.invite("ivy@example.com") == ["Invited ivy@example.com."]
    assert page.text("#preview-amount") == "$10.00"
    page.sign_out()
    page.sign_in("ivy")
    page.click("button.accept")
    assert page.flashes() == ["You joined Globex."]
    page.wait_text("#seats-billed", "2")
    first = browser.find_elements("css selector", "#ledger tr")[1].text
    assert "1 → 2" in first and "$10.00" in first

    page.sign_out()
    page.sign_in("olivia")
    page.open(f"/orgs/{globex}")
    page.click("#remove-ivy")
    assert page.flashes() == ["Removed ivy@example.com from Globex."]
    assert page.text("#seats-billed") == "1"
    latest = browser.find_elements("css selector", "#ledger tr")[1].text
    assert "2 → 1" in latest and "-$10.00" in latest

    assert page.invite("ivy@example.com") == ["Invited ivy@example.com."]
    assert page.invite("noah@example.com") == ["Invited noah@example.com."]
    (refused,) = page.invite("ruth@example.com")
    assert refused.startswith("All 3 seats of this organization's plan are taken")

    stripe = stand_in(app)  # the stand-in's signed webhooks reached the demo and were accepted
    assert stripe.webhooks.wait_idle(10)
    deliveries = stripe.webhooks.deliveries()
    assert deliveries and all(d.ok for d in deliveries), deliveries

    OUTPUT.mkdir(exist_ok=True)
    for target in (tmp_path / "dashboard.png", OUTPUT / "demo-dashboard.png"):
        assert browser.save_screenshot(str(target))
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000


def test_studio_plan_promotion_moves_a_viewer_seat_to_an_editor_seat(
    served: tuple[Flask, str], browser: Any
) -> None:
    app, base = served
    acme = org_id(app, "Acme")  # Olivia (owner) and Adam (admin) edit; Mia (member) views
    page = Page(browser, base)

    page.sign_in("olivia")
    page.open(f"/orgs/{acme}")
    page.click("#subscribe-studio")
    assert "/checkout/cs_" in browser.current_url
    page.click("#pay")
    page.click("#back-to-dashboard")
    assert page.text("#subscription-status") == "active"
    assert (page.text("#seats-editor"), page.text("#seats-viewer")) == ("2", "1")

    page.click("#promote-mia")
    assert page.flashes() == ["mia@example.com is now admin."]
    assert (page.text("#seats-editor"), page.text("#seats-viewer")) == ("3", "0")
    assert page.text("#seats-billed") == "3"  # one seat moved between types, none added
