"""Every route × every caller × own store, other store and other merchant, from the URL map.

The routes come from ``app.url_map`` and the expectations from the permission matrix
(``gateway/services/staff/permissions.py``) and the endpoint map (``gateway/entrypoints/
access.py``), so a new route is walked as soon as it exists, and fails here until it is in the
map. Two merchants with two stores each; the callers are anonymous, the first till's key, and a
staff member of every role, all of the first merchant and bound to its first store (owners,
auditors and the area manager see every store). Expected:

- allowed: anything but 401, 403 and 404 (and no 5xx);
- not signed in: a redirect to the sign-in page (a polled status answers 401); no key: 401;
- not permitted: 403;
- an object of another store (for a caller bound to one) or of another merchant: 404.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from gateway.adapters.db import Database
from gateway.adapters.models import Base, Merchant, Payment, SettlementFile, StaffUser
from gateway.adapters.passwords import hash_password
from gateway.config import load_config
from gateway.domain.money import Money
from gateway.domain.monitoring import Rule, Severity, Subject, Verdict
from gateway.entrypoints import access
from gateway.services.monitoring.alerts import Where, raise_alert
from gateway.services.payments import qr_payments
from gateway.services.promotions import promotion_admin, sales
from gateway.services.promotions.pricing import LineInput, PromotionSettings, SaleRequest
from gateway.services.settlement.file_import import import_settlement_file
from gateway.services.settlement.reconciliation import ReconSettings, decide, reconcile_day
from gateway.services.staff import permissions
from gateway.services.staff.auth import TillContext
from gateway.services.webhooks import endpoints, outbox
from sandbox_bank.camt import camt053
from sandbox_bank.settlement import SettlementBatch, SettlementLine
from tests.conftest import app_config, isolated_env
from tests.factories import STAFF_OF_A_MERCHANT, merchant_with_stores, paid_by_bank
from tests.staff_helpers import second_factor_passed

DAY = date(2025, 3, 10)
IBANS = {"A": "DE02120300000000202051", "B": "DE02500105170137075030"}
TARGETS = ("own", "other-store", "other-merchant")
# URL arguments naming an object of one store; the others name the merchant's objects.
STORE_ARGUMENTS = frozenset({"payment_id", "sale_id", "till_id", "staff_id", "alert_id"})
CONSTANT_ARGUMENTS = {
    "fmt": "svg",
    "day": DAY.isoformat(),
    "subject": "payment",
    "chart": "turnover-day",
    "token": "no-such-receipt-token",  # a receipt link: public, the token is its only key
}
CALLERS = ("anonymous", "till", *STAFF_OF_A_MERCHANT)
# Forms whose POST carries an authenticator code: the guard lets the caller through, then the
# (missing) code is refused with the prompt again (401).
CODES = frozenset({"portal.identity.step_up"})
# What a POST sends: enough to pass the form checks that come before the object is looked up.
BODIES: dict[str, dict[str, str]] = {
    "api.sales.pay_sale": {"method": "qr"},
    "cashier.sales.pay_sale": {"method": "qr"},
    "portal.resolve_payment": {"charged": "no", "note": "checked the journal"},
    "portal.resolve_refund": {"refunded": "no", "note": "checked the journal", "refund_id": "x"},
}
# Endpoints that act at the chosen till: its store is the scope, whoever stands there.
AT_THE_TILL = frozenset({"cashier.sales.pay_sale"})


@dataclass
class World:
    app: Flask
    store_objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # by target
    merchant_objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # by target
    clients: dict[str, FlaskClient] = field(default_factory=dict)
    passwords: dict[str, tuple[str, str]] = field(default_factory=dict)
    own_till: int = 0


def sign_in(world: World, caller: str) -> None:
    username, password = world.passwords[caller]
    response = world.clients[caller].post(
        "/cashier/login", data={"username": username, "password": password}
    )
    assert response.status_code == 303, caller
    second_factor_passed(world.clients[caller])
    world.clients[caller].post("/cashier/till", data={"till_id": world.own_till})


def _store_objects(db: Database, shop: dict[str, Any], store: int) -> dict[str, Any]:
    """A paid QR payment (dated DAY, for the settlement pages) and a priced sale."""
    settings = load_config(env=isolated_env(), overrides={"database": {"url": db.url}})
    till = TillContext(shop["tills"][store], shop["stores"][store], shop["merchant_id"], "T")
    with db.unit_of_work() as uow:
        payment = qr_payments.create_qr_payment(
            uow, till, money=Money(100, "EUR"), settings=settings.payments
        )
        uow.session.flush()
        paid_by_bank(uow, payment.id)
        payment.created_at = payment.paid_at = datetime(2025, 3, 10, 12, tzinfo=UTC)
        tea = LineInput("tea", "Tea", "drinks", 1, Money(300, "EUR"))
        sale = sales.price_sale(
            uow, till, SaleRequest((tea,), "EUR"), PromotionSettings.from_settings(settings)
        )
        colleague = StaffUser(
            merchant_id=till.merchant_id, store_id=till.store_id, role="cashier",
            username=f"colleague-{uuid.uuid4().hex[:8]}", display_name="Colleague",
            password_hash=hash_password("colleague-pw"),
        )  # fmt: skip
        uow.session.add(colleague)
        uow.session.flush()
        alert = raise_alert(
            uow,
            Verdict(Rule.VOIDS, Subject("till", str(till.till_id)), Severity.WARNING, 60),
            Where(till.merchant_id, till.store_id, till.till_id),
            datetime(2025, 3, 10, 12, tzinfo=UTC),
        )
        out = {
            "payment_id": payment.id,
            "sale_id": sale.id,
            "till_id": till.till_id,
            "staff_id": colleague.id,
            "alert_id": alert.id,
        }
        uow.commit()
    return out


def _merchant_objects(db: Database, shop: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A promotion, an experiment, a settlement file, a reconciled day and a decision."""
    settings = load_config(env=isolated_env(), overrides={"database": {"url": db.url}})
    merchant_id, tag = shop["merchant_id"], shop["tag"]
    with db.unit_of_work() as uow:
        promotion_admin.create_promotion(
            uow, merchant_id, key=f"points-{tag}", name="Points", kind="points",
            spec={"points": 1, "per_minor": 100}, starts_at=None, ends_at=None, actor="test",
        )  # fmt: skip
        promotion_admin.create_experiment(
            uow, merchant_id, key=f"ab-{tag}", name="A/B", variants=[("a", 5000), ("b", 5000)],
            holdout_bp=0, control="a",
        )  # fmt: skip
        payments = list(
            uow.session.scalars(select(Payment).where(Payment.merchant_id == merchant_id))
        )
        uow.session.get_one(Merchant, merchant_id).settlement_accounts = [IBANS[tag]]
        uow.commit()
    line = SettlementLine(
        "payment", payments[0].reference, f"bp-{tag}", None, None, DAY, 100, 0, "EUR", "bill"
    )
    batch = SettlementBatch(
        f"STL-{tag}", f"M-{tag}", f"Shop {tag}", IBANS[tag], DAY, "EUR",
        datetime(2025, 3, 10, 23, tzinfo=UTC), 0, (line,),
    )  # fmt: skip
    path = folder / f"stl-{tag}.camt053.xml"
    path.write_text(camt053(batch), encoding="utf-8")
    with db.unit_of_work() as uow:
        import_settlement_file(uow, path, settings.settlement)
    with db.unit_of_work() as uow:
        recon = ReconSettings.from_settings(settings.reconciliation)
        reconcile_day(uow, merchant_id, DAY, recon, actor="test")
        decision = decide(
            uow, merchant_id, action="write_off", subject_id=payments[-1].id, line_ids=[],
            note="test", actor="test",
        )  # fmt: skip
        files = uow.session.scalars(select(SettlementFile).order_by(SettlementFile.id)).all()
        file_id = [f.id for f in files]
        hook = endpoints.create_endpoint(
            uow, merchant_id, url=f"https://erp-{tag}.example/hooks", event_types=["payment.*"],
            description=None, actor="test",
        ).endpoint  # fmt: skip
        delivery = outbox.send_test(uow, merchant_id, hook.id, actor="test")
        out = {
            "endpoint_id": hook.id,
            "delivery_id": delivery.id,
            "event_id": files[-1].inbound_event_id,
            "key": f"points-{tag}",
            "experiment": f"ab-{tag}",
            "subject_id": payments[0].id,
            "decision_id": decision.id,
            "file_id": file_id[-1],
        }
        uow.commit()
    return out


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    pg_database: Database | None,
) -> Iterator[World]:
    """Both merchants, their objects and a signed-in client per caller: once per database."""
    folder = tmp_path_factory.mktemp("access")
    if request.param == "sqlite":
        shutil.copy(sqlite_template, folder / "kassa.db")
        db = Database(f"sqlite:///{folder / 'kassa.db'}")
    elif pg_database is None:
        pytest.skip("PostgreSQL: set KASSA_TEST_DATABASE_URL to run")
    else:
        db = pg_database
        empty(db)
    from gateway.entrypoints.app import create_app

    # The walk takes minutes on a loaded machine: the second factor passed at sign-in stays
    # fresh for sensitive actions (step-up) all along, so no route races the clock.
    app = create_app(app_config(db, security={"step_up_seconds": 86_400}), db=db)
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    a, b = merchant_with_stores(db, "A"), merchant_with_stores(db, "B")
    found = World(app, own_till=a["tills"][0])
    for target, (shop, store) in zip(TARGETS, ((a, 0), (a, 1), (b, 0)), strict=True):
        found.store_objects[target] = _store_objects(db, shop, store)
    for shop in (a, b):
        objects = _merchant_objects(db, shop, folder)
        for target in TARGETS:
            if (target == "other-merchant") == (shop is b):
                found.merchant_objects[target] = objects
    found.clients["anonymous"] = app.test_client()
    found.clients["till"] = app.test_client()
    found.clients["till"].environ_base["HTTP_AUTHORIZATION"] = f"Bearer {a['keys'][0]}"
    for name in STAFF_OF_A_MERCHANT:
        found.clients[name] = app.test_client()
        found.passwords[name] = (a["staff"][name]["username"], a["password"])
        sign_in(found, name)
    yield found
    if request.param == "sqlite":
        db.dispose()


