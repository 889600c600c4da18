"""Browser fixtures: Playwright's sync API driving Debian's chromium (no browser download).

Without chromium the browser tests are skipped locally but fail under CI=true, so a CI image
that lost its browser cannot pass silently. Set KASSA_SCREENSHOT_DIR to keep screenshots.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("KASSA_CHROMIUM", "/usr/bin/chromium")
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

# How long a page may take to show what a test waits for: a ceiling for a loaded machine (each
# wait returns as soon as the page is there), not a speed the product must meet.
CEILING_MS = 90_000

INTENDED_STATUS = re.compile(
    r"^Failed to load resource: the server responded with a status of 4(01|03|22)"
)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _unavailable(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    from playwright.sync_api import expect

    expect.set_options(timeout=CEILING_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


OPEN_CONTEXT = pytest.StashKey[Any]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Close the test's browser before its fixtures are torn down, so before its server stops.

    The page fixture is set up before ``live_server`` and so torn down after it: a page still
    open then would send its next poll, or its event stream's reconnect, to a closed port and
    log ERR_CONNECTION_REFUSED, failing a test that passed (now and then, as timing allows).
    """
    context = item.stash.get(OPEN_CONTEXT, None)
    if context is not None:
        context.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context at 1024×768 (a till's screen) that fails on console errors.

    Console errors include Content-Security-Policy violations, so inline scripts, styles or
    event handlers that a strict CSP blocks make the test fail.
    """
    context = browser.new_context(viewport={"width": 1024, "height": 768}, locale="en-US")
    context.set_default_timeout(CEILING_MS)
    request.node.stash[OPEN_CONTEXT] = context
    page = context.new_page()
    errors: list[str] = []

    def on_console(msg: Any) -> None:
        # A page answered on purpose with 401/403/422 (wrong password, 403 page, form errors)
        # is logged as a failed load; anything else, such as a missing file, is an error.
        if msg.type == "error" and not INTENDED_STATUS.search(msg.text):
            errors.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"browser console errors: {errors}"


@pytest.fixture
def screenshot(page: Any) -> Any:
    """``screenshot(name)`` saves the page under $KASSA_SCREENSHOT_DIR, if set."""
    folder = os.environ.get("KASSA_SCREENSHOT_DIR")

    def take(name: str) -> None:
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)

    return take
