"""Anomaly alerts through the real services, on SQLite and PostgreSQL: each rule fires at its
threshold and not below it, one open alert per rule, subject and window, acknowledging needs a
note and is audited, store staff see their store's alerts only, and the portal's pages work.

Times are passed in (a payment's or refund's own timestamp), never waited for.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from flask.testing import FlaskClient
from sqlalchemy import event, inspect, select, text

from gateway.adapters.db import Database, UnitOfWork, alembic_config
from gateway.adapters.models import Alert, AuditEntry, Payment, Refund, Store, Till
from gateway.domain import monitoring as domain_monitoring
from gateway.domain.money import Money
from gateway.domain.payment import PaymentMethod, PaymentStatus
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.services.devices import cards
from gateway.services.monitoring import alerts, rules, thresholds
from gateway.services.payments import lifecycle, qr_payments, refunds
from gateway.services.staff.auth import TillContext
from gateway.services.staff.scope import Scope
from gateway.settings import PaymentSettings
from tests.factories import merchant_with_stores, paid_by_bank
from tests.staff_helpers import second_factor_passed

# A Monday at noon in Berlin (11:00 UTC in winter).
MONDAY_NOON = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)


@pytest.fixture
def shop(db: Database) -> dict[str, Any]:
    return merchant_with_stores(db, "A")


def till(shop: dict[str, Any], n: int = 0) -> TillContext:
    return TillContext(shop["tills"][n], shop["stores"][n], shop["merchant_id"], f"T{n + 1}")


def set_thresholds(db: Database, shop: dict[str, Any], **values: Any) -> None:
    with db.unit_of_work() as uow:
        chosen = thresholds.defaults().with_overrides(values).as_dict()
        thresholds.set_thresholds(uow, shop["merchant_id"], chosen, "test")
        uow.commit()


def open_alerts(db: Database, rule: str | None = None) -> list[Alert]:
    with db.unit_of_work(readonly=True) as uow:
        query = select(Alert).where(Alert.status == "open").order_by(Alert.id)
        if rule:
            query = query.where(Alert.rule == rule)
        found = list(uow.session.scalars(query))
        uow.session.expunge_all()  # keep what was read after the unit of work ends
        return found


def qr_sale(db: Database, at: TillContext, minor: int, actor: str | None = None) -> str:
    """A QR payment, paid at the bank (the real create and the bank's word)."""
    with db.unit_of_work() as uow:
        payment = qr_payments.create_qr_payment(
            uow, at, money=Money(minor, "EUR"), settings=PaymentSettings(), actor=actor
        )
        uow.session.flush()
        paid_by_bank(uow, payment.id)
        uow.commit()
        return payment.id


def new_payment(
    uow: UnitOfWork, at: TillContext, minor: int, method: PaymentMethod, when: datetime
) -> Payment:
    payment = lifecycle.new_payment(
        uow,
        at,
        Money(minor, "EUR"),
        method,
        reference=qr_payments.new_reference(),
        bill_number=None,
        actor=None,
        created_at=when,
    )
    uow.session.flush()
    return payment


def refund(db: Database, shop: dict[str, Any], payment_id: str, minor: int, actor: str) -> None:
    """A refund asked for and completed by the bank (the real request and result)."""
    with db.unit_of_work() as uow:
        made = refunds.request_refund(
            uow,
            payment_id,
            shop["merchant_id"],
            amount=Money(minor, "EUR"),
            reason=None,
            actor=actor,
        )
        refunds.record_bank_result(
            uow,
            refund_id=made.id,
            succeeded=True,
            bank_refund_id=f"br-{made.id}",
            amount_minor=minor,
            currency="EUR",
            reason=None,
        )
        uow.commit()


# -- rule 1: refund ratio ----------------------------------------------------------------------


def test_refund_ratio_fires_at_the_ratio_with_enough_refunds(
    db: Database, shop: dict[str, Any]
) -> None:
    set_thresholds(db, shop, refund_ratio_percent=30, refund_ratio_min_refunds=3)
    cashier = f"staff:{shop['staff']['cashier']['username']}"
    sold = [qr_sale(db, till(shop), 1000, actor=cashier) for _ in range(4)]  # 40.00
    refund(db, shop, sold[0], 400, cashier)
    refund(db, shop, sold[1], 400, cashier)  # 20 %, and only two refunds
    refund(db, shop, sold[2], 399, cashier)  # three refunds, 29.975 %: below
    assert open_alerts(db, "refund_ratio") == []
    refund(db, shop, sold[3], 1, cashier)  # 12.00 of 40.00: exactly 30 %
    raised = {(a.subject_kind, a.subject_key): a for a in open_alerts(db, "refund_ratio")}
    assert set(raised) == {
        ("till", str(shop["tills"][0])),
        ("cashier", shop["staff"]["cashier"]["username"]),
    }
    facts = raised["till", str(shop["tills"][0])].facts
    assert facts["refunds"] == 4 and facts["ratio_percent"] == 30
    assert facts["refunded"] == {"minor": 1200, "currency": "EUR"}
    assert facts["sold"] == {"minor": 4000, "currency": "EUR"}


def test_one_refund_of_one_sale_is_no_alert(db: Database, shop: dict[str, Any]) -> None:
    paid = qr_sale(db, till(shop), 1000)
    refund(db, shop, paid, 1000, "till:T1")  # 100 %, but a single refund
    assert open_alerts(db, "refund_ratio") == []


# -- rule 2: voids -----------------------------------------------------------------------------


def void_card_payment(db: Database, at: TillContext) -> None:
    """An approved card payment cancelled (reversed at the terminal)."""
    with db.unit_of_work() as uow:
        payment = new_payment(uow, at, 1000, PaymentMethod.CARD, datetime.now(UTC))
        lifecycle.move_payment(uow, payment, PaymentStatus.PENDING, "card_sent", "test")
        lifecycle.move_payment(uow, payment, PaymentStatus.AUTHORISED, "card_approved", "test")
        lifecycle.move_payment(uow, payment, PaymentStatus.CANCELLED, "card_reversed", "test")
        uow.commit()


def test_voids_per_till_fire_at_the_threshold_and_are_deduplicated(
    db: Database, shop: dict[str, Any]
) -> None:
    set_thresholds(db, shop, voids_per_till=3)
    with db.unit_of_work() as uow:  # cancelling an unpaid QR payment is not a void
        payment = new_payment(uow, till(shop), 500, PaymentMethod.QR, datetime.now(UTC))
        lifecycle.move_payment(uow, payment, PaymentStatus.PENDING, "qr_issued", "test")
        lifecycle.move_payment(uow, payment, PaymentStatus.CANCELLED, "cancelled", "test")
        uow.commit()
    void_card_payment(db, till(shop))
    void_card_payment(db, till(shop))
    void_card_payment(db, till(shop, 1))  # another till's
    assert open_alerts(db, "voids") == []
    void_card_payment(db, till(shop))
    [alert] = open_alerts(db, "voids")
    assert (alert.subject_kind, alert.till_id, alert.store_id) == (
        "till",
        shop["tills"][0],
        shop["stores"][0],
    )
    assert alert.facts["count"] == 3 and alert.severity == "warning"
    void_card_payment(db, till(shop))  # the same window: the open alert is updated
    [again] = open_alerts(db, "voids")
    assert again.id == alert.id and again.occurrences == 2 and again.facts["count"] == 4


# -- rule 3: declines of one card ---------------------------------------------------------------


def declined(db: Database, at: TillContext, masked_pan: str) -> None:
    with db.unit_of_work() as uow:
        payment = new_payment(uow, at, 2500, PaymentMethod.CARD, datetime.now(UTC))
        lifecycle.move_payment(uow, payment, PaymentStatus.PENDING, "card_sent", "test")
        payment_id = payment.id
        uow.commit()
    outcome = cards.TerminalOutcome(
        approved=False,
        result_code=5,
        message="Declined",
        masked_pan=masked_pan,
        card_name="VISA",
    )
    with db.unit_of_work() as uow:
        cards.apply_charge(uow, payment_id, outcome, "device-host")
        uow.commit()


def test_repeated_declines_of_one_card_fire_by_its_masked_number(
    db: Database, shop: dict[str, Any]
) -> None:
    set_thresholds(db, shop, card_declines=3)
    declined(db, till(shop), "411111******1111")
    declined(db, till(shop, 1), "411111******1111")  # another store: the same card
    declined(db, till(shop), "550000******0004")
    assert open_alerts(db, "card_declines") == []
    declined(db, till(shop), "411111******1111")
    [alert] = open_alerts(db, "card_declines")
    assert alert.subject_kind == "card" and alert.subject_key == "411111******1111 VISA"
    assert alert.facts["count"] == 3


# -- rule 4: velocity ----------------------------------------------------------------------------


def test_qr_payments_per_minute_fire_within_one_sliding_minute(
    db: Database, shop: dict[str, Any]
) -> None:
    set_thresholds(db, shop, qr_payments_per_minute=3)

    def qr_at(when: datetime) -> None:
        with db.unit_of_work() as uow:
            payment = new_payment(uow, till(shop), 500, PaymentMethod.QR, when)
            lifecycle.move_payment(uow, payment, PaymentStatus.PENDING, "qr_issued", "test")
            uow.commit()

    start = MONDAY_NOON
    for seconds in (0, 30, 61):  # the minute before 61 s holds only two
        qr_at(start + timedelta(seconds=seconds))
    assert open_alerts(db, "qr_velocity") == []
    qr_at(start + timedelta(seconds=62))  # 30, 61, 62 within one minute
    [alert] = open_alerts(db, "qr_velocity")
    assert alert.facts == {"count": 3, "threshold": 3, "window_minutes": 1}


def test_refunds_per_minute_fire_at_the_threshold(db: Database, shop: dict[str, Any]) -> None:
    set_thresholds(db, shop, refunds_per_minute=3, refund_ratio_percent=0)
    sold = [qr_sale(db, till(shop), 1000) for _ in range(3)]
    for n, payment_id in enumerate(sold):
        with db.unit_of_work() as uow:
            made = refunds.request_refund(
                uow, payment_id, shop["merchant_id"], amount=None, reason=None, actor="till:T1"
            )
            made.created_at = MONDAY_NOON + timedelta(seconds=20 * n)  # when the till asked
            refunds.record_bank_result(
                uow,
                refund_id=made.id,
                succeeded=True,
                bank_refund_id=None,
                amount_minor=1000,
                currency="EUR",
                reason=None,
            )
            uow.commit()
        assert (open_alerts(db, "refund_velocity") != []) is (n == 2)


# -- rule 5: payments far above the usual ticket -------------------------------------------------


def test_a_ticket_above_factor_times_the_median_fires_once_there_is_history(
    db: Database, app: Any, shop: dict[str, Any]
) -> None:
    set_thresholds(
        db, shop, large_ticket_factor=5, large_ticket_statistic="median", large_ticket_min_history=5
    )
    for _ in range(4):
        qr_sale(db, till(shop), 1000)
    qr_sale(db, till(shop), 10000)  # ten times, but only four payments of history
    qr_sale(db, till(shop), 5000)  # five times the median of 10.00: not above
    assert open_alerts(db, "large_ticket") == []
    big = qr_sale(db, till(shop), 5001)
    [alert] = open_alerts(db, "large_ticket")
    assert alert.facts["payment_id"] == big
    assert alert.facts["usual"] == {"minor": 1000, "currency": "EUR"}
    assert alert.facts["limit"] == {"minor": 5000, "currency": "EUR"}
    page = portal_client(app, shop, "owner").get(f"/portal/alerts/{alert.id}")
    assert page.status_code == 200 and "50.01" in page.get_data(as_text=True)


def test_the_p95_ticket_is_the_one_the_domain_ranks(db: Database, shop: dict[str, Any]) -> None:
    """The database counts and ranks the amounts in one statement: the same nearest-rank p95
    as :func:`gateway.domain.monitoring.usual_rank`."""
    set_thresholds(
        db, shop, large_ticket_factor=2, large_ticket_statistic="p95", large_ticket_min_history=5
    )
    amounts = [100 * k for k in range(1, 42)]  # ascending: none is twice the p95 before it
    for minor in amounts:
        qr_sale(db, till(shop), minor)
    assert open_alerts(db, "large_ticket") == []
    usual = sorted(amounts)[domain_monitoring.usual_rank(len(amounts), "p95")]
    qr_sale(db, till(shop), 2 * usual + 1)
    [alert] = open_alerts(db, "large_ticket")
    assert alert.facts["usual"] == {"minor": usual, "currency": "EUR"}


def test_a_usual_ticket_of_many_amounts_is_reused_for_seconds(
    db: Database, shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ranked once, then reused by the process while it is fresh; ranked again after."""
    set_thresholds(
        db, shop, large_ticket_factor=5, large_ticket_statistic="median", large_ticket_min_history=5
    )
    monkeypatch.setattr(rules, "USUAL_REUSE_MIN_AMOUNTS", 5)
    ranked: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "row_number" in statement:
            ranked.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        for _ in range(6):
            qr_sale(db, till(shop), 1000)
        assert len(ranked) == 6  # each ranked: too few amounts to reuse before the sixth
        qr_sale(db, till(shop), 5001)
        assert len(ranked) == 6  # reused: the sixth's median of 1000 stands on 5 amounts
        assert len(open_alerts(db, "large_ticket")) == 1
        monkeypatch.setattr(rules, "USUAL_REUSE_SECONDS", 0.0)
        qr_sale(db, till(shop), 1000)
        assert len(ranked) == 7  # no longer fresh: ranked again
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


# -- rule 6: outside opening hours ---------------------------------------------------------------


def test_payments_outside_the_store_s_opening_hours_fire(
    db: Database, shop: dict[str, Any]
) -> None:
    set_thresholds(db, shop, outside_hours_grace_minutes=30)
    with db.unit_of_work() as uow:
        store = uow.session.get_one(Store, shop["stores"][0])
        store.timezone = "Europe/Berlin"
        thresholds.set_opening_hours(
            uow, Scope(shop["merchant_id"]), shop["stores"][0], "mon-fri 08:00-20:00", "test"
        )
        uow.commit()

    def paid_at(when: datetime, n: int = 0) -> None:
        with db.unit_of_work() as uow:
            payment = new_payment(uow, till(shop, n), 500, PaymentMethod.QR, when)
            lifecycle.move_payment(uow, payment, PaymentStatus.PENDING, "qr_issued", "test")
            lifecycle.move_payment(uow, payment, PaymentStatus.PAID, "paid", "test")
            uow.commit()

    paid_at(MONDAY_NOON)  # 12:00 in Berlin
    paid_at(MONDAY_NOON + timedelta(hours=8, minutes=29))  # 20:29: within the grace
    paid_at(MONDAY_NOON + timedelta(days=5), n=1)  # Saturday: the second store has no hours
    assert open_alerts(db, "outside_hours") == []
    paid_at(MONDAY_NOON + timedelta(hours=8, minutes=30))  # 20:30
    [alert] = open_alerts(db, "outside_hours")
    assert alert.facts["local_time"] == "2026-11-30T20:30" and alert.facts["weekday"] == "mon"


# -- rule 7: failed sign-ins ---------------------------------------------------------------------


def sign_in(client: FlaskClient, username: str, password: str) -> int:
    page = client.get("/portal/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, page
    data = {"username": username, "password": password, "csrf_token": token.group(1)}
    return client.post("/portal/login", data=data).status_code


def test_failed_sign_ins_fire_per_person_and_per_address(
    db: Database, app: Any, shop: dict[str, Any]
) -> None:
    set_thresholds(db, shop, login_failures_per_user=3, login_failures_per_source=4)
    client = app.test_client()
    manager = shop["staff"]["manager"]["username"]
    assert sign_in(client, manager, "wrong") != 303
    assert sign_in(client, manager, "wrong") != 303
    assert open_alerts(db, "login_failures") == []
    assert sign_in(client, manager, "wrong") != 303
    [person] = open_alerts(db, "login_failures")
    assert (person.subject_kind, person.subject_key) == ("staff", manager)
    assert sign_in(client, shop["staff"]["owner"]["username"], "wrong") != 303
    kinds = {a.subject_kind: a for a in open_alerts(db, "login_failures")}
    assert set(kinds) == {"staff", "source"} and kinds["source"].facts["count"] == 4


# -- rule 8: attention flags ---------------------------------------------------------------------


def test_repeated_attention_flags_of_a_till_and_a_store_fire(
    db: Database, shop: dict[str, Any]
) -> None:
    set_thresholds(db, shop, attention_flags=3, attention_flags_per_store=4)

    def flag(n: int) -> None:
        with db.unit_of_work() as uow:
            payment = new_payment(uow, till(shop, n), 500, PaymentMethod.QR, datetime.now(UTC))
            lifecycle.flag_attention(uow, payment, "the bank took another amount", "test", {})
            uow.commit()

    def subjects() -> set[str]:
        return {a.subject_kind for a in open_alerts(db, "attention_flags")}

    flag(0)
    flag(0)
    flag(1)  # the other store's
    assert subjects() == set()
    flag(0)
    assert subjects() == {"till"}
    # A second till in the first store: its flags count for the store, not for the first till.
    with db.unit_of_work() as uow:
        second = Till(
            store_id=shop["stores"][0], label="T9", name="Till 9", active=True,
            api_key_id="k9", api_key_hash="h9",
        )  # fmt: skip
        uow.session.add(second)
        uow.commit()
        other = TillContext(second.id, shop["stores"][0], shop["merchant_id"], "T9")
    with db.unit_of_work() as uow:
        payment = new_payment(uow, other, 500, PaymentMethod.QR, datetime.now(UTC))
        lifecycle.flag_attention(uow, payment, "the bank took another amount", "test", {})
        uow.commit()
    assert subjects() == {"till", "store"}


# -- acknowledging, scope, the notification ------------------------------------------------------


def raise_voids(db: Database, shop: dict[str, Any], n: int = 0) -> Alert:
    set_thresholds(db, shop, voids_per_till=1)
    void_card_payment(db, till(shop, n))
    return next(a for a in open_alerts(db, "voids") if a.till_id == shop["tills"][n])


def test_acknowledging_needs_a_note_is_audited_and_reopens_the_window(
    db: Database, shop: dict[str, Any]
) -> None:
    alert = raise_voids(db, shop)
    scope = Scope(shop["merchant_id"])
    with db.unit_of_work() as uow, pytest.raises(InvalidInput):
        alerts.acknowledge(uow, alert.id, scope, note="   ", actor="staff:boss")
    with db.unit_of_work() as uow:
        alerts.acknowledge(uow, alert.id, scope, note="trainee, explained", actor="staff:boss")
        uow.commit()
    with db.unit_of_work() as uow, pytest.raises(Conflict):
        alerts.acknowledge(uow, alert.id, scope, note="again", actor="staff:boss")
    with db.unit_of_work(readonly=True) as uow:
        done = uow.session.get_one(Alert, alert.id)
        assert (done.status, done.acknowledged_by, done.note, done.open_key) == (
            "acknowledged",
            "staff:boss",
            "trainee, explained",
            None,
        )
        entry = uow.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "alert.acknowledged")
        ).one()
        assert entry.target_id == str(alert.id) and entry.after
        assert entry.after["note"] == "trainee, explained"
    void_card_payment(db, till(shop))  # the same window again: a new alert, the old one stays
    [fresh] = open_alerts(db, "voids")
    assert fresh.id != alert.id


def test_store_staff_see_only_their_store_s_alerts(db: Database, shop: dict[str, Any]) -> None:
    own, other = raise_voids(db, shop, 0), raise_voids(db, shop, 1)
    store_one = Scope(shop["merchant_id"], shop["stores"][0])
    with db.unit_of_work(readonly=True) as uow:
        rows, total = alerts.list_alerts(uow, store_one)
        assert [r.alert.id for r in rows] == [own.id] and total == 1
        assert alerts.count_open(uow, store_one) == 1
        assert alerts.count_open(uow, Scope(shop["merchant_id"])) == 2
        with pytest.raises(NotFound):
            alerts.get_alert(uow, other.id, store_one)
        with pytest.raises(NotFound):
            alerts.get_alert(uow, own.id, Scope(shop["merchant_id"] + 1000))
    with db.unit_of_work() as uow, pytest.raises(NotFound):
        alerts.acknowledge(uow, other.id, store_one, note="not mine", actor="staff:x")


def test_a_new_alert_is_announced_with_its_facts(db: Database, shop: dict[str, Any]) -> None:
    alert = raise_voids(db, shop)
    data = alerts.notification(alert)
    assert data["rule"] == "voids" and data["id"] == alert.id
    assert data["subject"] == {"kind": "till", "key": str(shop["tills"][0])}
    assert data["facts"]["count"] == 1


def test_an_alert_commits_or_rolls_back_with_its_event(db: Database, shop: dict[str, Any]) -> None:
    set_thresholds(db, shop, voids_per_till=1)
    with db.unit_of_work() as uow:
        payment = new_payment(uow, till(shop), 1000, PaymentMethod.CARD, datetime.now(UTC))
        lifecycle.move_payment(uow, payment, PaymentStatus.PENDING, "card_sent", "test")
        lifecycle.move_payment(uow, payment, PaymentStatus.AUTHORISED, "card_approved", "test")
        lifecycle.move_payment(uow, payment, PaymentStatus.CANCELLED, "card_reversed", "test")
        assert uow.session.scalars(select(Alert)).all()
        # not committed
    assert open_alerts(db) == []
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalars(select(Refund)).all() == []


# -- the portal ----------------------------------------------------------------------------------


def portal_client(app: Any, shop: dict[str, Any], who: str) -> FlaskClient:
    client: FlaskClient = app.test_client()
    username = shop["staff"][who]["username"]
    token = csrf(client, "/cashier/login")
    response = client.post(
        "/cashier/login",
        data={"username": username, "password": shop["password"], "csrf_token": token},
    )
    assert response.status_code == 303
    second_factor_passed(client)
    return client


def csrf(client: FlaskClient, path: str) -> str:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert token
    return token.group(1)


def test_the_portal_lists_shows_and_acknowledges_alerts(
    db: Database, app: Any, shop: dict[str, Any]
) -> None:
    own, other = raise_voids(db, shop, 0), raise_voids(db, shop, 1)
    manager = portal_client(app, shop, "manager")  # bound to the first store
    page = manager.get("/portal/alerts")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f'data-alert-id="{own.id}"' in text and f'data-alert-id="{other.id}"' not in text
    assert re.search(r'id="open-alerts"[^>]*>1<', text)
    assert manager.get(f"/portal/alerts/{other.id}").status_code == 404
    detail = manager.get(f"/portal/alerts/{own.id}").get_data(as_text=True)
    assert 'id="alert-facts"' in detail and 'id="acknowledge"' in detail
    token = csrf(manager, f"/portal/alerts/{own.id}")
    path = f"/portal/alerts/{own.id}/acknowledge"
    manager.post(path, data={"note": "", "csrf_token": token})
    assert len(open_alerts(db, "voids")) == 2  # no note: still open
    response = manager.post(path, data={"note": "checked the till", "csrf_token": token})
    assert response.status_code == 303
    after = manager.get(f"/portal/alerts/{own.id}").get_data(as_text=True)
    assert 'id="acknowledged"' in after and "checked the till" in after
    acknowledged = manager.get("/portal/alerts?status=acknowledged").get_data(as_text=True)
    assert f'data-alert-id="{own.id}"' in acknowledged
    assert 'id="open-alerts"' not in manager.get("/portal/alerts").get_data(as_text=True)


def test_auditors_read_alerts_and_change_nothing(
    db: Database, app: Any, shop: dict[str, Any]
) -> None:
    alert = raise_voids(db, shop, 0)
    auditor = portal_client(app, shop, "auditor")
    detail = auditor.get(f"/portal/alerts/{alert.id}")
    assert detail.status_code == 200 and 'id="acknowledge"' not in detail.get_data(as_text=True)
    token = csrf(auditor, f"/portal/alerts/{alert.id}")
    response = auditor.post(
        f"/portal/alerts/{alert.id}/acknowledge", data={"note": "x", "csrf_token": token}
    )
    assert response.status_code == 403
    assert open_alerts(db, "voids")[0].id == alert.id


def test_owner_sets_thresholds_and_opening_hours_in_the_portal(
    db: Database, app: Any, shop: dict[str, Any]
) -> None:
    owner = portal_client(app, shop, "owner")
    page = owner.get("/portal/alerts/thresholds")
    assert page.status_code == 200
    token = csrf(owner, "/portal/alerts/thresholds")
    form = {k: str(v) for k, v in thresholds.defaults().as_dict().items()}
    bad = owner.post(
        "/portal/alerts/thresholds", data={**form, "voids_per_till": "-1", "csrf_token": token}
    )
    assert bad.status_code == 422
    saved = owner.post(
        "/portal/alerts/thresholds", data={**form, "voids_per_till": "7", "csrf_token": token}
    )
    assert saved.status_code == 303
    hours = owner.post(
        "/portal/alerts/opening-hours",
        data={"store_id": shop["stores"][1], "hours": "mon-sat 09:00-18:00", "csrf_token": token},
    )
    assert hours.status_code == 303
    with db.unit_of_work(readonly=True) as uow:
        assert thresholds.for_merchant(uow, shop["merchant_id"]).voids_per_till == 7
        actions = set(uow.session.scalars(select(AuditEntry.action)))
    assert {"monitoring.thresholds_changed", "store.opening_hours_changed"} <= actions
    assert "mon 09:00-18:00; tue 09:00-18:00" in owner.get("/portal/alerts/thresholds").get_data(
        as_text=True
    )
    store_manager = portal_client(app, shop, "manager")  # thresholds are merchant-wide
    assert store_manager.get("/portal/alerts/thresholds").status_code == 403


# -- the migration -------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_alerts_migration_goes_down_and_up_again(backend: str, tmp_path: Any) -> None:
    """0018_alerts downgrades to 0016 and upgrades again, in a database of its own."""
    pg_url = os.environ.get("KASSA_TEST_DATABASE_URL")
    admin = None
    if backend == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'migrate.db'}")
    elif not pg_url:
        pytest.skip("PostgreSQL: set KASSA_TEST_DATABASE_URL to run")
    else:
        schema = f"kassa_alerts_migration_{os.getpid()}"
        admin = Database(pg_url)
        with admin.engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        sep = "&" if "?" in pg_url else "?"
        database = Database(f"{pg_url}{sep}options=-csearch_path%3D{schema}")
    try:
        database.upgrade()
        command.downgrade(alembic_config(database), "0016")
        tables = inspect(database.engine).get_table_names()
        assert "alerts" not in tables
        columns = {c["name"] for c in inspect(database.engine).get_columns("stores")}
        assert "opening_hours" not in columns
        database.upgrade()
        assert "alerts" in inspect(database.engine).get_table_names()
    finally:
        database.dispose()
        if admin is not None:
            with admin.engine.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            admin.dispose()