def empty(db: Database) -> None:
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


def caller_role(caller: str) -> tuple[str | None, int | None]:
    """The caller's role, and the store it is bound to (1: the first store; None: every)."""
    if caller == "anonymous":
        return None, None
    if caller == "till":
        return permissions.TILL, 1
    role, bound = STAFF_OF_A_MERCHANT[caller]
    return role, 1 if bound else None


def expected(
    endpoint: str, rule: access.Rule, method: str, caller: str, target: str, arguments: set[str]
) -> str:
    role, store = caller_role(caller)
    if rule.audience in ("public", "bank-signed"):
        return "any"
    if rule.audience == "operator":
        return "allowed"  # from loopback without a token; the token: tests/.../test_operable.py
    if rule.audience == "till-key" and role != permissions.TILL:
        return "no-key"
    if rule.audience == "staff" and role in (None, permissions.TILL):
        return "sign-in"
    needed = rule.needs(method)
    assert role is not None and needed is not None
    if not permissions.allowed(role, needed, store_id=store):
        return "forbidden"
    if target == "other-merchant" and arguments - set(CONSTANT_ARGUMENTS):
        return "not-found"
    bound = permissions.effective_store(role, store) is not None or endpoint in AT_THE_TILL
    if target == "other-store" and bound and arguments & STORE_ARGUMENTS:
        return "not-found"
    return "allowed"


