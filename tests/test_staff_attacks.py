"""Staff accounts under attack, against the running service: a real threaded server
(live_server, CSRF on), real `requests` clients released together by a Barrier, and real
client addresses (each client binds its own 127.0.0.x source address, so the server sees
different IPs without trusting any header). Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
import requests
from flask import Flask, current_app
from requests.adapters import HTTPAdapter
from sqlalchemy import func, select, update

from db import db, utcnow
from staff.audit import AuditEvent
from staff.models import StaffSession, StaffTotpStep, StaffUser
from tests.browser_support import live_server  # noqa: F401
from tests.test_admin_auth import PASSWORD, make_staff, with_admin_stubs

WRONG = "wrong wrong wrong"
ERROR_RE = re.compile(r'<p class="field-error">(.*?)</p>', re.S)
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def service(live_server: str) -> str:  # noqa: F811
    """The live server, with stand-ins for the admin pages another blueprint may not have yet."""
    with_admin_stubs(current_app._get_current_object())
    return live_server


class _FromAddress(HTTPAdapter):
    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class Browser:
    """One browser at one client address: its own cookies and CSRF token."""

    def __init__(self, base: str, address: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.mount("http://", _FromAddress(address))
        self.csrf = ""
        self.csrf_stale = False
        self.get("/admin/login")

    def get(self, path: str) -> requests.Response:
        response = self.http.get(self.base + path, allow_redirects=False, timeout=60)
        if match := CSRF_RE.search(response.text):
            self.csrf = match.group(1)
        return response

    def post(self, path: str, **data: str) -> requests.Response:
        if self.csrf_stale:
            self.csrf_stale = False
            page = self.get("/admin/account")
            if page.status_code == 302:
                self.get(urlsplit(page.headers["Location"]).path)
        response = self.http.post(self.base + path, data={"csrf_token": self.csrf, **data},
                                  allow_redirects=False, timeout=60)
        # A new session (sign-in, password change) comes with a new CSRF token.
        self.csrf_stale = response.status_code == 302
        return response

    def sign_in(self, email: str, password: str = PASSWORD, code: str | None = None) -> requests.Response:
        data = {"email": email, "password": password, **({"code": code} if code else {})}
        return self.post("/admin/login", **data)

    def signed_in(self) -> bool:
        return self.get("/admin/account").status_code == 200


def at_once(browsers: list[Browser], action: Callable[[Browser], requests.Response]) -> list[requests.Response]:
    """Run `action` in every browser at the same moment (one thread each, released together)."""
    barrier = threading.Barrier(len(browsers))

    def run(browser: Browser) -> requests.Response:
        barrier.wait(timeout=60)
        return action(browser)

    with ThreadPoolExecutor(len(browsers)) as pool:
        return list(pool.map(run, browsers))


def answer(response: requests.Response) -> tuple[int, str]:
    """What an attacker learns from a refused sign-in: status and message (numbers of
    seconds left out: they tick)."""
    match = ERROR_RE.search(response.text)
    return response.status_code, re.sub(r"\d+", "N", match.group(1) if match else "")


def flagged(action: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action,
                                                            AuditEvent.flagged.is_(True))))


def count(action: str) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)) or 0


FLOOD = {"STAFF_LOCKOUT_ATTEMPTS": 5, "STAFF_LOGIN_DELAY_BASE_SECONDS": 60}


# --- no lock anyone can trigger -------------------------------------------------------------

@pytest.fixture
def flood_service(service: str) -> str:
    current_app.config.update(FLOOD)
    return service


def test_twenty_parallel_wrong_passwords_get_five_checks_and_the_owner_still_signs_in_elsewhere(
        flood_service: str) -> None:
    approver = make_staff("ap@gmina.pl", "approver")
    attackers = [Browser(flood_service, "127.0.0.2") for _ in range(20)]
    answers = at_once(attackers, lambda b: b.sign_in("ap@gmina.pl", WRONG))

    statuses = Counter(r.status_code for r in answers)
    assert statuses == {400: 5, 429: 15}, statuses  # counted before the check: none slipped through
    assert count("login_failed") == 5
    assert all(int(r.headers["Retry-After"]) > 0 for r in answers if r.status_code == 429)
    # The right password from the attacking address waits too: guessing stays capped.
    assert attackers[0].sign_in("ap@gmina.pl").status_code == 429
    assert not attackers[0].signed_in()

    # The approver, at their desk, signs in at once during the attack.
    desk = Browser(flood_service, "127.0.0.3")
    assert desk.sign_in("ap@gmina.pl").status_code == 302
    assert desk.signed_in()

    # The audit log flags the attack once, with the account under attack.
    assert [(e.staff_id, e.ip) for e in flagged("login_throttled")] == [(approver.id, "127.0.0.2")]


def test_an_unknown_email_gets_the_same_answers_under_the_same_flood(flood_service: str) -> None:
    make_staff("ap@gmina.pl", "approver")
    known = at_once([Browser(flood_service, "127.0.0.4") for _ in range(20)],
                    lambda b: b.sign_in("ap@gmina.pl", WRONG))
    unknown = at_once([Browser(flood_service, "127.0.0.5") for _ in range(20)],
                      lambda b: b.sign_in("nobody@gmina.pl", WRONG))
    assert Counter(map(answer, known)) == Counter(map(answer, unknown))
    assert Counter(answer(r) for r in known) == {
        (400, "Nieprawidłowy adres e-mail lub hasło."): 5,
        (429, "Zbyt wiele prób logowania. Spróbuj ponownie za N s."): 15}
    # Both are flagged as attacks (staff see the address that was tried).
    events = flagged("login_throttled")
    assert sorted((e.staff_email or e.detail.get("detail_email")) for e in events) == ["ap@gmina.pl",
                                                                                      "nobody@gmina.pl"]


def test_a_few_tries_from_each_of_many_addresses_flag_the_account_once(flood_service: str) -> None:
    approver = make_staff("ap@gmina.pl", "approver")
    # 25 addresses, one wrong password each, at once: under every per-address limit.
    botnet = [Browser(flood_service, f"127.0.6.{n + 1}") for n in range(25)]
    answers = at_once(botnet, lambda b: b.sign_in("ap@gmina.pl", WRONG))
    assert Counter(r.status_code for r in answers) == {400: 25}
    assert [(e.staff_id, e.detail["failures"]) for e in flagged("login_attack")] == [(approver.id, 20)]
    assert flagged("login_throttled") == []
    assert Browser(flood_service, "127.0.6.99").sign_in("ap@gmina.pl").status_code == 302


def test_an_unknown_email_takes_as_long_as_a_wrong_password(service: str) -> None:
    make_staff("ap@gmina.pl", "approver")
    timings: dict[str, list[float]] = {"ap@gmina.pl": [], "nobody@gmina.pl": []}
    for n in range(6):
        for email, series in timings.items():
            browser = Browser(service, f"127.0.1.{n * 2 + len(series) % 2 + 10}")
            started = time.perf_counter()
            assert browser.sign_in(email, WRONG).status_code == 400
            series.append(time.perf_counter() - started)
    known, unknown = (statistics.median(series) for series in timings.values())
    # Both pay for one scrypt hash; an early "no such user" would be several times faster.
    assert 0.5 < unknown / known < 2, timings


# --- a TOTP code signs in once --------------------------------------------------------------

def test_ten_parallel_sign_ins_with_one_valid_code_let_exactly_one_in(service: str) -> None:
    secret = pyotp.random_base32()
    approver = make_staff("ap@gmina.pl", "approver", totp_secret=secret)
    # Ten addresses (a code read over a shoulder, replayed from everywhere at once).
    browsers = [Browser(service, f"127.0.2.{n + 1}") for n in range(10)]
    code = pyotp.TOTP(secret).now()
    answers = at_once(browsers, lambda b: b.sign_in("ap@gmina.pl", PASSWORD, code))

    assert Counter(r.status_code for r in answers) == {302: 1, 400: 9}
    refused = {answer(r) for r in answers if r.status_code == 400}
    assert refused == {(400, "Nieprawidłowy lub już użyty kod. Poczekaj na nowy kod w aplikacji i spróbuj ponownie.")}
    assert sum(b.signed_in() for b in browsers) == 1
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(StaffSession)
                             .where(StaffSession.staff_id == approver.id)) == 1
    assert db.session.scalar(select(func.count()).select_from(StaffTotpStep)) == 1


# --- sessions that really end ----------------------------------------------------------------

def copy_of(browser: Browser, address: str = "127.0.3.9") -> Browser:
    """Another machine holding a copy of this browser's cookies (a proxy log, malware)."""
    thief = Browser(browser.base, address)
    thief.http.cookies.clear()
    thief.http.cookies.update(browser.http.cookies)
    return thief


