"""Fixtures for the sandbox bank: an app on a temporary database, the same app on a real
port, and a callback receiver on another."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from sandbox_bank import state
from sandbox_bank.app import create_app
from sandbox_bank.models import Database
from tests.sandbox_bank.helpers import (
    DEMO,
    OTHER,
    OTHER_SECRET,
    Late,
    Receiver,
    Server,
    sandbox_config,
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    recv = Receiver(secrets={OTHER: OTHER_SECRET})
    server = Server(recv)
    recv.url = server.url
    yield recv
    server.close()


PG_URL = os.environ.get("KASSA_TEST_DATABASE_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The sandbox bank's database: a SQLite file, or a fresh PostgreSQL schema when configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sandbox-bank.db'}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL: set KASSA_TEST_DATABASE_URL to run")
    schema = f"sandbox_bank_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = Database(PG_URL)
    with admin.engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def app(tmp_path: Path, receiver: Receiver, database_url: str) -> Iterator[Flask]:
    flask_app = create_app(sandbox_config(tmp_path, receiver.url, database_url=database_url))
    receiver.secrets[DEMO] = state.of(flask_app).settings.merchant(DEMO).webhook_secret  # type: ignore[union-attr]
    yield flask_app
    state.of(flask_app).close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def auth(app: Flask) -> dict[str, str]:
    key = state.of(app).settings.merchant(DEMO).api_key  # type: ignore[union-attr]
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def live(tmp_path: Path, receiver: Receiver, database_url: str) -> Iterator[tuple[Flask, str]]:
    """The sandbox bank on a real port; its ``url`` setting is that port."""
    late = Late()
    server = Server(late)
    config = sandbox_config(tmp_path, receiver.url, url=server.url, database_url=database_url)
    flask_app = create_app(config)
    receiver.secrets[DEMO] = state.of(flask_app).settings.merchant(DEMO).webhook_secret  # type: ignore[union-attr]
    late.target = flask_app
    yield flask_app, server.url
    server.close()
    state.of(flask_app).close()
