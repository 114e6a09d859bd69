"""Helpers of the browser tests: Debian's Chromium (headless) driven by Playwright against a
live server on the test database. The `browser` fixture is in tests/trading/conftest.py.

The tests run in `make test`; they are skipped only when no Chromium is installed AND `CI` is
not set; in CI a missing browser is a failure."""

import os
import shutil
from pathlib import Path

import pytest

from tests.trading.roles import PASSWORD

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1440, "height": 900}
LAPTOP = {"width": 1280, "height": 800}

BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not os.environ.get("CI"),
        reason=f"Chromium not installed at {CHROMIUM} (install Debian's `chromium`; required when CI is set)",
    ),
]


def login(browser, live_server, username, viewport=DESKTOP):
    """A new browser context logged into the admin as `username`; returns (context, page) on
    the control panel."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#td-components")
    return context, page


def confirm(page, reason, *, then="#td-components"):
    """Fill the reason on a confirmation page and submit it."""
    page.wait_for_selector("#td-confirm")
    page.fill("#id_reason", reason)
    page.click("#td-confirm input[type=submit]")
    page.wait_for_selector(then)