def test_a_copied_cookie_stops_working_after_logout(service: str) -> None:
    make_staff("ed@gmina.pl", "editor")
    browser = Browser(service, "127.0.3.1")
    assert browser.sign_in("ed@gmina.pl").status_code == 302
    thief = copy_of(browser)
    assert thief.signed_in()  # the copy works while the session lives

    assert browser.post("/admin/logout").status_code == 302
    assert not browser.signed_in()
    bounced = thief.get("/admin/account")
    assert bounced.status_code == 302 and "/admin/login" in bounced.headers["Location"]
    db.session.expire_all()
    assert db.session.scalar(select(StaffSession.ended_reason)) == "logout"


def test_secret_key_and_a_copy_of_the_database_cannot_mint_a_session(service: str) -> None:
    app = current_app._get_current_object()
    admin = make_staff("boss@gmina.pl", "admin")
    owner = Browser(service, "127.0.3.2")
    assert owner.sign_in("boss@gmina.pl").status_code == 302
    row = db.session.scalar(select(StaffSession))
    serializer = app.session_interface.get_signing_serializer(app)
    # Everything the database holds, signed with the real key: the stored hash as the token,
    # the old cookie layout (account id), both.
    for forged in ({"staff_session": row.token_hash}, {"staff_id": admin.id},
                   {"staff_session": row.token_hash, "staff_id": admin.id, "_permanent": True}):
        attacker = Browser(service, "127.0.3.3")
        attacker.http.cookies.set("session", serializer.dumps(forged), domain="127.0.0.1")
        assert attacker.get("/admin/accounts").status_code == 302, forged
    # The control: a cookie the server issued does work.
    assert owner.get("/admin/accounts").status_code == 200
    assert row.token_hash not in owner.http.cookies.get("session", "")


