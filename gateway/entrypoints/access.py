"""Every endpoint's guard, in one place: who may call it, checked before any view runs.

``ENDPOINTS`` maps each Flask endpoint to its audience and the permission it needs
(``gateway/services/staff/permissions.py`` says which roles hold it):

- ``public``: anyone (sign-in pages, health check, static files, the OpenAPI document);
- ``bank-signed``: the bank's callbacks, which carry their own signature (checked by the view);
- ``till-key``: a till's API key (``Authorization: Bearer kt_…``), acting as the role ``till``;
- ``staff``: a signed-in person whose role holds the permission (a form's POST may need a
  second one, ``post``).
- ``operator``: a monitoring system (``/metrics``): ``Authorization: Bearer`` with
  ``[web] metrics_token``, or, when that is empty, a request from a loopback address that did
  not come through a proxy (no ``X-Forwarded-For``).

An endpoint missing from the map answers 404 (fail closed), and the route test fails for it.
Whether an *object* is inside the caller's store or merchant is not checked here but in the
services' queries (``gateway/services/staff/scope.py``): outside, an id is "not found".
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from typing import Any, Literal

from flask import Flask, abort, current_app, g, jsonify, redirect, render_template, request, url_for

from gateway.adapters.db import Database
from gateway.errors import Forbidden, Unauthorised
from gateway.services.staff import permissions
from gateway.services.staff.audit_context import Acting, set_acting
from gateway.services.staff.auth import StaffContext, TillContext, authenticate_till

Audience = Literal["public", "bank-signed", "till-key", "staff", "operator"]


@dataclass(frozen=True, slots=True)
class Rule:
    audience: Audience
    permission: str | None = None
    post: str | None = None  # the permission a POST to the same endpoint needs, if another

    def needs(self, method: str) -> str | None:
        if method == "POST" and self.post:
            return self.post
        return self.permission


PUBLIC = Rule("public")


def till(permission: str) -> Rule:
    return Rule("till-key", permission)


def staff(permission: str, post: str | None = None) -> Rule:
    return Rule("staff", permission, post)


ENDPOINTS: dict[str, Rule] = {
    # the application
    "index": PUBLIC,
    "healthz": PUBLIC,
    "readyz": PUBLIC,
    "metrics": Rule("operator"),
    "static": PUBLIC,
    # /bank: the bank signs its callbacks (Standard Webhooks), the view checks the signature
    "bank.receive_callback": Rule("bank-signed"),
    # /api/v1: tills, by API key
    "api.openapi": PUBLIC,
    "api.create_payment": till("payment.create"),
    "api.get_payment": till("payment.view"),
    "api.payment_qr": till("payment.view"),
    "api.cancel_payment": till("payment.cancel"),
    "api.create_refund": till("payment.refund"),
    "api.list_payment_refunds": till("payment.view"),
    "api.approvals.create_approval": till("approval.request"),
    "api.sales.create_sale": till("sale.create"),
    "api.sales.get_sale": till("sale.view"),
    "api.sales.pay_sale": till("sale.create"),
    # /api/v1 for a manager's own systems: the view signs the manager in with HTTP Basic and
    # checks `payment.bank_money` itself (as the bank's callbacks check their signature)
    "api.attention.accept": PUBLIC,
    "api.attention.refund": PUBLIC,
    # /cashier: people at a till
    "cashier.login": PUBLIC,
    "cashier.logout": PUBLIC,
    "cashier.index": staff("till.use"),
    "cashier.choose_till": staff("till.use"),
    "cashier.create_payment": staff("payment.create"),
    "cashier.payment_screen": staff("payment.view"),
    "cashier.payment_status": staff("payment.view"),
    "cashier.live.payment_events": staff("payment.view"),
    "cashier.payment_qr": staff("payment.view"),
    "cashier.cancel_payment": staff("payment.cancel"),
    "cashier.issue_receipt": staff("payment.view"),
    "cashier.refunds.recent_payments": staff("till.use"),
    "cashier.refunds.refund_payment": staff("payment.view", post="payment.refund"),
    "cashier.sales.basket": staff("sale.create"),
    "cashier.sales.price_basket": staff("sale.create"),
    "cashier.sales.sale_page": staff("sale.view"),
    "cashier.sales.pay_sale": staff("sale.create"),
    # /r: a customer's e-receipt; the unguessable token in the link is the only key
    "receipts.receipt_page": PUBLIC,
    "receipts.receipt_consent": PUBLIC,
    # /portal: managers, owners, auditors
    "portal.login": PUBLIC,
    "portal.logout": PUBLIC,
    "portal.index": staff("portal.view"),
    "portal.dashboard_csv": staff("portal.view"),
    "portal.payments": staff("portal.view"),
    "portal.payment_detail": staff("portal.view"),
    "portal.resolve_payment": staff("payment.resolve"),
    "portal.resolve_refund": staff("payment.resolve"),
    "portal.devices": staff("portal.view"),
    "portal.end_of_day": staff("devices.end_of_day"),
    "portal.attention.accept": staff("payment.bank_money"),
    "portal.attention.refund": staff("payment.bank_money"),
    "portal.events.events": staff("events.view"),
    "portal.events.event": staff("events.view"),
    "portal.events.replay": staff("events.replay"),
    # anomaly alerts (merchant_portal/alerts.py scopes a store's staff to its alerts)
    "portal.alerts.alerts": staff("alerts.view"),
    "portal.alerts.alert": staff("alerts.view"),
    "portal.alerts.acknowledge": staff("alerts.manage"),
    "portal.alerts.alert_thresholds": staff("alerts.configure"),
    "portal.alerts.opening_hours": staff("alerts.configure"),
    "portal.settings.approval_limits": staff("settings.manage"),
    # webhooks to the merchant's own systems (webhooks.py)
    "portal.webhooks.endpoints_page": staff("webhooks.view", post="webhooks.manage"),
    "portal.webhooks.endpoint_detail": staff("webhooks.view"),
    "portal.webhooks.pause_endpoint": staff("webhooks.manage"),
    "portal.webhooks.resume_endpoint": staff("webhooks.manage"),
    "portal.webhooks.delete_endpoint": staff("webhooks.manage"),
    "portal.webhooks.test_endpoint": staff("webhooks.manage"),
    "portal.webhooks.delivery_detail": staff("webhooks.view"),
    "portal.webhooks.send_delivery": staff("webhooks.manage"),
    "portal.customers.customer_record": staff("customer.view"),
    "portal.customers.customer_export": staff("customer.view"),
    "portal.customers.customer_forget": staff("customer.forget"),
    "portal.promotions.promotions": staff("promotion.view"),
    "portal.promotions.promotion_new": staff("promotion.manage"),
    "portal.promotions.promotion_detail": staff("promotion.view"),
    "portal.promotions.promotion_activate": staff("promotion.manage"),
    "portal.promotions.promotion_pause": staff("promotion.manage"),
    "portal.promotions.promotion_resume": staff("promotion.manage"),
    "portal.promotions.promotion_end": staff("promotion.manage"),
    "portal.promotions.promotion_coupons": staff("promotion.manage"),
    "portal.promotions.promotion_coupons_csv": staff("promotion.manage"),
    "portal.promotions.experiments": staff("promotion.view", post="promotion.manage"),
    "portal.promotions.experiment_detail": staff("promotion.view"),
    "portal.settlement.settlement_calendar": staff("settlement.view"),
    "portal.settlement.settlement_run": staff("settlement.run"),
    "portal.settlement.settlement_day": staff("settlement.view"),
    "portal.settlement.settlement_files": staff("settlement.view"),
    "portal.settlement.settlement_file": staff("settlement.view"),
    "portal.settlement.settlement_day_csv": staff("settlement.view"),
    "portal.settlement.settlement_exceptions": staff("settlement.view"),
    "portal.settlement.settlement_exceptions_csv": staff("settlement.view"),
    "portal.settlement.settlement_result": staff("settlement.view"),
    "portal.settlement.settlement_decide": staff("settlement.decide"),
    "portal.settlement.settlement_reopen": staff("settlement.decide"),
    # the second factor and one's own password (identity.py): reachable before the code is typed
    "portal.identity.enrol": staff("portal.view"),
    "portal.identity.second_factor": staff("portal.view"),
    "portal.identity.step_up": staff("portal.view"),
    "portal.identity.change_password": staff("account.own"),
    "portal.identity.set_language": staff("account.own"),
    # the audit trail (a store's manager reads only their store's rows)
    "portal.audit.audit_log": staff("audit.read"),
    "portal.audit.audit_csv": staff("audit.read"),
    # staff, stores, tills and keys (administration.py scopes a store's manager to it)
    "portal.staff_admin.staff_page": staff("staff.manage"),
    "portal.staff_admin.create_staff": staff("staff.manage"),
    "portal.staff_admin.deactivate_staff": staff("staff.manage"),
    "portal.staff_admin.reactivate_staff": staff("staff.manage"),
    "portal.staff_admin.reset_password": staff("staff.manage"),
    "portal.staff_admin.set_staff_language": staff("staff.manage"),
    "portal.staff_admin.reset_second_factor": staff("staff.manage"),
    "portal.staff_admin.create_store": staff("store.create"),
    "portal.staff_admin.create_till": staff("staff.manage"),
    "portal.staff_admin.rotate_key": staff("staff.manage"),
    "portal.staff_admin.revoke_key": staff("staff.manage"),
    "portal.staff_admin.reactivate_till": staff("staff.manage"),
}
# Portal pages a person reaches before passing the second factor (the rest wait for it).
BEFORE_SECOND_FACTOR = frozenset(
    {
        "portal.identity.enrol",
        "portal.identity.second_factor",
        "portal.identity.change_password",
        "portal.identity.set_language",
    }
)
# Where a person who is not signed in is sent, by the endpoint's first blueprint.
LOGIN_PAGES = {"cashier": "cashier.login", "portal": "portal.login"}
# Endpoints that a page polls with fetch() or streams (EventSource): they answer 401 JSON
# instead of a redirect.
POLLED = frozenset({"cashier.payment_status", "cashier.live.payment_events"})


def rule_for(endpoint: str) -> Rule | None:
    return ENDPOINTS.get(endpoint)


def calling_till() -> TillContext:
    """The till whose API key signed this request (authenticated once, by the guard)."""
    found: TillContext | None = g.get("kassa_till")
    if found is None:
        db: Database = g.kassa_db
        with db.read_connection() as conn:  # one statement, checked afresh on every request
            found = authenticate_till(conn, request.headers.get("Authorization"))
        g.kassa_till = found
        # the audit trail's who, role and store for this request's actions
        set_acting(Acting(found.actor, None, found.role, found.merchant_id, found.store_id))
    return found


def _guard_staff(rule: Rule, endpoint: str) -> Any:
    from gateway.entrypoints.staff_session import current_staff, second_factor_gate

    person: StaffContext | None = current_staff()
    area = endpoint.split(".")[0]
    if person is None:
        if endpoint in POLLED:
            response = jsonify(error="signed_out", login_url=url_for(LOGIN_PAGES[area]))
            response.status_code = 401
            return response
        return redirect(url_for(LOGIN_PAGES.get(area, "cashier.login")))
    needed = rule.needs(request.method)
    if needed is not None and person.can(needed):
        if area == "portal" and endpoint not in BEFORE_SECOND_FACTOR:
            return second_factor_gate(person)
        return None
    if area == "portal" and not person.can("portal.view"):
        return render_template("portal/forbidden.html", staff=person), 403
    raise Forbidden(_refusal(person, needed), permission=needed)


def _refusal(person: StaffContext, needed: str | None) -> str:
    perm = permissions.PERMISSIONS.get(needed or "")
    if perm is None:
        return "this page is not open to anyone"
    if person.role in perm.roles and perm.merchant_wide:
        return f"only staff who work for every store may {perm.description}"
    return f"a {person.role} may not {perm.description}"


def _guard_operator() -> None:
    token: str = current_app.extensions["kassa.settings"].web.metrics_token
    if token:
        sent = request.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            raise Unauthorised(
                "send the metrics token: Authorization: Bearer <[web] metrics_token>"
            )
        return
    if "X-Forwarded-For" in request.headers or not _loopback(request.remote_addr):
        raise Forbidden("without [web] metrics_token, /metrics answers only on this machine")


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def guard() -> Any:
    """The before-request check for every endpoint of the app."""
    endpoint = request.endpoint
    if endpoint is None:
        return None  # no route matched: Flask answers 404 itself
    rule = ENDPOINTS.get(endpoint)
    if rule is None:
        abort(404)  # fail closed: a route nobody put in the map is not served
    if rule.audience in ("public", "bank-signed"):
        return None
    if rule.audience == "operator":
        return _guard_operator()
    if rule.audience == "till-key":
        till_ctx = calling_till()  # 401 problem without a valid key
        needed = rule.needs(request.method)
        if needed is None or not till_ctx.can(needed):
            raise Forbidden(f"a till's key may not use {endpoint}", permission=needed)
        return None
    return _guard_staff(rule, endpoint)


def install(app: Flask, db: Database) -> None:
    @app.before_request
    def _access() -> Any:
        g.kassa_db = db
        return guard()


def endpoint_table(paths: dict[str, str]) -> str:
    """Every endpoint with its path and who may call it, as a Markdown table (docs/access.md
    holds a copy that a test compares with this)."""
    rows = ["| endpoint | path | who | permission |", "|---|---|---|---|"]
    for endpoint in sorted(ENDPOINTS):
        rule = ENDPOINTS[endpoint]
        needs = f"`{rule.permission}`" if rule.permission else ""
        if rule.post:
            needs += f" (POST: `{rule.post}`)"
        rows.append(f"| `{endpoint}` | `{paths.get(endpoint, '?')}` | {rule.audience} | {needs} |")
    return "\n".join(rows)


def app_paths(app: Flask) -> dict[str, str]:
    """Each endpoint's path (the first, if it has several)."""
    paths: dict[str, str] = {}
    for rule in app.url_map.iter_rules():
        paths.setdefault(rule.endpoint, rule.rule)
    return paths


if __name__ == "__main__":  # print the tables for docs/access.md
    from gateway.config import load_config
    from gateway.entrypoints.app import create_app

    config = load_config(overrides={"database": {"url": "sqlite://"}, "web": {"secret_key": "-"}})
    print(permissions.matrix_table(), end="\n\n")
    print(endpoint_table(app_paths(create_app(config))))
