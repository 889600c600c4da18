"""A new manager's first sign-in in a real browser (Debian chromium): the enrolment page's QR
code, scanned from the screen, gives the secret; the code from it opens the portal; a
temporary password is then handed to a new cashier from the Staff page.

SQLite only: the pages are the same on PostgreSQL, which the integration tests cover.
"""

from __future__ import annotations

import re
from typing import Any

import pyotp
import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import expect

from gateway.adapters.db import Database
from tests.integration.test_staff_identity import new_manager

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db", ["sqlite"], indirect=True)]


def test_first_sign_in_enrols_from_the_screen(
    page: Any, live_server: Any, demo: Any, db: Database, tmp_path: Any
) -> None:
    new_manager(db, "mia", "mia-password-1")
    page.goto(f"{live_server.url}/portal/")
    page.fill("#username", "mia")
    page.fill("#password", "mia-password-1")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/portal/mfa/enrol$"))
    shot = tmp_path / "qr.png"
    page.locator("#mfa-qr").screenshot(path=str(shot))
    [found] = zxingcpp.read_barcodes(Image.open(shot))
    secret = pyotp.parse_uri(found.text).secret
    expect(page.locator("#mfa-secret")).to_have_text(secret)
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("button[type=submit]")
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    page.get_by_role("link", name=re.compile("go to the portal")).click()
    page.wait_for_url(re.compile(r".*/portal/$"))
    page.get_by_role("link", name="Staff").click()
    page.fill("#new-staff input[name=username]", "nina")
    page.click("#new-staff button[type=submit]")
    expect(page.locator("#shown-secret")).to_have_text(re.compile(r"\S{12,}"))
    expect(page.locator('tr[data-username="nina"]')).to_contain_text("must change password")