@pytest.mark.parametrize("idle_minutes, age_hours, reason", [(31, 1, "idle"), (1, 13, "expired")])
def test_a_session_ends_when_idle_and_at_its_lifetime_however_busy(
        service: str, idle_minutes: int, age_hours: int, reason: str) -> None:
    make_staff("ed@gmina.pl", "editor")
    browser = Browser(service, "127.0.3.4")
    assert browser.sign_in("ed@gmina.pl").status_code == 302
    created = db.session.scalar(select(StaffSession.created_at))
    # The clock moves on (defaults: 30 idle minutes, 12 hours in all).
    now = utcnow()
    db.session.execute(update(StaffSession).values(last_seen_at=now - timedelta(minutes=idle_minutes),
                                                   created_at=now - timedelta(hours=age_hours)))
    db.session.commit()
    assert not browser.signed_in()
    db.session.expire_all()
    assert db.session.scalar(select(StaffSession.ended_reason)) == reason
    assert created is not None


def test_using_a_session_does_not_make_it_last_longer(service: str) -> None:
    make_staff("ed@gmina.pl", "editor")
    browser = Browser(service, "127.0.3.5")
    assert browser.sign_in("ed@gmina.pl").status_code == 302
    db.session.execute(update(StaffSession).values(created_at=utcnow() - timedelta(hours=11, minutes=59),
                                                   last_seen_at=utcnow() - timedelta(minutes=5)))
    db.session.commit()
    assert browser.signed_in()  # busy and within 12 hours
    db.session.expire_all()
    row = db.session.scalar(select(StaffSession))
    assert utcnow() - row.last_seen_at < timedelta(minutes=1)  # seen just now ...
    assert utcnow() - row.created_at > timedelta(hours=11, minutes=58)  # ... but not renewed