def matches(outcome: str, status: int, location: str) -> bool:
    if status == 500 or (status > 500 and outcome != "any"):
        return False  # (the bank's callbacks answer 503 without a configured secret)
    if outcome == "allowed":
        return status not in (401, 403, 404)
    if outcome == "wrong-code":  # let through, then the form's code was checked: 401 page
        return status == 401 and not location
    if outcome == "sign-in":
        return (status in (302, 303) and "/login" in location) or status == 401
    return {"no-key": 401, "forbidden": 403, "not-found": 404, "any": status}[outcome] == status


def url_values(world: World, endpoint: str, arguments: set[str], target: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in arguments:
        if name in CONSTANT_ARGUMENTS:
            values[name] = CONSTANT_ARGUMENTS[name]
        elif name in STORE_ARGUMENTS:
            values[name] = world.store_objects[target][name]
        elif name == "key" and "experiment" in endpoint:
            values[name] = world.merchant_objects[target]["experiment"]
        elif name == "filename":
            values[name] = "kassa.css"
        else:
            values[name] = world.merchant_objects[target][name]
    return values


def post(client: FlaskClient, endpoint: str, path: str) -> Any:
    body = BODIES.get(endpoint, {})
    if endpoint.startswith("api."):
        key = {"Idempotency-Key": str(uuid.uuid4())}
        return client.post(path, json=body, headers=key)
    return client.post(path, data=body)


@pytest.mark.parametrize(
    ("caller", "sees_other_store"),
    [("manager", False), ("area-manager", True), ("owner", True), ("auditor", True)],
)
def test_lists_show_only_the_caller_s_stores(
    world: World, caller: str, sees_other_store: bool
) -> None:
    """The portal's payment list and end-of-day table are narrowed like every lookup by id
    (before the route walk, which revokes the tills' keys and so hides them)."""
    client = world.clients[caller]
    payments = client.get("/portal/payments").get_data(as_text=True)
    devices = client.get("/portal/devices").get_data(as_text=True)
    own, other = world.store_objects["own"], world.store_objects["other-store"]
    foreign = world.store_objects["other-merchant"]
    assert f"/portal/payments/{own['payment_id']}" in payments
    assert (f"/portal/payments/{other['payment_id']}" in payments) is sees_other_store
    assert f"/portal/payments/{foreign['payment_id']}" not in payments
    assert ("A store 1" in devices, "A store 2" in devices) == (True, sees_other_store)
    assert "B store" not in devices


@pytest.mark.timeout(900)  # over a thousand requests: minutes on a loaded 2-core machine
def test_every_route_for_every_caller_and_scope(world: World) -> None:
    adapter = world.app.url_map.bind("localhost")
    wrong: list[str] = []
    walked = 0
    for url_rule in sorted(world.app.url_map.iter_rules(), key=lambda r: r.endpoint):
        rule = access.rule_for(url_rule.endpoint)
        assert rule is not None, f"{url_rule.endpoint} is not in gateway/entrypoints/access.py"
        arguments = set(url_rule.arguments)
        targets = TARGETS if arguments - set(CONSTANT_ARGUMENTS) - {"filename"} else ("own",)
        for method in sorted((url_rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for target in targets:
                path = adapter.build(
                    url_rule.endpoint, url_values(world, url_rule.endpoint, arguments, target)
                )
                for caller in CALLERS:
                    outcome = expected(url_rule.endpoint, rule, method, caller, target, arguments)
                    if outcome == "allowed" and method == "POST" and url_rule.endpoint in CODES:
                        outcome = "wrong-code"
                    client = world.clients[caller]
                    if method == "GET":
                        response = client.get(path)
                    else:
                        response = post(client, url_rule.endpoint, path)
                    if url_rule.endpoint.endswith(".logout") and caller in world.passwords:
                        sign_in(world, caller)
                    walked += 1
                    location = response.headers.get("Location", "")
                    if not matches(outcome, response.status_code, location):
                        wrong.append(
                            f"{method} {path} as {caller} ({target}): expected {outcome}, "
                            f"got {response.status_code}"
                        )
    assert wrong == [], f"{len(wrong)} of {walked} requests:\n" + "\n".join(wrong)
    assert walked > 500
