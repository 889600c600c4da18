"""The terminal API over real HTTP against SQLite and PostgreSQL."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest
import requests
import zxingcpp
from PIL import Image
from sqlalchemy import func, select

from gateway.adapters.db import Database
from gateway.adapters.models import Payment, PaymentEvent
from gateway.domain import emv_qr
from gateway.domain.money import Money
from tests.factories import paid_by_bank


def _headers(demo: dict[str, Any], till: int = 0, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {demo['tills'][till]['api_key']}", **extra}


def _create(
    server: Any, demo: dict[str, Any], body: dict[str, Any] | None = None, **headers: str
) -> requests.Response:
    body = body or {"amount": "12.34", "currency": "EUR", "method": "qr"}
    return requests.post(
        f"{server.url}/api/v1/payments", json=body, headers=_headers(demo, **headers), timeout=10
    )


def _count(db: Database, model: Any = Payment) -> int:
    with db.unit_of_work() as uow:
        return uow.session.scalar(select(func.count()).select_from(model)) or 0


def test_create_qr_payment_issues_a_dynamic_payload(live_server: Any, demo: Any) -> None:
    response = _create(
        live_server,
        demo,
        {
            "amount": "12.34",
            "currency": "EUR",
            "method": "qr",
            "reference": "SALE-0042",
            "expires_in": 120,
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending"
    assert (body["amount"], body["amount_minor"], body["currency"]) == ("12.34", 1234, "EUR")
    assert response.headers["Location"] == f"/api/v1/payments/{body['id']}"
    tree = emv_qr.decode(body["qr_payload"])
    assert tree["01"] == "12"  # dynamic
    assert (tree["53"], tree["54"]) == ("978", "12.34")
    assert tree["62"] == {"01": "SALE-0042", "05": body["reference"], "07": "T01"}
    assert tree["59"] == "Kassa Demo Markt"
    assert isinstance(tree["26"], dict) and tree["26"]["00"] == "IO.KASSA.SANDBOX"


def test_qr_images_decode_to_the_payload(live_server: Any, demo: Any) -> None:
    body = _create(live_server, demo).json()
    png = requests.get(live_server.url + body["qr_png_url"], headers=_headers(demo), timeout=10)
    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))
    assert [d.text for d in decoded] == [body["qr_payload"]]
    svg = requests.get(live_server.url + body["qr_svg_url"], headers=_headers(demo), timeout=10)
    assert svg.status_code == 200 and svg.headers["Content-Type"].startswith("image/svg+xml")
    assert svg.content.startswith(b"<svg") or b"<svg" in svg.content[:200]


def test_same_key_same_body_replays_first_response(live_server: Any, demo: Any, db: Any) -> None:
    first = _create(live_server, demo, **{"Idempotency-Key": "sale-1"})
    again = _create(live_server, demo, **{"Idempotency-Key": "sale-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _count(db) == 1


def test_same_key_different_body_is_rejected(live_server: Any, demo: Any, db: Any) -> None:
    _create(live_server, demo, **{"Idempotency-Key": "sale-2"})
    other = _create(
        live_server,
        demo,
        {"amount": "99.00", "currency": "EUR", "method": "qr"},
        **{"Idempotency-Key": "sale-2"},
    )
    assert other.status_code == 422
    assert other.headers["Content-Type"] == "application/problem+json"
    assert other.json()["type"] == "/problems/idempotency-key-reused"
    assert _count(db) == 1


def test_keys_are_scoped_per_till(live_server: Any, demo: Any, db: Any) -> None:
    a = _create(live_server, demo, **{"Idempotency-Key": "same"})
    b = requests.post(
        f"{live_server.url}/api/v1/payments",
        json={"amount": "12.34", "currency": "EUR", "method": "qr"},
        headers=_headers(demo, till=1, **{"Idempotency-Key": "same"}),
        timeout=10,
    )
    assert a.json()["id"] != b.json()["id"]
    assert _count(db) == 2


def test_concurrent_duplicates_create_exactly_one_payment(
    live_server: Any, demo: Any, db: Any
) -> None:
    results: list[requests.Response] = []
    barrier = threading.Barrier(10)

    def send() -> None:
        barrier.wait()
        results.append(_create(live_server, demo, **{"Idempotency-Key": "burst"}))

    threads = [threading.Thread(target=send) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 10
    ok = [r for r in results if r.status_code == 201]
    assert {r.json()["id"] for r in ok} == {ok[0].json()["id"]}
    # A loser still waiting for the winner's commit may be told to retry; never a second payment.
    assert all(r.status_code in (201, 409) for r in results)
    assert _count(db) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": 12.34, "currency": "EUR", "method": "qr"}, "never a JSON number"),
        ({"amount": "12.345", "currency": "EUR", "method": "qr"}, "EUR has 2 decimal places"),
        ({"amount": "12", "currency": "XYZ", "method": "qr"}, "unknown currency"),
        ({"amount": "0", "currency": "EUR", "method": "qr"}, "greater than zero"),
        ({"amount": "1.00", "currency": "EUR", "method": "cash"}, "method"),
        ({"amount": "1.00", "currency": "EUR"}, "method"),
        ({"amount": "1.00", "currency": "EUR", "method": "qr", "tip": "1"}, "tip"),
        ({"amount": "1.00", "currency": "EUR", "method": "qr", "expires_in": 5}, "expires_in"),
        ({"amount": "1.00", "currency": "EUR", "method": "qr", "reference": "x" * 26}, "reference"),
        ([1, 2], "(body)"),
        ("text", "(body)"),
    ],
)
def test_bad_input_is_a_problem_and_stores_nothing(
    live_server: Any, demo: Any, db: Any, body: Any, field: str
) -> None:
    response = requests.post(
        f"{live_server.url}/api/v1/payments", json=body, headers=_headers(demo), timeout=10
    )
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and problem["type"].startswith("/problems/")
    assert field in problem["detail"]
    assert _count(db) == 0


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("{", "application/json"),
        ("amount=1", "application/x-www-form-urlencoded"),
        (b"\xff\xfe", "application/json"),
        ("", "application/json"),
    ],
)
def test_malformed_bodies_never_500(
    live_server: Any, demo: Any, data: Any, content_type: str
) -> None:
    response = requests.post(
        f"{live_server.url}/api/v1/payments",
        data=data,
        headers=_headers(demo, **{"Content-Type": content_type}),
        timeout=10,
    )
    assert response.status_code == 422
    assert response.json()["type"] == "/problems/invalid-input"


@pytest.mark.parametrize("auth", [None, "Bearer nope", "Bearer kt_abc_def", "Basic Zm9vOmJhcg=="])
def test_without_a_valid_key_is_401(live_server: Any, demo: Any, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    response = requests.post(
        f"{live_server.url}/api/v1/payments",
        headers=headers,
        json={"amount": "1.00", "currency": "EUR", "method": "qr"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["type"] == "/problems/unauthorised"


def test_get_shows_history_and_cancel_is_idempotent(live_server: Any, demo: Any) -> None:
    created = _create(live_server, demo).json()
    url = f"{live_server.url}/api/v1/payments/{created['id']}"
    cancelled = requests.post(url + "/cancel", headers=_headers(demo), timeout=10)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = requests.post(url + "/cancel", headers=_headers(demo), timeout=10)
    assert again.status_code == 200
    detail = requests.get(url, headers=_headers(demo), timeout=10).json()
    assert [(e["from_status"], e["to_status"]) for e in detail["events"]] == [
        (None, "created"),
        ("created", "pending"),
        ("pending", "cancelled"),
    ]
    assert detail["events"][-1]["actor"] == "till:T01"


def test_illegal_transition_is_409_with_current_state(
    live_server: Any, demo: Any, db: Database
) -> None:
    created = _create(live_server, demo).json()
    with db.unit_of_work() as uow:
        paid_by_bank(uow, created["id"])
        uow.commit()
    response = requests.post(
        f"{live_server.url}/api/v1/payments/{created['id']}/cancel",
        headers=_headers(demo),
        timeout=10,
    )
    assert response.status_code == 409
    problem = response.json()
    assert problem["type"] == "/problems/illegal-transition"
    assert problem["current_status"] == "paid"
    assert problem["detail"] == "payment is paid and cannot become cancelled"


def test_the_banks_word_pays_only_the_exact_amount_and_only_once(
    live_server: Any, demo: Any, db: Database
) -> None:
    created = _create(live_server, demo).json()
    with db.unit_of_work() as uow:
        paid_by_bank(uow, created["id"], money=Money(1200, "EUR"), bank_payment_id="B-1")
        uow.commit()
    with db.unit_of_work(readonly=True) as uow:
        payment = uow.session.get_one(Payment, created["id"])
        assert payment.status == "pending"
        assert "the bank reported 12.00 EUR paid, but the payment is for 12.34 EUR" in (
            payment.attention or ""
        )
    for _ in range(2):
        with db.unit_of_work() as uow:
            paid_by_bank(uow, created["id"], bank_payment_id="B-2")
            uow.commit()
    with db.unit_of_work() as uow:
        paid_events = uow.session.scalar(
            select(func.count()).select_from(PaymentEvent).where(PaymentEvent.to_status == "paid")
        )
        assert uow.session.get_one(Payment, created["id"]).status == "paid"
    assert paid_events == 1


def test_other_merchants_payments_are_invisible(live_server: Any, demo: Any, db: Any) -> None:
    from tests.factories import second_merchant

    created = _create(live_server, demo).json()
    other_key = second_merchant(db)["api_key"]
    response = requests.get(
        f"{live_server.url}/api/v1/payments/{created['id']}",
        headers={"Authorization": f"Bearer {other_key}"},
        timeout=10,
    )
    assert response.status_code == 404


def test_openapi_describes_the_validating_schema(live_server: Any) -> None:
    doc = requests.get(f"{live_server.url}/api/v1/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.")
    schema = doc["components"]["schemas"]["CreatePayment"]
    assert schema["properties"]["amount"]["type"] == "string"
    assert set(schema["required"]) == {"amount", "currency", "method"}
    assert schema["additionalProperties"] is False
    assert "/payments/{payment_id}/cancel" in doc["paths"]
    sale = doc["components"]["schemas"]["CreateSale"]
    assert set(sale["required"]) == {"currency", "lines"}
    assert doc["paths"]["/sales/{sale_id}/pay"]["post"]["operationId"] == "paySale"


def test_a_qr_image_just_made_here_needs_no_read_and_keeps_to_its_store(
    app: Any, db: Database, demo: Any
) -> None:
    """The image of a payment this process just made is served without reading the payment
    (the till asks for it right away), but only to a till of the payment's own store: the
    demo's third till is in another store and gets "not found", as from the database."""
    from sqlalchemy import event

    client = app.test_client()
    created = client.post(
        "/api/v1/payments",
        json={"amount": "12.34", "currency": "EUR", "method": "qr"},
        headers=_headers(demo),
    ).get_json()
    reads: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM payments" in statement:
            reads.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        same_store = client.get(created["qr_png_url"], headers=_headers(demo, till=1))
        assert same_store.status_code == 200 and same_store.data.startswith(b"\x89PNG")
        assert reads == []
        other_store = client.get(created["qr_png_url"], headers=_headers(demo, till=2))
        assert other_store.status_code == 404
        assert len(reads) == 1  # asked the database, which knows no such payment there
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