def test_sign_out_everywhere_ends_every_session_of_the_account(service: str) -> None:
    make_staff("ed@gmina.pl", "editor")
    phone, desk = Browser(service, "127.0.3.6"), Browser(service, "127.0.3.7")
    for browser in (phone, desk):
        assert browser.sign_in("ed@gmina.pl").status_code == 302
    assert "Otwarte sesje tego konta: 2" in desk.get("/admin/account").text
    out = desk.post("/admin/account/sign-out-everywhere")
    assert out.status_code == 302 and out.headers["Location"].endswith("/admin/login")
    assert not phone.signed_in() and not desk.signed_in()
    assert count("signed_out_everywhere") == 1


def test_an_admin_signs_someone_out_everywhere_and_a_disabled_account_is_out_at_once(service: str) -> None:
    editor = make_staff("ed@gmina.pl", "editor")
    make_staff("boss@gmina.pl", "admin")
    boss, phone = Browser(service, "127.0.4.1"), Browser(service, "127.0.4.2")
    assert boss.sign_in("boss@gmina.pl").status_code == 302
    assert phone.sign_in("ed@gmina.pl").status_code == 302
    thief = copy_of(phone)
    boss.get("/admin/accounts")
    assert boss.post("/admin/accounts", action="sign_out", account_id=str(editor.id)).status_code == 302
    assert not phone.signed_in() and not thief.signed_in()

    assert phone.sign_in("ed@gmina.pl").status_code == 302
    boss.get("/admin/accounts")
    assert boss.post("/admin/accounts", action="disable", account_id=str(editor.id)).status_code == 302
    assert not phone.signed_in()
    db.session.expire_all()
    reasons = db.session.scalars(select(StaffSession.ended_reason).where(StaffSession.staff_id == editor.id)
                                 .order_by(StaffSession.id)).all()
    assert reasons == ["signed_out_everywhere", "disabled"]


# --- temporary passwords ------------------------------------------------------------------------

def test_an_admin_resets_a_password_and_the_temporary_one_must_be_changed_first(service: str) -> None:
    editor = make_staff("ed@gmina.pl", "editor")
    make_staff("boss@gmina.pl", "admin")
    boss, phone = Browser(service, "127.0.5.1"), Browser(service, "127.0.5.2")
    assert boss.sign_in("boss@gmina.pl").status_code == 302
    assert phone.sign_in("ed@gmina.pl").status_code == 302
    boss.get("/admin/accounts")
    page = boss.post("/admin/accounts", action="reset_password", account_id=str(editor.id))
    assert page.status_code == 200
    temporary = re.search(r'class="temporary-password"><code>([a-z0-9-]+)</code>', page.text).group(1)
    assert len(temporary.replace("-", "")) == 16
    assert temporary not in boss.http.cookies.get("session", "")  # shown once, never in the cookie
    assert not phone.signed_in()  # the reset ended the old sessions
    [event] = flagged("account_password_reset")
    assert event.staff_email == "boss@gmina.pl" and event.target == f"staff:{editor.id}"

    assert phone.sign_in("ed@gmina.pl", PASSWORD).status_code == 400  # the old password is gone
    first = phone.sign_in("ed@gmina.pl", temporary)
    assert first.status_code == 302 and "/admin/account/new-password" in first.headers["Location"]
    for path in ("/admin/account", "/admin/subscribers", "/admin/account/totp"):
        blocked = phone.get(path)
        assert blocked.status_code == 302 and "/admin/account/new-password" in blocked.headers["Location"], path

    form = phone.get("/admin/account/new-password")
    assert form.status_code == 200 and "Ustaw własne hasło" in form.text
    same = phone.post("/admin/account/new-password", current_password=temporary, new_password=temporary,
                      new_password_repeat=temporary)
    assert same.status_code == 400 and "Nowe hasło musi być inne niż obecne." in same.text
    mine = "my own long password"
    done = phone.post("/admin/account/new-password", current_password=temporary, new_password=mine,
                      new_password_repeat=mine)
    assert done.status_code == 302
    assert phone.signed_in()
    db.session.expire_all()
    assert not db.session.get(StaffUser, editor.id).must_change_password
    assert Browser(service, "127.0.5.3").sign_in("ed@gmina.pl", mine).status_code == 302


