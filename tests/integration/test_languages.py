"""The portal and the cashier screen in Simplified Chinese and German, on SQLite and PostgreSQL:
the words, the numbers, the dates, and the staff member's own language setting."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.adapters.db import Database
from gateway.adapters.models import StaffUser
from gateway.entrypoints.staff_session import format_local_time, format_money
from tests.integration.test_cashier_pages import at_till
from tests.integration.test_portal_pages import create, log_in, staff, till_of
from tests.staff_helpers import csrf_token


def speaking(client: FlaskClient, accept_language: str) -> FlaskClient:
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = accept_language
    return client


@pytest.fixture
def client(app: Any) -> FlaskClient:
    return app.test_client()


def portal_page(client: FlaskClient, demo: Any, db: Database) -> str:
    create(db, till_of(db), "1234.56")
    assert log_in(client, *staff(demo, "manager")).status_code == 303
    return client.get("/portal/payments").get_data(as_text=True)


def dashboard(client: FlaskClient) -> str:
    """The portal's first page, after portal_page signed in."""
    return client.get("/portal/").get_data(as_text=True)


def test_the_portal_in_german(client: FlaskClient, demo: Any, db: Database) -> None:
    page = portal_page(speaking(client, "de-DE,de;q=0.9,en;q=0.5"), demo, db)
    assert '<html lang="de">' in page
    assert ">Zahlungen</a>" in page and ">Geräte</a>" in page and "Abmelden" in page
    assert "1.234,56\xa0€" in page  # German number format, beside German words
    assert ">Ausstehend</span>" in page  # the status by its name, not the code "pending"
    assert 'placeholder="JJJJ-MM-TT"' in page  # the date filter says which format it takes
    assert "Payments" not in page and "Pending" not in page
    first = dashboard(client)
    assert "Umsatz pro Tag" in first and "Alle Zahlungen" in first
    assert "Turnover" not in first and "Payments" not in first


def test_the_portal_in_simplified_chinese(client: FlaskClient, demo: Any, db: Database) -> None:
    page = portal_page(speaking(client, "zh-CN,zh;q=0.9"), demo, db)
    assert '<html lang="zh-CN">' in page
    assert ">付款</a>" in page and ">设备</a>" in page and "退出登录" in page
    assert "€1,234.56" in page and ">待处理</span>" in page
    assert 'placeholder="年-月-日"' in page
    first = dashboard(client)
    assert "每日营业额" in first and "全部付款" in first and "Turnover" not in first


def test_a_browser_asking_for_plain_chinese_gets_simplified_and_traditional_gets_english(
    client: FlaskClient,
) -> None:
    assert "商户门户" in speaking(client, "zh").get("/portal/login").get_data(as_text=True)
    page = speaking(client, "zh-TW").get("/portal/login").get_data(as_text=True)
    assert "Merchant portal" in page and '<html lang="en">' in page


def test_the_cashier_screen_in_german(client: FlaskClient, demo: Any) -> None:
    speaking(client, "de")
    at_till(client, demo)
    page = client.get("/cashier/").get_data(as_text=True)
    assert "Zu kassierender Betrag" in page and "QR-Code anzeigen" in page
    assert 'data-decimal=","' in page and 'data-group="."' in page  # the keypad's separator
    texts = re.search(r'<script type="application/json" id="kassa-texts">(.*?)</script>', page)
    assert texts, page
    said = json.loads(texts.group(1))  # the JavaScript's words, in the page's language
    assert said["check_lines"] == "Zeilen prüfen" and said["paid"] == "Bezahlt"


def test_the_cashier_screen_in_simplified_chinese(client: FlaskClient, demo: Any) -> None:
    speaking(client, "zh-CN")
    at_till(client, demo)
    page = client.get("/cashier/").get_data(as_text=True)
    assert "收款金额" in page and "显示二维码" in page and 'data-decimal="."' in page


def test_money_and_dates_follow_the_request_s_language(app: Flask) -> None:
    moment = datetime(2026, 12, 6, 18, 30, tzinfo=UTC)
    with app.test_request_context(headers={"Accept-Language": "de"}):
        assert format_money(123456, "EUR") == "1.234,56\xa0€"
        # The merchant's locale once passed by a template does not override the page's.
        assert format_money(123456, "EUR", "en") == "1.234,56\xa0€"
        assert format_local_time(moment, "Europe/Berlin") == "06.12.2026, 19:30:00"
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert format_money(123456, "CNY") == "¥1,234.56"
        assert format_local_time(moment, "Asia/Shanghai") == "2026年12月7日 02:30:00"
    with app.test_request_context(headers={"Accept-Language": "en-US"}):
        assert format_money(123456, "CNY") == "CN¥1,234.56"


def test_a_staff_member_chooses_their_language_on_their_account_page(
    client: FlaskClient, demo: Any, db: Database
) -> None:
    speaking(client, "en-US")
    assert log_in(client, *staff(demo, "manager")).status_code == 303
    account = client.get("/portal/password").get_data(as_text=True)
    assert 'id="language-form"' in account and "简体中文" in account and "Deutsch" in account
    token = csrf_token(client, "/portal/password")
    response = client.post("/portal/language", data={"language": "zh_CN", "csrf_token": token})
    assert response.status_code == 303
    page = client.get("/portal/").get_data(as_text=True)  # the browser still asks for English
    assert '<html lang="zh-CN">' in page and ">付款</a>" in page
    client.post("/portal/language", data={"language": "", "csrf_token": token})
    assert ">Payments</a>" in client.get("/portal/").get_data(as_text=True)
    refused = client.post("/portal/language", data={"language": "fr", "csrf_token": token})
    assert refused.status_code == 422
    with db.unit_of_work() as uow:
        manager = uow.session.query(StaffUser).filter_by(username=staff(demo, "manager")[0]).one()
        assert manager.language is None


def test_an_admin_sets_a_cashier_s_language(client: FlaskClient, demo: Any, app: Any) -> None:
    manager = speaking(client, "en-US")
    assert log_in(manager, *staff(demo, "manager")).status_code == 303
    page = manager.get("/portal/staff").get_data(as_text=True)
    cashier_name = staff(demo, "cashier")[0]
    row = re.search(
        rf'<tr data-username="{cashier_name}">.*?action="(/portal/staff/\d+/language)"', page, re.S
    )
    assert row, page
    token = csrf_token(manager, "/portal/staff")
    done = manager.post(row.group(1), data={"language": "de", "csrf_token": token})
    assert done.status_code == 303
    cashier = speaking(app.test_client(), "en-US")
    at_till(cashier, demo)
    assert "Zu kassierender Betrag" in cashier.get("/cashier/").get_data(as_text=True)


def test_the_sign_in_page_offers_each_language(client: FlaskClient) -> None:
    page = speaking(client, "en-US").get("/cashier/login").get_data(as_text=True)
    assert 'href="?lang=de"' in page and 'href="?lang=zh_CN"' in page
    german = client.get("/cashier/login?lang=de").get_data(as_text=True)
    assert "Anmeldung für Kassierer" in german
    kept = client.get("/portal/login").get_data(as_text=True)  # the choice stays
    assert "Händlerportal" in kept and '<html lang="de">' in kept
