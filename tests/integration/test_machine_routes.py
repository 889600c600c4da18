"""The machines' paths (the bank's callbacks, the tills' /api/v1) carry no session cookie: none
is read there and none is set, while the browser pages keep theirs (and their CSRF check)."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, session

from gateway.adapters.db import Database
from gateway.entrypoints import input_guard
from gateway.entrypoints.staff_session import STAFF_KEY


def _signed_in_cookie(app: Flask, staff_id: int) -> str:
    """A valid signed session cookie naming ``staff_id``, as a browser would send it."""
    with app.test_request_context("/cashier/"):
        session[STAFF_KEY] = staff_id
        interface = app.session_interface
        serializer = interface.get_signing_serializer(app)  # type: ignore[attr-defined]
        assert serializer is not None
        return str(serializer.dumps(dict(session)))


def test_a_till_api_call_sets_no_cookie_and_reads_none(
    app: Flask, db: Database, demo: dict[str, Any]
) -> None:
    client = app.test_client()
    client.set_cookie("kassa_session", _signed_in_cookie(app, 1))
    key = demo["tills"][0]["api_key"]
    answer = client.post(
        "/api/v1/payments",
        json={"amount": "1.00", "currency": "EUR", "method": "qr"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert "Set-Cookie" not in answer.headers
    assert answer.headers["X-Request-Id"]  # the request is still logged under its id
    without_key = client.post(
        "/api/v1/payments", json={"amount": "1.00", "currency": "EUR", "method": "qr"}
    )
    assert without_key.status_code == 401  # a staff cookie is no key


def test_a_browser_page_still_gets_its_session_and_csrf_check(app: Flask) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    client = app.test_client()
    page = client.get("/cashier/login")
    assert page.status_code == 200
    assert "kassa_session" in page.headers.get("Set-Cookie", "")  # the CSRF token's session
    refused = client.post("/cashier/login", data={"username": "x", "password": "y"})
    assert refused.status_code == 400  # no CSRF token


def test_the_input_guard_hands_on_only_the_body_it_parsed(app: Flask) -> None:
    body = json.dumps({"type": "payment.succeeded", "data": {"a": 1}}).encode()
    with app.test_request_context("/bank/callbacks", method="POST", data=body):
        input_guard.check_request()
        from flask import request

        assert input_guard.checked_json(request.get_data(cache=False)) == json.loads(body)
        assert input_guard.checked_json(bytes(body)) is input_guard.NOT_PARSED