def test_an_admin_cannot_reset_their_own_password(service: str) -> None:
    boss_account = make_staff("boss@gmina.pl", "admin")
    boss = Browser(service, "127.0.5.4")
    assert boss.sign_in("boss@gmina.pl").status_code == 302
    boss.get("/admin/accounts")
    refused = boss.post("/admin/accounts", action="reset_password", account_id=str(boss_account.id))
    assert refused.status_code == 400 and "Moje konto" in refused.text
    assert Browser(service, "127.0.5.5").sign_in("boss@gmina.pl").status_code == 302


def test_cli_reset_password_prints_a_temporary_password_that_must_be_changed(make_app: Callable[..., Flask]
                                                                             ) -> None:
    app = with_admin_stubs(make_app())
    editor = make_staff("ed@gmina.pl", "editor")
    result = app.test_cli_runner().invoke(args=["users", "reset-password", "ED@gmina.pl"])
    assert result.exit_code == 0, result.output
    temporary = re.search(r"Temporary password for ed@gmina.pl: (\S+)", result.output).group(1)
    client = app.test_client()
    response = client.post("/admin/login", data={"email": "ed@gmina.pl", "password": temporary})
    assert response.status_code == 302 and "/admin/account/new-password" in response.headers["Location"]
    [event] = flagged("account_password_reset")
    assert event.actor.startswith("cli:") and event.target == f"staff:{editor.id}"
    missing = app.test_cli_runner().invoke(args=["users", "reset-password", "nobody@gmina.pl"])
    assert missing.exit_code != 0 and "No staff account" in missing.output


def test_an_account_made_with_users_create_changes_its_password_first(make_app: Callable[..., Flask]) -> None:
    app = with_admin_stubs(make_app())
    result = app.test_cli_runner().invoke(
        args=["users", "create", "wojt@kozy.pl", "--role", "admin", "--password-stdin"],
        input="a-long-enough-password\n")
    assert result.exit_code == 0, result.output
    client = app.test_client()
    response = client.post("/admin/login", data={"email": "wojt@kozy.pl", "password": "a-long-enough-password"})
    assert "/admin/account/new-password" in response.headers["Location"]
    assert client.get("/admin/accounts").headers["Location"].startswith("/admin/account/new-password")


# --- production defaults ------------------------------------------------------------------------

@pytest.mark.parametrize("env, explicit, expected", [
    ("production", None, True), ("development", None, False), ("testing", None, False),
    ("production", "false", False), ("development", "true", True)])
def test_totp_for_approvers_and_admins_is_on_by_default_in_production(
        monkeypatch: pytest.MonkeyPatch, env: str, explicit: str | None, expected: bool) -> None:
    from config import load_config

    monkeypatch.setenv("SYRENA_ENV", env)
    monkeypatch.setenv("SECRET_KEY", "x" * 64)
    if explicit is None:
        monkeypatch.delenv("STAFF_REQUIRE_TOTP", raising=False)
    else:
        monkeypatch.setenv("STAFF_REQUIRE_TOTP", explicit)
    assert load_config()["STAFF_REQUIRE_TOTP"] is expected
