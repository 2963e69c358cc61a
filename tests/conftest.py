"""Test fixtures: a real app on a real database, with real HTTP to local fakes.

The database is SQLite in a temporary folder, or PostgreSQL when ``TEST_DATABASE_URL`` is
set (CI runs the suite once on each). The schema is created once per session; every test
starts from empty tables.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, make_url, text

from app import create_app
from db import db
from tests.fakes.smsapi_api import FakeSmsapi
from tests.fakes.twilio_api import FakeTwilio
from tests.fakes.twilio_voice import FakeTwilioVoice


# live_server, chromium_browser and page: one session-wide Playwright for every module.
pytest_plugins = ["tests.browser_support"]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLite in a temp folder, or a throwaway PostgreSQL database created next to the one
    TEST_DATABASE_URL names (so two test runs at once never share tables)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'syrena-test.db'}"
        return
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    base = make_url(url)
    name = f"{base.database}_syrena_{os.getpid()}"
    # pre_ping: a PostgreSQL restart during the run (tests/test_scheduler_outages.py) must not
    # leave a dead pooled connection for the final DROP DATABASE.
    admin = create_engine(base, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def _schema(database_url: str) -> Iterator[None]:
    """Create every table once (fresh), drop them at the end."""
    app = create_app(_base_config(database_url))
    with app.app_context():
        db.drop_all()
        _drop_alembic_version()
        db.create_all()
    yield
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


def _drop_alembic_version() -> None:
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


def _base_config(database_url: str) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SYRENA_ENV": "testing",
        # 32 random bytes, as production demands (a test may build a "production" app).
        "SECRET_KEY": "5f0c3be1a8e94d27b6c1f09a3e7d4b58c2a61f8e0d9b7c34a5e2f1d60b8c9a7e",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SYRENA_MUNICIPALITY": "kozy",
        "PUBLIC_BASE_URL": "https://alerty.example.pl",
        "SMS_BACKEND": "console",
        "WTF_CSRF_ENABLED": False,
        "SESSION_COOKIE_SECURE": False,
        # On by default in production (the environment's default); the TOTP tests turn it on.
        "STAFF_REQUIRE_TOTP": False,
        # Tests must not depend on the time of day; the quiet-hours tests set them explicitly.
        "QUIET_HOURS": "off",
    }


def _empty_tables() -> None:
    tables = list(reversed(db.metadata.sorted_tables))
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        with db.engine.begin() as conn:
            for table in tables:
                conn.execute(table.delete())


@pytest.fixture(scope="session")
def fake_twilio() -> Iterator[FakeTwilio]:
    # Messages and Calls: one fake Twilio API, as one account's TWILIO_API_BASE serves both.
    with FakeTwilioVoice() as fake:
        yield fake


@pytest.fixture
def twilio(fake_twilio: FakeTwilio) -> FakeTwilio:
    """The fake Twilio API, emptied for this test."""
    fake_twilio.reset()
    return fake_twilio


@pytest.fixture(scope="session")
def fake_smsapi() -> Iterator[FakeSmsapi]:
    with FakeSmsapi() as fake:
        yield fake


@pytest.fixture
def smsapi(fake_smsapi: FakeSmsapi) -> FakeSmsapi:
    """The fake SMSAPI, emptied for this test."""
    fake_smsapi.reset()
    return fake_smsapi


@pytest.fixture
def both(make_app: Callable[..., Flask], smsapi: FakeSmsapi) -> Callable[..., Flask]:
    """Build an app with Twilio and SMSAPI both configured (SMS_BACKEND=twilio,smsapi)."""

    def build(split: str | None = None, **overrides: Any) -> Flask:
        return make_app(SMS_BACKEND="twilio,smsapi", SMS_SPLIT=split, SMSAPI_TOKEN=smsapi.token,
                        SMSAPI_API_BASE=smsapi.base_url, SMSAPI_TIMEOUT=5.0, **overrides)

    return build


@pytest.fixture
def make_app(database_url: str, _schema: None, twilio: FakeTwilio) -> Iterator[Callable[..., Flask]]:
    """Build an app with overrides (its app context is pushed for the test); SMS go through
    the real twilio SDK to the fake Twilio."""
    apps: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        config = _base_config(database_url)
        config.update({
            "SMS_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": twilio.auth_token,
            "TWILIO_MESSAGING_SERVICE_SID": "MG" + "0" * 32,
            "TWILIO_API_BASE": twilio.base_url,
            "TWILIO_TIMEOUT": 5.0,
        })
        config.update(overrides)
        app = create_app(config)
        context = app.app_context()
        context.push()
        apps.append((app, context))
        return app

    yield factory
    for app, context in reversed(apps):
        context.pop()
    for app, _ in apps[:1]:
        with app.app_context():
            _empty_tables()
    for app, _ in apps:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask):  # noqa: ANN201
    return app.test_client()


@pytest.fixture
def runner(app: Flask):  # noqa: ANN201
    return app.test_cli_runner()


def send_queued_sms() -> int:
    """Send the residents' SMS outbox now, through the real drain the scheduler runs every
    second (a request only queues its texts). Needs the app context make_app pushes."""
    from subscribers.outbox import drain

    return drain()


def sent_sms(twilio: FakeTwilio) -> list[dict[str, Any]]:
    """Every SMS the fake Twilio got, after sending what was queued."""
    send_queued_sms()
    return twilio.messages


def last_code(twilio: FakeTwilio, phone: str) -> str:
    """The verification code most recently texted to `phone` through the fake Twilio
    (queued texts are sent first)."""
    import re

    send_queued_sms()
    for message in reversed(twilio.messages):
        if message["To"] == phone:
            match = re.search(r"\b(\d{6})\b", message["Body"])
            if match:
                return match.group(1)
    raise AssertionError(f"no code was texted to {phone}; sent: {twilio.messages!r}")
