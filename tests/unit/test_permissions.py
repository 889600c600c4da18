"""The permission matrix, the endpoint map and docs/access.md agree, and the guard fails closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from gateway.config import load_config
from gateway.entrypoints import access
from gateway.services.staff import permissions
from tests.conftest import isolated_env

DOC = Path(__file__).resolve().parents[2] / "docs" / "access.md"


@pytest.fixture(scope="module")
def app() -> Flask:
    from gateway.entrypoints.app import create_app

    config = load_config(
        env=isolated_env(),
        overrides={"database": {"url": "sqlite://"}, "web": {"secret_key": "unit-test"}},
    )
    return create_app(config)


def test_every_route_of_the_url_map_is_in_the_endpoint_map(app: Flask) -> None:
    routes = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert sorted(routes - set(access.ENDPOINTS)) == [], "add these to access.ENDPOINTS"
    assert sorted(set(access.ENDPOINTS) - routes) == [], "these endpoints no longer exist"


def test_every_permission_the_map_names_is_in_the_matrix() -> None:
    named = {
        name for rule in access.ENDPOINTS.values() for name in (rule.permission, rule.post) if name
    }
    assert sorted(named - set(permissions.PERMISSIONS)) == []
    for rule in access.ENDPOINTS.values():
        assert (rule.permission is None) == (rule.audience in ("public", "bank-signed", "operator"))


def test_the_docs_show_the_matrix_and_every_endpoint_as_the_code_has_them(app: Flask) -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert permissions.matrix_table() in doc, "run python -m gateway.entrypoints.access"
    assert access.endpoint_table(access.app_paths(app)) in doc


def test_a_route_missing_from_the_map_is_not_served() -> None:
    from gateway.entrypoints.app import create_app

    config = load_config(
        env=isolated_env(),
        overrides={"database": {"url": "sqlite://"}, "web": {"secret_key": "unit-test"}},
    )
    fresh = create_app(config)

    def secret() -> Any:
        return "the view ran"

    fresh.add_url_rule("/portal/forgotten", "portal.forgotten", secret)
    response = fresh.test_client().get("/portal/forgotten")
    assert response.status_code == 404
    assert b"the view ran" not in response.data


@pytest.mark.parametrize(
    ("role", "store_id", "name", "allowed"),
    [
        ("cashier", 1, "payment.refund", True),
        ("cashier", 1, "portal.view", False),
        ("supervisor", 1, "approval.grant", True),
        ("cashier", 1, "approval.grant", False),
        ("manager", 1, "portal.view", True),
        ("manager", 1, "settlement.view", False),  # a store manager: merchant-wide is refused
        ("manager", None, "settlement.view", True),  # an area manager
        ("owner", 1, "settlement.decide", True),  # owners see every store whatever store_id says
        ("auditor", None, "settlement.view", True),
        ("auditor", None, "settlement.decide", False),
        ("auditor", None, "payment.refund", False),
        ("till", 1, "payment.refund", True),
        ("till", 1, "till.use", False),
        ("owner", None, "no.such.permission", False),
        ("janitor", None, "payment.view", False),
    ],
)
def test_the_matrix(role: str, store_id: int | None, name: str, allowed: bool) -> None:
    assert permissions.allowed(role, name, store_id=store_id) is allowed


def test_owners_and_auditors_are_never_bound_to_one_store() -> None:
    assert permissions.effective_store("owner", 7) is None
    assert permissions.effective_store("auditor", 7) is None
    assert permissions.effective_store("manager", 7) == 7
