"""The input guard over real HTTP, on SQLite and PostgreSQL: each hostile input the issue found
(a 1000-deep JSON, a NUL anywhere, numbers and dates out of range, a forged log line) is a 4xx
that names what was wrong, never a 500."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
import requests

from tests.integration.test_bank_callbacks import SECRET, build_app, signed
from tests.staff_helpers import KNOWN_TOTP, totp_code

DEEP = "[" * 1000 + "]" * 1000


def _till(demo: dict[str, Any], **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {demo['tills'][0]['api_key']}", **extra}


def _signed_in(server: Any, demo: dict[str, Any], role: str) -> requests.Session:
    user = next(s for s in demo["staff"] if s["role"] == role)
    session = requests.Session()
    page = session.get(f"{server.url}/portal/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, page
    answer = session.post(
        f"{server.url}/portal/login",
        data={"username": user["username"], "password": user["password"], "csrf_token": token[1]},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303, answer.text
    if user["username"] in KNOWN_TOTP:  # a manager passes the second factor, as a person does
        page = session.get(f"{server.url}/portal/mfa", timeout=10).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, page
        for ahead in (0, 1):  # a code already used in this 30-second step is refused
            code = totp_code(KNOWN_TOTP[user["username"]], ahead)
            answer = session.post(
                f"{server.url}/portal/mfa",
                data={"code": code, "csrf_token": token[1]},
                allow_redirects=False,
                timeout=10,
            )
            if answer.status_code == 303:
                break
        assert answer.status_code == 303, answer.text
    session.headers["X-CSRFToken"] = token[1]
    return session


def _problem(response: requests.Response, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    "path", ["/api/v1/payments", "/api/v1/sales", "/api/v1/payments/x/refunds"]
)
def test_a_1000_deep_json_body_is_a_problem_not_a_crash(
    live_server: Any, demo: Any, path: str
) -> None:
    response = requests.post(
        f"{live_server.url}{path}",
        data=DEEP,
        headers=_till(demo, **{"Content-Type": "application/json", "Idempotency-Key": "k1"}),
        timeout=10,
    )
    assert "nested deeper" in _problem(response)["detail"]


def test_a_1000_deep_signed_callback_is_refused_and_not_stored(db: Any, demo: Any) -> None:
    from sqlalchemy import func, select

    from gateway.adapters.models import InboundEvent
    from tests.conftest import LiveServer

    with LiveServer(build_app(db)) as server:
        raw, headers = signed("evt_deep", DEEP.encode())
        response = requests.post(f"{server.url}/bank/callbacks", data=raw, headers=headers)
        assert "nested deeper" in _problem(response)["detail"]
        raw, headers = signed("evt_nul", {"type": "payment.succeeded\u0000", "data": {}})
        response = requests.post(f"{server.url}/bank/callbacks", data=raw, headers=headers)
        assert "body.type" in _problem(response)["detail"]
    assert SECRET
    with db.unit_of_work() as uow:
        assert uow.session.scalar(select(func.count()).select_from(InboundEvent)) == 0


def test_a_nul_in_an_api_path_query_header_or_json_string_names_the_field(
    live_server: Any, demo: Any
) -> None:
    url = live_server.url
    answer = requests.get(f"{url}/api/v1/payments/%00", headers=_till(demo), timeout=10)
    assert "path parameter 'payment_id'" in _problem(answer)["detail"]
    answer = requests.get(f"{url}/api/v1/payments/x?a=%01", headers=_till(demo), timeout=10)
    assert "query parameter 'a'" in _problem(answer)["detail"]
    answer = requests.post(
        f"{url}/api/v1/payments/x/refunds",
        json={"reason": "broken\u0000"},
        headers=_till(demo, **{"Idempotency-Key": "r1"}),
        timeout=10,
    )
    assert "body.reason" in _problem(answer)["detail"]
    answer = requests.post(
        f"{url}/api/v1/payments",
        json={"amount": "1.00", "currency": "EUR", "method": "qr"},
        headers=_till(demo, **{"Idempotency-Key": "a\x7fb"}),
        timeout=10,
    )
    assert "Idempotency-Key" in _problem(answer)["detail"]
    answer = requests.post(
        f"{url}/api/v1/payments",
        data='{"amount": "1.00", "currency": "EUR", "method": "qr", "expires_in": 1e999999}',
        headers=_till(demo, **{"Content-Type": "application/json"}),
        timeout=10,
    )
    assert "body.expires_in" in _problem(answer)["detail"]


def test_a_nul_in_a_form_is_a_page_that_names_the_field(live_server: Any, demo: Any) -> None:
    url = live_server.url
    page = requests.get(f"{url}/cashier/login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    answer = requests.post(
        f"{url}/cashier/login",
        data={"username": "cashier\x00", "password": "x", "csrf_token": token[1]},
        cookies=page.cookies,
        timeout=10,
    )
    assert answer.status_code == 422
    assert "text/html" in answer.headers["Content-Type"]
    assert "form field &#39;username&#39;" in answer.text or "form field 'username'" in answer.text
    manager = _signed_in(live_server, demo, "manager")
    for path in ("/portal/payments/%00", "/portal/promotions/%00", "/portal/payments?status=%00"):
        answer = manager.get(f"{url}{path}", timeout=10)
        assert answer.status_code == 422, (path, answer.status_code)
        assert "U+0000" in answer.text
    cashier = _signed_in(live_server, demo, "cashier")
    answer = cashier.get(f"{url}/cashier/payments/%00", timeout=10)
    assert answer.status_code == 422 and "U+0000" in answer.text


@pytest.mark.parametrize(
    "query",
    [
        "?page=99999999999999999999",
        "?from=0001-01-01&to=9999-12-31",
        "?from=9999-12-31",
    ],
)
def test_portal_numbers_and_dates_out_of_range_are_a_message(
    live_server: Any, demo: Any, query: str
) -> None:
    manager = _signed_in(live_server, demo, "manager")
    for path in ("/portal/payments", "/portal/settlement/exceptions"):
        answer = manager.get(f"{live_server.url}{path}{query}", timeout=10)
        assert answer.status_code == 422, (path, answer.text[:300])
        assert "outside" in answer.text or "from 1 to" in answer.text


@pytest.mark.parametrize("month", ["9999-12", "0001-01", "2024-13", "x"])
def test_settlement_month_out_of_range_shows_this_month(
    live_server: Any, demo: Any, month: str
) -> None:
    manager = _signed_in(live_server, demo, "manager")
    answer = manager.get(f"{live_server.url}/portal/settlement?month={month}", timeout=10)
    assert answer.status_code == 422 and "showing this month" in answer.text


def test_a_newline_in_a_path_never_forges_a_log_line(
    live_server: Any, demo: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        answer = requests.get(
            f"{live_server.url}/api/v1/payments/x%0AFORGED%20line", headers=_till(demo)
        )
        logging.getLogger("gateway.test").warning("path %s", "/a\nFORGED line")
    assert answer.status_code == 422
    for record in caplog.records:
        assert "\nFORGED" not in record.getMessage()


def test_a_body_over_one_mebibyte_is_a_413_problem(live_server: Any, demo: Any) -> None:
    body = '{"amount": "1.00", "currency": "EUR", "method": "qr", "reference": "%s"}' % (
        "x" * 2_000_000
    )
    answer = requests.post(
        f"{live_server.url}/api/v1/payments",
        data=body,
        headers=_till(demo, **{"Content-Type": "application/json"}),
        timeout=30,
    )
    assert _problem(answer, 413)["status"] == 413
