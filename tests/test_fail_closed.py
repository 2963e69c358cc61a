"""Defaults that fail closed: a deployment that would run but leak or send nothing refuses to start.

- production without a real SMS backend (console sends nothing and used to log codes),
- a SECRET_KEY that is not 32 random bytes,
- a municipality profile with a wrong value anywhere (one line naming the file and field),
- and what may be logged: no codes, manage tokens or token URLs.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from app import ConfigError, create_app
from config import load_config
from municipality import PROFILES_DIR
from profiles import ProfileError, load_municipality
from request_guard import redact_tokens
from run import RedactingRequestHandler
from tests.conftest import last_code

ROOT = Path(__file__).resolve().parents[1]
STRONG = secrets.token_hex(32)
KOZY = (PROFILES_DIR / "kozy.toml").read_text(encoding="utf-8")


# --- production refuses to run without real SMS ---------------------------------------------------

def test_production_refuses_to_start_with_the_console_backend(make_app):
    with pytest.raises(ConfigError, match="SMS_BACKEND must be twilio or smsapi in production") as caught:
        make_app(SYRENA_ENV="production", SECRET_KEY=STRONG, SMS_BACKEND="console")
    assert "\n" not in str(caught.value)


def test_a_production_process_without_an_sms_backend_does_not_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMS_", "TWILIO_", "SYRENA_"))}
    env.update(SYRENA_ENV="production", SECRET_KEY=STRONG, DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
               PUBLIC_BASE_URL="https://alerty.example.pl")

    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)

    assert result.returncode != 0
    assert "Syrena cannot start: SMS_BACKEND is not set: production needs SMS_BACKEND=twilio" in result.stderr


def test_production_refuses_to_start_without_its_public_https_address(make_app):
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL must be the public https address"):
        make_app(SYRENA_ENV="production", SECRET_KEY=STRONG, PUBLIC_BASE_URL="http://127.0.0.1:5000")


def test_production_starts_with_twilio_and_requires_totp_for_approvers(make_app, monkeypatch):
    app = make_app(SYRENA_ENV="production", SECRET_KEY=STRONG, TESTING=False)
    assert app.config["SMS_BACKEND"] == "twilio"
    # The default itself (the tests' base config switches TOTP off for every other test).
    monkeypatch.delenv("STAFF_REQUIRE_TOTP", raising=False)
    assert load_config("production")["STAFF_REQUIRE_TOTP"] is True
    assert load_config("development")["STAFF_REQUIRE_TOTP"] is False


def test_totp_can_still_be_switched_off_in_production_explicitly(make_app, monkeypatch):
    monkeypatch.setenv("STAFF_REQUIRE_TOTP", "false")
    assert make_app(SYRENA_ENV="production", SECRET_KEY=STRONG).config["STAFF_REQUIRE_TOTP"] is False


# --- SECRET_KEY ----------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["a", "changeme", "changeme" * 8, "x" * 64, secrets.token_hex(16),
                                 "test-secret-key-not-for-production", "0123456789abcdef" * 4])
@pytest.mark.parametrize("env", ["production", "development"])
def test_a_weak_secret_key_is_refused_with_how_to_make_one(make_app, key, env):
    with pytest.raises(ConfigError) as caught:
        make_app(SYRENA_ENV=env, SECRET_KEY=key)
    message = str(caught.value)
    assert message.startswith("SECRET_KEY is too weak")
    assert 'python3 -c "import secrets; print(secrets.token_hex(32))"' in message
    assert key not in message or len(key) < 2  # the key itself is never echoed


@pytest.mark.parametrize("make", [lambda: secrets.token_hex(32), lambda: secrets.token_urlsafe(32),
                                  lambda: secrets.token_hex(64)])
def test_a_key_of_32_random_bytes_is_accepted(make_app, make):
    for _ in range(20):
        assert make_app(SYRENA_ENV="production", SECRET_KEY=make()).config["SYRENA_ENV"] == "production"


def test_a_missing_secret_key_says_how_to_make_one(make_app):
    with pytest.raises(ConfigError, match=r"SECRET_KEY is not set.*make run.*token_hex\(32\)"):
        make_app(SYRENA_ENV="production", SECRET_KEY=None)


def test_a_wrong_number_in_the_environment_is_a_config_error(make_app, monkeypatch):
    monkeypatch.setenv("MAX_CONTENT_LENGTH", "lots")
    with pytest.raises(ConfigError, match=r"MAX_CONTENT_LENGTH='lots': a whole number is expected"):
        make_app()


def test_a_wrong_twilio_setting_is_the_same_config_error(make_app):
    with pytest.raises(ConfigError, match="TWILIO_ACCOUNT_SID must start with 'AC'"):
        make_app(TWILIO_ACCOUNT_SID="XX123")


@pytest.mark.parametrize(("setting", "value", "says"), [
    ("QUIET_HOURS", "22-7", "QUIET_HOURS must look like 22:00-07:00 or off"),
    ("FEEDS", "imgw,meteoalarm", "FEEDS names unknown feeds ['imgw']"),
    ("TRUSTED_PROXIES", "10.0.0.0/33", "TRUSTED_PROXIES: '10.0.0.0/33' is not an IP address"),
    ("MAX_CONTENT_LENGTH", 0, "MAX_CONTENT_LENGTH must be a positive whole number"),
])
def test_a_setting_read_only_later_is_still_checked_at_the_start(make_app, setting, value, says):
    with pytest.raises(ConfigError) as caught:
        make_app(**{setting: value})
    assert str(caught.value).startswith(says)


# --- the municipality profile ---------------------------------------------------------------------

def profile(tmp_path: Path, old: str, new: str) -> Path:
    assert old in KOZY, old
    path = tmp_path / "gmina.toml"
    path.write_text(KOZY.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "field", "says"), [
    ('timezone = "Europe/Warsaw"', 'timezone = "Europe/Warszawa"', "municipality.timezone", "not a time zone"),
    ("auto_from_level = { weather = 2,", 'auto_from_level = { weather = "2",', "policy.auto_from_level.weather",
     "'2' (a string)"),
    ("auto_from_level = { weather = 2,", "auto_from_level = { weather = true,", "policy.auto_from_level.weather",
     "(a boolean)"),
    ("auto_from_level = { weather = 2,", "auto_from_level = { weather = 7,", "policy.auto_from_level.weather",
     "level 1-3"),
    ('inbound_number = ""', 'inbound_number = "732 000 000"', "municipality.inbound_number", "E.164"),
    ('inbound_number = ""', 'inbound_number = "+48 732 000 000"', "municipality.inbound_number", "E.164"),
    ('inbound_number = ""', "inbound_number = 48732000000", "municipality.inbound_number", "must be a string"),
    ('inbound_number = ""', 'inbound_numbr = "+48732000000"', "municipality.inbound_numbr", "unknown key"),
    ("[quiet_hours]", "[quiet_hour]", "quiet_hour", "unknown key"),
    ('start = "22:00"', "start = 22", "quiet_hours.start", "must be a string"),
    ('start = "22:00"', 'start = "10 pm"', "quiet_hours.start", "must look like 22:00"),
    ('name = "Gmina Kozy"', "name = 5", "municipality.name", "must be a string"),
    ('code = "KOZY"', "code = 12", "areas #1.code", "must be a string"),
    ('code = "KOZY"', 'code = "KOZY"\nvillage = "x"', "areas #1.village", "unknown key"),
    ("enabled = false", 'enabled = "no"', "feeds.rso.enabled", "true or false"),
    ("id = 789", 'id = "789"', "feeds.air.stations #1.id", "numeric id"),
    ('default_language = "pl"', 'default_language = "de"', "municipality.default_language", "pl, en, uk"),
    ('offered = ["weather",', 'offered = ["wether",', "categories.offered", "unknown category 'wether'"),
    ('catchments = ["Z_K_SL_2132",', "catchments = [2132,", "feeds.hydro.catchments", "list of strings"),
    ('teryt = "2402072"', "teryt = 2402072", "municipality.teryt", "must be a string"),
    ('default = ["weather",', 'validity_hours = { offical = 48 }\ndefault = ["weather",', "categories.validity_hours",
     "unknown category 'offical'"),
    ('default = ["weather",', 'validity_hours = { official = "a week" }\ndefault = ["weather",',
     "categories.validity_hours.official", "whole number of hours"),
    ('default = ["weather",', 'validity_hours = { official = 0 }\ndefault = ["weather",',
     "categories.validity_hours.official", "1 to 2160"),
    ('name = "Gmina Kozy"', 'name = "Gmina Kozy"\nname_genitive = 5', "municipality.name_genitive",
     "must be a string"),
    ('code = "osp"', 'code = "OSP"', "groups #2.code", "lower-case"),
    ('code = "radni"', 'code = "osp"', "groups #3.code", "appears twice"),
    ('name_uk = "Фермери"\nopen = true', 'name_uk = "Фермери"\nopen = "yes"', "groups #4.open", "true or false"),
    ('name_uk = "Радні ґміни"\nlegal_basis', 'name_uk = "Радні ґміни"\nlegal_basi', "groups #3.legal_basi",
     "unknown key"),
])
def test_a_wrong_profile_value_is_one_line_naming_the_file_and_field(tmp_path, old, new, field, says):
    path = profile(tmp_path, old, new)

    with pytest.raises(ProfileError) as caught:
        load_municipality(str(path))

    message = str(caught.value)
    assert message.startswith(f"{path}: {field}:"), message
    assert says in message
    assert "\n" not in message


def test_a_profile_may_change_a_categorys_default_validity(tmp_path):
    path = profile(tmp_path, 'default = ["weather",', 'validity_hours = { official = 336 }\ndefault = ["weather",')
    m = load_municipality(str(path))
    assert m.validity("official").days == 14
    assert m.validity("weather").total_seconds() == 24 * 3600 and m.validity("hydro").days == 2


def test_a_wrong_profile_stops_the_app_with_the_one_config_error(make_app, tmp_path):
    path = profile(tmp_path, 'timezone = "Europe/Warsaw"', 'timezone = "CET+1"')
    with pytest.raises(ConfigError, match=r"gmina\.toml: municipality\.timezone: 'CET\+1' is not a time zone"):
        make_app(SYRENA_MUNICIPALITY=str(path))


def test_a_profile_that_is_not_toml_names_the_file(tmp_path):
    path = tmp_path / "gmina.toml"
    path.write_text('[municipality\nname = "x"', encoding="utf-8")
    with pytest.raises(ProfileError, match=r"gmina\.toml: not valid TOML"):
        load_municipality(str(path))


def test_a_good_inbound_number_and_the_shipped_profiles_load(tmp_path):
    path = profile(tmp_path, 'inbound_number = ""', 'inbound_number = "+48732000000"')
    assert load_municipality(str(path)).inbound_number == "+48732000000"
    for shipped in PROFILES_DIR.glob("*.toml"):
        assert load_municipality(shipped.stem).teryt


# --- no secrets in logs ---------------------------------------------------------------------------

def test_the_development_server_does_not_log_manage_link_tokens(make_app, caplog):
    app = make_app()
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=RedactingRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    token = "42-1.Xy7_abcDEF-123ghiJKL456mnoP"
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            requests.get(f"{base}/m/{token}", timeout=30)
            requests.get(f"{base}/m/{token}/data.json?x=1", timeout=30)
            requests.get(f"{base}/api/v1/subscriptions/{token}", timeout=30)
            requests.get(f"{base}/privacy", timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    log = caplog.text
    assert token not in log
    assert "GET /m/*** HTTP/1.1" in log and "GET /m/***/data.json?x=1" in log
    assert "/api/v1/subscriptions/***" in log and "GET /privacy" in log


def test_token_redaction_keeps_the_api_route_names():
    assert redact_tokens("POST /api/v1/subscriptions/verify HTTP/1.1") == "POST /api/v1/subscriptions/verify HTTP/1.1"
    assert redact_tokens("POST /m/abc.def/leave") == "POST /m/***/leave"


def test_an_unexpected_error_on_a_manage_page_is_logged_without_the_token(app, caplog):
    token = "42-1.Xy7_abcDEF-123ghiJKL456mnoP"
    with app.test_request_context(f"/m/{token}/erase", method="POST"), caplog.at_level(logging.ERROR):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            app.log_exception(sys.exc_info())
    assert "Exception on /m/***/erase [POST]" in caplog.text
    assert token not in caplog.text


def test_a_production_app_logs_no_code_when_a_resident_signs_up(make_app, twilio, caplog):
    # The real backend: nothing of ours logs the code or the link on the way to Twilio.
    client = make_app(SYRENA_ENV="production", SECRET_KEY=STRONG, TESTING=False).test_client()
    with caplog.at_level(logging.DEBUG):
        assert client.post("/api/v1/subscriptions", json={"phone": "+48501234567", "consent": True,
                                                          "categories": ["weather"]}).status_code == 202
    assert last_code(twilio, "+48501234567") not in caplog.text


def test_create_app_without_overrides_reads_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SYRENA_ENV", "development")
    monkeypatch.setenv("SECRET_KEY", "changeme")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ConfigError, match="SECRET_KEY is too weak"):
        create_app()
