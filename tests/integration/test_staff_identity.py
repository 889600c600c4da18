"""Signing in to the portal: the second factor, throttling, sessions that end, cookies.

Flask's test client against SQLite and PostgreSQL; the throttle's clock is the app's
injectable ``kassa.clock``, so lockouts are tested without sleeping.
"""

from __future__ import annotations

import base64
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
import zxingcpp
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select

from gateway.adapters.db import Database
from gateway.adapters.models import AuditEntry, StaffUser, Store, Till
from gateway.adapters.passwords import hash_password
from gateway.services.staff import admin
from tests.integration.test_portal_pages import log_in, staff
from tests.staff_helpers import csrf_token, totp_code


def password_only(client: FlaskClient, username: str, password: str) -> Any:
    token = csrf_token(client, "/portal/login")
    return client.post(
        "/portal/login", data={"username": username, "password": password, "csrf_token": token}
    )


def actions(db: Database) -> list[str]:
    with db.unit_of_work() as uow:
        return list(uow.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def new_manager(db: Database, username: str = "mia", password: str = "mia-password-1") -> None:
    with db.unit_of_work() as uow:
        merchant_id = uow.session.scalars(select(StaffUser.merchant_id)).first()
        uow.session.add(
            StaffUser(
                merchant_id=merchant_id, username=username, display_name="Mia", role="manager",
                active=True, password_hash=hash_password(password),
            )
        )  # fmt: skip
        uow.commit()


PORTAL_PAGES = ["/portal/", "/portal/devices", "/portal/settlement", "/portal/promotions",
                "/portal/audit"]  # fmt: skip


def test_a_password_alone_never_opens_the_portal(app: Any, demo: Any, db: Database) -> None:
    client = app.test_client()
    assert password_only(client, *staff(demo, "manager")).status_code == 303
    for path in PORTAL_PAGES:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"] == "/portal/mfa"
    wrong = client.post(
        "/portal/mfa", data={"code": "000000", "csrf_token": csrf_token(client, "/portal/mfa")}
    )
    assert wrong.status_code == 401 and client.get("/portal/").status_code == 302
    secret = next(s for s in demo["staff"] if s["role"] == "manager")["totp_secret"]
    token = csrf_token(client, "/portal/mfa")
    right = client.post("/portal/mfa", data={"code": totp_code(secret), "csrf_token": token})
    assert right.status_code == 303
    assert client.get("/portal/").status_code == 200
    assert actions(db)[-3:] == ["login", "mfa.passed.failed", "mfa.passed"]


def test_first_sign_in_enrols_with_a_qr_code_and_recovery_codes(
    app: Any, demo: Any, db: Database
) -> None:
    new_manager(db)
    client = app.test_client()
    assert password_only(client, "mia", "mia-password-1").status_code == 303
    assert client.get("/portal/").headers["Location"] == "/portal/mfa/enrol"
    page = client.get("/portal/mfa/enrol").get_data(as_text=True)
    png = re.search(r'src="data:image/png;base64,([^"]+)"', page)
    assert png
    [decoded] = zxingcpp.read_barcodes(Image.open(io.BytesIO(base64.b64decode(png.group(1)))))
    assert decoded.text.startswith("otpauth://totp/Kassa:mia?secret=")
    secret = pyotp.parse_uri(decoded.text).secret
    assert secret in page  # the secret in text too, for typing it in
    with db.unit_of_work() as uow:
        stored = uow.session.scalars(select(StaffUser).where(StaffUser.username == "mia")).one()
        assert stored.totp_secret and secret not in stored.totp_secret  # encrypted at rest
    assert client.get("/portal/mfa/enrol").get_data(as_text=True).count(secret) >= 1
    token = csrf_token(client, "/portal/mfa/enrol")
    bad = client.post("/portal/mfa/enrol", data={"code": "123456", "csrf_token": token})
    assert bad.status_code == 422
    done = client.post(
        "/portal/mfa/enrol", data={"code": pyotp.TOTP(secret).now(), "csrf_token": token}
    )
    codes = re.findall(r"<li>([a-z2-7]{5}-[a-z2-7]{5})</li>", done.get_data(as_text=True))
    assert len(codes) == 10
    assert client.get("/portal/").status_code == 200
    with db.unit_of_work() as uow:
        stored = uow.session.scalars(select(StaffUser).where(StaffUser.username == "mia")).one()
        assert codes[0].replace("-", "") not in str(stored.recovery_codes)  # hashed
    # A recovery code signs in once, never twice.
    for expected in (303, 401):
        other = app.test_client()
        password_only(other, "mia", "mia-password-1")
        token = csrf_token(other, "/portal/mfa")
        response = other.post("/portal/mfa", data={"code": codes[0], "csrf_token": token})
        assert response.status_code == expected


def test_step_up_asks_again_after_the_window(app: Any, demo: Any, db: Database) -> None:
    client = app.test_client()
    log_in(client, *staff(demo, "manager"))
    assert admin_post(client, "/portal/stores", name="A", city="B").status_code == 303
    with client.session_transaction() as session:
        session["mfa_at"] -= 301  # [security] step_up_seconds = 300
    response = client.post(
        "/portal/stores",
        data={"name": "C", "city": "D", "csrf_token": csrf_token(client, "/portal/staff")},
        headers={"Referer": "http://localhost/portal/staff"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/portal/mfa/step-up?next=/portal/staff"
    secret = next(s for s in demo["staff"] if s["role"] == "manager")["totp_secret"]
    token = csrf_token(client, "/portal/mfa/step-up")
    for ahead in (0, 1):  # the sign-in used this step's code already
        confirmed = client.post(
            "/portal/mfa/step-up?next=/portal/staff",
            data={"code": totp_code(secret, ahead), "csrf_token": token},
        )
        if confirmed.status_code == 303:
            break
    assert confirmed.headers["Location"] == "/portal/staff"
    assert admin_post(client, "/portal/stores", name="C", city="D").status_code == 303
    with db.unit_of_work() as uow:
        names = set(uow.session.scalars(select(Store.name)))
    assert {"A", "C"} <= names


def throttled_app(app: Any) -> list[datetime]:
    now = [datetime(2026, 12, 6, 12, 0, tzinfo=UTC)]
    app.extensions["kassa.clock"] = lambda: now[0]
    return now


def test_wrong_passwords_slow_down_then_lock_the_account(app: Any, demo: Any, db: Database) -> None:
    now = throttled_app(app)
    client = app.test_client()
    username, password = staff(demo, "manager")
    for _ in range(5):  # login_free_failures = 5: no waiting yet
        assert password_only(client, username, "wrong").status_code == 401
    paused = password_only(client, username, password)  # even the right one waits now
    assert paused.status_code == 429 and paused.headers["Retry-After"] == "1"
    now[0] += timedelta(seconds=1)
    for expected_wait in (2, 4, 8, 16):
        assert password_only(client, username, "wrong").status_code == 401
        blocked = password_only(client, username, "wrong")
        assert blocked.status_code == 429
        assert blocked.headers["Retry-After"] == str(expected_wait)
        now[0] += timedelta(seconds=expected_wait)
    assert password_only(client, username, "wrong").status_code == 401  # the 10th: lockout
    locked = password_only(client, username, password)
    assert locked.status_code == 429 and locked.headers["Retry-After"] == "900"
    now[0] += timedelta(seconds=900)
    assert password_only(client, username, password).status_code == 303
    assert actions(db).count("login.failed") == 10


def test_an_unknown_name_is_answered_like_a_known_one(app: Any, demo: Any) -> None:
    throttled_app(app)
    client = app.test_client()
    answers = []
    for username in ("manager", "nobody-here"):
        for _ in range(5):
            response = password_only(client, username, "wrong")
            answers.append((response.status_code, "wrong username or password" in response.text))
        answers.append((password_only(client, username, "wrong").status_code, True))
    assert answers[:6] == answers[6:] == [(401, True)] * 5 + [(429, True)]


def test_many_accounts_from_one_address_are_throttled_too(app: Any, demo: Any) -> None:
    throttled_app(app)
    client = app.test_client()
    for n in range(20):  # login_address_free_failures = 20
        assert password_only(client, f"guess{n}", "wrong").status_code == 401
    assert password_only(client, *staff(demo, "manager")).status_code == 429


def test_logout_ends_every_session_of_that_person(app: Any, demo: Any) -> None:
    first, second = app.test_client(), app.test_client()
    log_in(first, *staff(demo, "manager"))
    log_in(second, *staff(demo, "manager"))
    copied = first.get_cookie("kassa_session")
    assert copied and first.get("/portal/").status_code == 200
    token = csrf_token(first, "/portal/")
    assert first.post("/portal/logout", data={"csrf_token": token}).status_code == 303
    assert second.get("/portal/").status_code == 302  # the other browser is signed out too
    thief = app.test_client()
    thief.set_cookie("kassa_session", copied.value)
    assert thief.get("/portal/").status_code == 302


def test_deactivation_and_password_change_end_sessions(app: Any, demo: Any, db: Database) -> None:
    cashier = app.test_client()
    token = csrf_token(cashier, "/cashier/login")
    cashier.post(
        "/cashier/login",
        data=dict(zip(("username", "password"), staff(demo, "cashier"), strict=True))
        | {"csrf_token": token},
    )
    assert cashier.get("/cashier/").headers.get("Location") != "/cashier/login"
    manager = app.test_client()
    log_in(manager, *staff(demo, "manager"))
    _, password = staff(demo, "manager")
    token = csrf_token(manager, "/portal/password")
    changed = manager.post(
        "/portal/password",
        data={"current": password, "new": "a-new-password-9", "repeat": "a-new-password-9",
              "csrf_token": token},
    )  # fmt: skip
    assert changed.status_code == 303
    assert manager.get("/portal/").status_code == 200  # this session goes on
    with db.unit_of_work() as uow:
        cashier_user = uow.session.scalars(
            select(StaffUser).where(StaffUser.username == "cashier")
        ).one()
        admin.set_active(uow, cashier_user.merchant_id, cashier_user.id, False)
        uow.commit()
    assert cashier.get("/cashier/").headers.get("Location") == "/cashier/login"
    assert {"password.changed", "staff.deactivated"} <= set(actions(db))


def test_cookies_are_secure_over_https_and_pages_are_not_cached(app: Any, demo: Any) -> None:
    client = app.test_client()
    plain = client.get("/portal/login")
    assert plain.headers["Cache-Control"] == "no-store"
    assert "Secure" not in plain.headers.get("Set-Cookie", "")
    secure = app.test_client().get("/portal/login", base_url="https://kassa.example")
    assert "Secure" in secure.headers["Set-Cookie"]
    assert app.test_client().get("/cashier/login").headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("trusted", [0, 1])
def test_forwarded_proto_counts_only_from_a_trusted_proxy(db: Database, trusted: int) -> None:
    from gateway.entrypoints.app import create_app
    from tests.conftest import app_config

    application = create_app(app_config(db, security={"trusted_proxies": trusted}), db=db)
    response = application.test_client().get(
        "/portal/login", headers={"X-Forwarded-Proto": "https"}
    )
    assert ("Secure" in response.headers["Set-Cookie"]) == bool(trusted)


def admin_post(client: FlaskClient, path: str, **data: str) -> Any:
    token = csrf_token(client, "/portal/staff")
    return client.post(path, data={**data, "csrf_token": token})


def test_managers_administer_staff_tills_and_keys(
    app: Any, demo: Any, db: Database, live_server: Any
) -> None:
    import requests

    manager = app.test_client()
    log_in(manager, *staff(demo, "manager"))
    page = manager.get("/portal/staff").get_data(as_text=True)
    assert 'data-username="cashier"' in page and 'data-till="Berlin Mitte/T01"' in page
    assert "<option>owner</option>" not in page  # a manager cannot make owners
    made = admin_post(
        manager, "/portal/staff", username="nina", display_name="Nina", role="cashier", store=""
    )
    temporary = re.search(r'id="shown-secret">([^<]+)<', made.get_data(as_text=True))
    assert made.status_code == 200 and temporary
    refused = admin_post(manager, "/portal/staff", username="olaf", role="owner", store="")
    assert refused.status_code == 422 and "cannot give the role owner" in refused.text
    # Nina must choose her own password before anything else.
    nina = app.test_client()
    token = csrf_token(nina, "/cashier/login")
    nina.post(
        "/cashier/login",
        data={"username": "nina", "password": temporary.group(1), "csrf_token": token},
    )
    assert nina.get("/cashier/").headers["Location"] == "/portal/password"
    token = csrf_token(nina, "/portal/password")
    changed = nina.post(
        "/portal/password",
        data={"current": temporary.group(1), "new": "a-good-pass-42", "repeat": "a-good-pass-42",
              "csrf_token": token},
    )  # fmt: skip
    assert changed.status_code == 303 and changed.headers["Location"] == "/cashier/"
    # Rotate T01's key: the old one overlaps for the grace period, then stops.
    with db.unit_of_work() as uow:
        till_id = next(
            t.id
            for t in admin.list_tills(uow, 1)
            if t.label == "T01" and t.store.name == "Berlin Mitte"
        )
    old_key = demo["tills"][0]["api_key"]
    rotated = admin_post(manager, f"/portal/tills/{till_id}/rotate-key")
    new_key = re.search(r'id="shown-secret">([^<]+)<', rotated.get_data(as_text=True))
    assert new_key and new_key.group(1).startswith("kt_")

    def status(key: str) -> int:
        return requests.get(
            f"{live_server.url}/api/v1/payments/none",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        ).status_code

    assert status(new_key.group(1)) == 404 and status(old_key) == 404  # both accepted
    with db.unit_of_work() as uow:  # the grace period ends
        till = uow.session.get_one(Till, till_id)
        assert till.previous_key_expires_at is not None
        till.previous_key_expires_at = datetime.now(UTC) - timedelta(seconds=1)
        uow.commit()
    assert status(old_key) == 401 and status(new_key.group(1)) == 404
    with db.unit_of_work() as uow:
        admin.rotate_key(uow, 1, till_id, grace=timedelta(0))  # no overlap this time
        uow.commit()
    assert status(new_key.group(1)) == 401
    revoked = admin_post(manager, f"/portal/tills/{till_id}/revoke-key")
    assert revoked.status_code == 303
    made = admin_post(manager, "/portal/tills", store="", label="T09")
    assert made.status_code == 422
    assert {"staff.created", "password.changed", "till.key_rotated", "till.key_revoked"} <= set(
        actions(db)
    )


def test_cli_administers_and_verifies(db: Database, demo: Any) -> None:
    from tests.integration.test_audit_trail import kassa

    made = kassa(db, "admin", "staff", "create", "--username", "paul", "--role", "manager")
    assert made.exit_code == 0, made.output
    assert "temporary password" in made.output
    bad = kassa(db, "admin", "staff", "create", "--username", "paul", "--role", "manager")
    assert bad.exit_code == 2 and "taken" in bad.output
    store = kassa(db, "admin", "store", "create", "--name", "Potsdam", "--city", "Potsdam",
                  "--timezone", "Europe/Berlin")  # fmt: skip
    assert store.exit_code == 0, store.output
    till = kassa(db, "admin", "till", "create", "--store", "Potsdam", "--label", "P01")
    assert till.exit_code == 0 and "kt_" in till.output
    rotated = kassa(db, "admin", "till", "rotate-key", "--till", "Potsdam/P01")
    assert rotated.exit_code == 0 and "kt_" in rotated.output
    revoked = kassa(db, "admin", "till", "revoke-key", "--till", "Potsdam/P01")
    assert revoked.exit_code == 0
    back = kassa(db, "admin", "till", "reactivate", "--till", "Potsdam/P01")
    assert back.exit_code == 0 and "kt_" in back.output
    missing = kassa(db, "admin", "till", "revoke-key", "--till", "Nowhere/X")
    assert missing.exit_code == 2 and "no till" in missing.output
    off = kassa(db, "admin", "staff", "deactivate", "--username", "paul")
    assert off.exit_code == 0
    reset = kassa(db, "admin", "staff", "reset-password", "--username", "cashier")
    assert reset.exit_code == 0 and "temporary password" in reset.output
    assert kassa(db, "admin", "staff", "list").output.count("paul") == 1
    with db.unit_of_work() as uow:
        sources = set(uow.session.scalars(select(AuditEntry.source)))
    assert "cli" in sources
    assert kassa(db, "audit", "verify").exit_code == 0


def test_a_large_promotion_budget_needs_a_fresh_code(app: Any, demo: Any, db: Database) -> None:
    from tests.integration.test_promotion_pages import THRESHOLD_FORM

    client = app.test_client()
    log_in(client, *staff(demo, "manager"))
    with client.session_transaction() as session:
        session["mfa_at"] -= 301
    form = {**THRESHOLD_FORM, "budget": "1000.00"}
    token = csrf_token(client, "/portal/promotions/new")
    refused = client.post("/portal/promotions/new", data={**form, "csrf_token": token})
    assert refused.status_code == 422 and "needs your authenticator code" in refused.text
    small = client.post(
        "/portal/promotions/new", data={**form, "budget": "500.00", "key": "s", "csrf_token": token}
    )
    assert small.status_code == 303  # at the limit: no code needed
    secret = next(s for s in demo["staff"] if s["role"] == "manager")["totp_secret"]
    for ahead in (0, 1):  # the sign-in used this step's code already
        sent = client.post(
            "/portal/promotions/new",
            data={**form, "step_up_code": totp_code(secret, ahead), "csrf_token": token},
        )
        if sent.status_code == 303:
            break
    assert sent.status_code == 303
    assert "promotion.created" in actions(db) and "mfa.step_up" in actions(db)


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/portal/staff?x=1", "/portal/staff?x=1"), ("//evil.example/", "/portal/"),
     ("/\\evil.example/", "/portal/"), ("https://evil.example/", "/portal/"),
     ("portal", "/portal/"), (None, "/portal/")],
)  # fmt: skip
def test_step_up_returns_only_to_this_site(target: str | None, expected: str) -> None:
    from merchant_portal.identity import local_path

    assert local_path(target, "/portal/") == expected


def test_guessing_codes_is_throttled(app: Any, demo: Any, db: Database) -> None:
    from gateway.services.staff import mfa

    now = throttled_app(app)
    client = app.test_client()
    password_only(client, *staff(demo, "manager"))
    secret = next(s for s in demo["staff"] if s["role"] == "manager")["totp_secret"]
    token = csrf_token(client, "/portal/mfa")
    right = mfa.code_at(secret, now[0])
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(5):
        response = client.post("/portal/mfa", data={"code": wrong, "csrf_token": token})
        assert response.status_code == 401
    paused = client.post("/portal/mfa", data={"code": right, "csrf_token": token})
    assert paused.status_code == 429 and paused.headers["Retry-After"] == "1"
    now[0] += timedelta(seconds=1)
    right = mfa.code_at(secret, now[0])
    assert client.post("/portal/mfa", data={"code": right, "csrf_token": token}).status_code == 303
    assert actions(db).count("mfa.passed.failed") == 5


def test_a_store_manager_administers_and_reads_only_their_store(
    app: Any, demo: Any, db: Database
) -> None:
    from gateway.adapters.models import Store, Till
    from gateway.services.staff import audit, mfa

    secret = pyotp.random_base32()
    with db.unit_of_work() as uow:
        mitte, kreuzberg = (
            uow.session.scalars(select(Store).where(Store.name == name)).one()
            for name in ("Berlin Mitte", "Berlin Kreuzberg")
        )
        user = StaffUser(
            merchant_id=mitte.merchant_id, store_id=mitte.id, username="sm", display_name="Sam",
            role="manager", active=True, password_hash=hash_password("sam-password-1"),
        )  # fmt: skip
        uow.session.add(user)
        uow.session.flush()
        mfa.enrol_with_secret(uow, user, secret)
        far_till = uow.session.scalars(select(Till).where(Till.store_id == kreuzberg.id)).first()
        assert far_till
        for store in (mitte, kreuzberg):
            audit.record(uow, f"test.{store.id}", merchant_id=store.merchant_id, store_id=store.id)
        ids = (mitte.id, kreuzberg.id, far_till.id)
        uow.commit()
    client = app.test_client()
    password_only(client, "sm", "sam-password-1")
    token = csrf_token(client, "/portal/mfa")
    client.post("/portal/mfa", data={"code": pyotp.TOTP(secret).now(), "csrf_token": token})
    page = client.get("/portal/audit").get_data(as_text=True)
    assert f'data-action="test.{ids[0]}"' in page and f'data-action="test.{ids[1]}"' not in page
    other = client.get(f"/portal/audit?store={ids[1]}").get_data(as_text=True)
    assert f'data-action="test.{ids[1]}"' not in other
    assert admin_post(client, f"/portal/tills/{ids[2]}/revoke-key").status_code == 404
    assert 'data-till="Berlin Kreuzberg/T01"' not in client.get("/portal/staff").text
    refused = admin_post(client, "/portal/staff", username="kim", role="cashier", store=str(ids[1]))
    assert refused.status_code == 422


def test_failures_are_forgotten_after_a_quiet_spell(app: Any, demo: Any) -> None:
    now = throttled_app(app)
    client = app.test_client()
    for n in range(19):
        assert password_only(client, f"guess{n}", "wrong").status_code == 401
    now[0] += timedelta(seconds=901)  # longer than login_lockout_seconds
    for n in range(19):
        assert password_only(client, f"again{n}", "wrong").status_code == 401
    assert password_only(client, *staff(demo, "manager")).status_code == 303
