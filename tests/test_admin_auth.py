"""Staff sign-in (admin/auth_views.py over staff/auth.py): password, second factor, lockout,
replay, forced enrolment, sessions that end, safe redirects, cookies, headers and CSRF."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from admin.auth_views import safe_next
from db import db
from staff.audit import AuditEvent
from staff.models import StaffUser

PASSWORD = "correct horse battery"
# The other admin blueprint ("admin": dashboard, compose, queue, messages) is written in
# parallel; the admin layout links to it. Until it exists these tests stand in for it.
ADMIN_ENDPOINTS = {"admin.dashboard": "/admin/", "admin.compose": "/admin/compose",
                   "admin.queue": "/admin/queue", "admin.messages": "/admin/messages"}


def with_admin_stubs(app: Flask) -> Flask:
    for endpoint, rule in ADMIN_ENDPOINTS.items():
        if endpoint not in app.view_functions:
            app.add_url_rule(rule, endpoint=endpoint, view_func=lambda: "stub")
    return app


@pytest.fixture
def admin_app(make_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """make_app, plus stand-ins for the admin endpoints the layout links to when missing."""
    return lambda **overrides: with_admin_stubs(make_app(**overrides))


def make_staff(email: str = "ed@gmina.pl", role: str = "editor", *, password: str = PASSWORD,
               totp_secret: str | None = None, active: bool = True) -> StaffUser:
    user = StaffUser(email=email, role=role, active=active, totp_secret=totp_secret)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD, code: str | None = None,
            **extra: str) -> Any:
    data = {"email": email, "password": password, **extra}
    if code is not None:
        data["code"] = code
    return client.post("/admin/login", data=data)


def dashboard_url() -> str:
    from flask import current_app, url_for

    with current_app.test_request_context():
        return url_for("admin.dashboard")


def audit_actions(**where: Any) -> list[str]:
    db.session.expire_all()
    query = select(AuditEvent).order_by(AuditEvent.id)
    for key, value in where.items():
        query = query.where(getattr(AuditEvent, key) == value)
    return [e.action for e in db.session.scalars(query)]


def text_of(response: Any) -> str:
    return response.get_data(as_text=True)


# --- signing in ---------------------------------------------------------------------------

def test_login_page_in_polish_and_english(admin_app: Callable[..., Flask]) -> None:
    client = admin_app().test_client()
    page = text_of(client.get("/admin/login"))
    assert "Logowanie do panelu" in page
    assert 'name="password"' in page and 'name="email"' in page
    assert 'name="code"' not in page  # shown only when needed
    assert "Sign in to the admin" in text_of(client.get("/admin/login?lang=en"))
    # The switch is on the sign-in page itself (a staff member who reads English finds it).
    assert re.search(r'<a href="[^"]*lang=en[^"]*" hreflang="en" lang="en">English</a>', page)
    english = text_of(client.get("/admin/login?lang=en"))
    assert re.search(r'<a href="[^"]*lang=pl[^"]*" hreflang="pl" lang="pl">Polski</a>', english)


def test_password_only_sign_in_lands_on_the_dashboard(admin_app: Callable[..., Flask]) -> None:
    client = admin_app().test_client()
    user = make_staff()
    response = sign_in(client, "ED@gmina.pl ")
    assert response.status_code == 302
    assert response.headers["Location"] == dashboard_url()
    account = client.get("/admin/account")
    assert account.status_code == 200
    assert "ed@gmina.pl" in text_of(account) and "redaktor" in text_of(account)
    assert audit_actions(staff_id=user.id) == ["login"]
    # Signed in already: the login page sends you on.
    assert client.get("/admin/login").headers["Location"] == dashboard_url()


def test_totp_sign_in_asks_for_the_code_and_refuses_a_replay(admin_app: Callable[..., Flask]) -> None:
    client = admin_app().test_client()
    secret = pyotp.random_base32()
    make_staff("ap@gmina.pl", "approver", totp_secret=secret)

    first = sign_in(client, "ap@gmina.pl")
    assert first.status_code == 200
    assert "Wpisz kod z aplikacji uwierzytelniającej." in text_of(first)
    assert 'name="code"' in text_of(first)
    assert client.get("/admin/account").status_code == 302  # not signed in yet

    code = pyotp.TOTP(secret).now()
    ok = sign_in(client, "ap@gmina.pl", code=code)
    assert ok.status_code == 302 and ok.headers["Location"] == dashboard_url()
    assert "admin_2fa=1" in ok.headers.get("Set-Cookie", "")
    assert client.get("/admin/account").status_code == 200
    client.post("/admin/logout")

    # The same code again (someone looking over the shoulder): refused.
    again = sign_in(client, "ap@gmina.pl", code=code)
    assert again.status_code == 400
    assert "Nieprawidłowy lub już użyty kod" in text_of(again)
    assert client.get("/admin/account").status_code == 302
    # The browser remembers the account uses a code: the field is there from the start.
    assert 'name="code"' in text_of(client.get("/admin/login"))


def test_wrong_password_and_unknown_email_read_the_same(admin_app: Callable[..., Flask]) -> None:
    client = admin_app().test_client()
    make_staff()
    wrong = sign_in(client, "ed@gmina.pl", "not the password")
    unknown = sign_in(client, "nobody@gmina.pl", "not the password")
    assert wrong.status_code == unknown.status_code == 400
    message = "Nieprawidłowy adres e-mail lub hasło."
    assert message in text_of(wrong) and message in text_of(unknown)
    assert re.sub(r"nobody|ed", "", text_of(wrong)) == re.sub(r"nobody|ed", "", text_of(unknown))
    assert client.get("/admin/account").status_code == 302
    assert audit_actions() == ["login_failed", "login_failed"]


# (A NUL byte never reaches sign-in: request_guard answers 400 bad_request for any field.)
@pytest.mark.parametrize("email", ["ed@" + "g" * 300 + ".pl", "e" * 250 + "@gmina.pl"])
def test_an_email_no_account_can_have_is_answered_like_an_unknown_one(admin_app: Callable[..., Flask],
                                                                     email: str) -> None:
    client = admin_app().test_client()
    make_staff()
    refused = sign_in(client, email)
    assert refused.status_code == 400
    assert "Nieprawidłowy adres e-mail lub hasło." in text_of(refused)
    assert client.get("/admin/account").status_code == 302


def test_wrong_passwords_slow_that_address_down_but_never_lock_the_account(
        admin_app: Callable[..., Flask]) -> None:
    client = admin_app(STAFF_LOCKOUT_ATTEMPTS=3, STAFF_LOGIN_DELAY_BASE_SECONDS=60).test_client()
    user = make_staff()
    for _ in range(3):
        assert sign_in(client, "ed@gmina.pl", "wrong wrong wrong").status_code == 400
    # The free tries are used up: the next one waits, even with the right password, and the
    # answer says for how long.
    waiting = sign_in(client, "ed@gmina.pl")
    assert waiting.status_code == 429
    assert 58 <= int(waiting.headers["Retry-After"]) <= 60
    assert "Zbyt wiele prób logowania. Spróbuj ponownie za" in text_of(waiting)
    assert client.get("/admin/account").status_code == 302

    # The owner, from another address, is not held up at all.
    elsewhere = app_client_at(client, "10.9.8.7")
    assert sign_in(elsewhere, "ed@gmina.pl").status_code == 302
    assert elsewhere.get("/admin/account").status_code == 200

    flagged = db.session.scalars(select(AuditEvent).where(AuditEvent.flagged.is_(True))).all()
    assert [(e.action, e.staff_id, e.detail["attempts"]) for e in flagged] == [("login_throttled", user.id, 3)]
    db.session.refresh(user)
    assert user.active  # nothing about the account itself changed


def test_the_wait_doubles_with_each_try_up_to_the_cap(admin_app: Callable[..., Flask]) -> None:
    import time

    from staff.models import StaffLoginThrottle

    client = admin_app(STAFF_LOCKOUT_ATTEMPTS=2, STAFF_LOGIN_DELAY_BASE_SECONDS=1,
                       STAFF_LOGIN_DELAY_MAX_SECONDS=2).test_client()
    make_staff()
    delays = []
    for _ in range(4):
        while (response := sign_in(client, "ed@gmina.pl", "wrong wrong wrong")).status_code == 429:
            time.sleep(0.2)
        assert response.status_code == 400
        db.session.expire_all()
        delays.append(db.session.scalar(select(StaffLoginThrottle.delay_seconds)
                                        .where(StaffLoginThrottle.ip_bucket == "127.0.0.1")))
    assert delays == [0, 1, 2, 2]
    # The right password after the wait signs in and starts the count over.
    while (response := sign_in(client, "ed@gmina.pl")).status_code == 429:
        time.sleep(0.2)
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.scalar(select(StaffLoginThrottle).where(StaffLoginThrottle.ip_bucket == "127.0.0.1")) is None


def app_client_at(client: FlaskClient, address: str) -> FlaskClient:
    """A new browser of the same app whose requests come from `address`."""
    other = client.application.test_client()
    other.environ_base["REMOTE_ADDR"] = address
    return other


def test_too_many_sign_ins_from_one_address(admin_app: Callable[..., Flask]) -> None:
    client = admin_app(STAFF_LOGINS_PER_IP=2).test_client()
    make_staff()
    sign_in(client, "x@gmina.pl", "whatever whatever")
    sign_in(client, "y@gmina.pl", "whatever whatever")
    refused = sign_in(client, "ed@gmina.pl")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "Zbyt wiele prób logowania" in text_of(refused)


def test_required_second_factor_comes_before_anything_else(admin_app: Callable[..., Flask]) -> None:
    client = admin_app(STAFF_REQUIRE_TOTP=True).test_client()
    user = make_staff("ap@gmina.pl", "approver")

    response = sign_in(client, "ap@gmina.pl", next="/admin/subscribers")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/account/totp")
    for path in ("/admin/subscribers", "/admin/account", "/admin/"):
        blocked = client.get(path)
        assert blocked.status_code == 302 and blocked.headers["Location"] == "/admin/account/totp", path

    page = client.get(response.headers["Location"])
    html = text_of(page)
    assert page.status_code == 200
    assert "gmina wymaga jej dla Twojej roli" in html
    assert 'src="data:image/svg+xml' in html
    secret = re.search(r'id="totp-secret"[^>]*>([A-Z2-7 ]+)<', html).group(1).replace(" ", "")
    assert "otpauth://totp/" in html
    # The session cookie (signed, readable by anyone who copies it) does not carry the secret.
    app = client.application
    cookie = client.get_cookie("session").value
    assert secret not in json.dumps(app.session_interface.get_signing_serializer(app).loads(cookie))
    # A refresh keeps the same secret (the phone may already have it).
    assert secret in text_of(client.get("/admin/account/totp")).replace(" ", "")

    wrong = client.post("/admin/account/totp", data={"code": "000000", "next": "/admin/subscribers"})
    assert wrong.status_code == 400
    assert "Nieprawidłowy kod" in text_of(wrong)

    done = client.post("/admin/account/totp", data={"code": pyotp.TOTP(secret).now(),
                                                    "next": "/admin/subscribers"})
    assert done.status_code == 302 and done.headers["Location"] == "/admin/subscribers"
    db.session.refresh(user)
    assert user.totp_secret == secret
    assert client.get("/admin/subscribers").status_code == 200
    assert "totp_enabled" in audit_actions(staff_id=user.id)

    # An editor is not asked.
    make_staff("ed@gmina.pl", "editor")
    other = admin_app(STAFF_REQUIRE_TOTP=True).test_client()
    assert sign_in(other, "ed@gmina.pl").headers["Location"] == dashboard_url()


def test_replacing_the_second_factor_needs_the_password(admin_app: Callable[..., Flask]) -> None:
    import time

    client = admin_app().test_client()
    old = pyotp.random_base32()
    user = make_staff("ap@gmina.pl", "approver", totp_secret=old)
    # Signed in with the previous step's code (one step of drift is accepted), so the current
    # step is still free for the new secret's first code.
    assert sign_in(client, "ap@gmina.pl", code=pyotp.TOTP(old).at(time.time() - 30)).status_code == 302
    html = text_of(client.get("/admin/account/totp?new=1"))
    new = re.search(r'id="totp-secret"[^>]*>([A-Z2-7 ]+)<', html).group(1).replace(" ", "")
    assert new != old
    refused = client.post("/admin/account/totp", data={"code": pyotp.TOTP(new).now(),
                                                       "current_password": "nope nope nope"})
    assert refused.status_code == 400
    db.session.refresh(user)
    assert user.totp_secret == old
    done = client.post("/admin/account/totp",
                       data={"code": pyotp.TOTP(new).now(), "current_password": PASSWORD})
    assert done.status_code == 302 and done.headers["Location"] == "/admin/account"
    db.session.refresh(user)
    assert user.totp_secret == new


def test_logout(admin_app: Callable[..., Flask]) -> None:
    client = admin_app().test_client()
    user = make_staff()
    sign_in(client, "ed@gmina.pl")
    assert client.get("/admin/logout").status_code == 405  # a link or an image cannot sign you out
    response = client.post("/admin/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/login"
    assert "Wylogowano." in text_of(client.get("/admin/login"))
    assert client.get("/admin/account").status_code == 302
    assert audit_actions(staff_id=user.id) == ["login", "logout"]


# --- redirects ----------------------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "https://evil.example", "//evil.example", "///evil.example", "/\\evil.example", "\\\\evil.example",
    "javascript:alert(1)", "http:/evil.example", " https://evil.example", "/admin/\r\nLocation: x",
    "evil.example/admin",
])
def test_next_must_be_a_path_on_this_site(admin_app: Callable[..., Flask], target: str) -> None:
    client = admin_app().test_client()
    make_staff()
    response = sign_in(client, "ed@gmina.pl", next=target)
    assert response.status_code == 302
    assert response.headers["Location"] == dashboard_url()


def test_sign_in_returns_to_the_page_asked_for(admin_app: Callable[..., Flask]) -> None:
    client = admin_app().test_client()
    make_staff()
    bounce = client.get("/admin/account")
    assert bounce.status_code == 302 and bounce.headers["Location"].startswith("/admin/login?next=")
    login_page = text_of(client.get(bounce.headers["Location"]))
    next_value = re.search(r'name="next" value="([^"]+)"', login_page).group(1)
    assert next_value == "/admin/account"
    assert sign_in(client, "ed@gmina.pl", next=next_value).headers["Location"] == "/admin/account"
    # From the query string too, with its own query kept.
    other = admin_app().test_client()
    response = other.post("/admin/login?next=/admin/subscribers%3Fphone%3D1",
                          data={"email": "ed@gmina.pl", "password": PASSWORD})
    assert response.headers["Location"] == "/admin/subscribers?phone=1"


def test_safe_next_rules(admin_app: Callable[..., Flask]) -> None:
    app = admin_app()
    with app.test_request_context():
        assert safe_next("/admin/audit?page=2") == "/admin/audit?page=2"
        assert safe_next("/admin/account?") == "/admin/account"
        assert safe_next("/admin/login") is None  # no loop back to the login page
        assert safe_next(None) is None and safe_next("") is None
        assert safe_next("https://evil.example/admin") is None


# --- sessions that end ----------------------------------------------------------------------

def test_a_disabled_account_is_signed_out_at_once(admin_app: Callable[..., Flask]) -> None:
    app = admin_app()
    staff_client, admin_client = app.test_client(), app.test_client()
    user = make_staff()
    make_staff("boss@gmina.pl", "admin")
    sign_in(staff_client, "ed@gmina.pl")
    sign_in(admin_client, "boss@gmina.pl")
    assert staff_client.get("/admin/account").status_code == 200

    response = admin_client.post("/admin/accounts", data={"action": "disable", "account_id": user.id})
    assert response.status_code == 302
    bounced = staff_client.get("/admin/account")
    assert bounced.status_code == 302 and bounced.headers["Location"].startswith("/admin/login")
    # Nor can it sign in again.
    assert sign_in(staff_client, "ed@gmina.pl").status_code == 400


def test_password_change_ends_the_other_sessions(admin_app: Callable[..., Flask]) -> None:
    app = admin_app()
    phone, desk = app.test_client(), app.test_client()
    user = make_staff()
    sign_in(phone, "ed@gmina.pl")
    sign_in(desk, "ed@gmina.pl")

    wrong = desk.post("/admin/account/password", data={"current_password": "nope", "new_password": "a" * 14,
                                                       "new_password_repeat": "a" * 14})
    assert wrong.status_code == 400 and "Obecne hasło jest nieprawidłowe." in text_of(wrong)
    short = desk.post("/admin/account/password", data={"current_password": PASSWORD, "new_password": "short",
                                                       "new_password_repeat": "short"})
    assert short.status_code == 400 and "co najmniej 12 znaków" in text_of(short)
    mismatch = desk.post("/admin/account/password", data={
        "current_password": PASSWORD, "new_password": "a new long password",
        "new_password_repeat": "different"})
    assert mismatch.status_code == 400

    new = "a new long password"
    done = desk.post("/admin/account/password", data={"current_password": PASSWORD, "new_password": new,
                                                      "new_password_repeat": new})
    assert done.status_code == 302
    assert desk.get("/admin/account").status_code == 200  # this browser stays in
    assert phone.get("/admin/account").status_code == 302  # the other one is out
    assert sign_in(app.test_client(), "ed@gmina.pl", new).status_code == 302
    assert "password_changed" in audit_actions(staff_id=user.id)
    assert "password_change_refused" in audit_actions(staff_id=user.id)


def test_password_guessing_through_the_change_form_is_limited(admin_app: Callable[..., Flask]) -> None:
    client = admin_app(STAFF_LOCKOUT_ATTEMPTS=3).test_client()
    make_staff()
    sign_in(client, "ed@gmina.pl")
    data = {"current_password": "guess guess", "new_password": "a" * 14, "new_password_repeat": "a" * 14}
    for _ in range(3):
        assert client.post("/admin/account/password", data=data).status_code == 400
    data["current_password"] = PASSWORD
    assert client.post("/admin/account/password", data=data).status_code == 429


# --- cookies, headers, CSRF ---------------------------------------------------------------

def test_session_cookie_flags_and_security_headers(admin_app: Callable[..., Flask]) -> None:
    client = admin_app(SESSION_COOKIE_SECURE=True).test_client()
    make_staff()
    response = sign_in(client, "ed@gmina.pl")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie
    assert "Secure" in cookie
    assert "Expires=" in cookie  # a permanent session: PERMANENT_SESSION_LIFETIME ends it

    for path in ("/admin/login", "/admin/account"):
        page = client.get(path)
        headers = page.headers
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"
        assert headers["Referrer-Policy"] == "same-origin"
        # No inline script or style (CSP script-src 'self'); scripts come from /static only.
        html = text_of(page)
        assert not re.search(r"<script(?![^>]*\bsrc=\"/static/)", html) and "style=" not in html


def test_session_cookie_is_samesite_lax(admin_app: Callable[..., Flask]) -> None:
    """Defence in depth against CSRF: the staff session is not sent with cross-site POSTs."""
    client = admin_app().test_client()
    make_staff()
    response = sign_in(client, "ed@gmina.pl")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "SameSite=Lax" in cookie, (
        "app.py sets SESSION_COOKIE_SAMESITE with config.setdefault, which does nothing: Flask's "
        "defaults already hold the key (None). Set it outright (or in config.py).")


def test_login_without_the_csrf_token_is_refused(admin_app: Callable[..., Flask]) -> None:
    client = admin_app(WTF_CSRF_ENABLED=True).test_client()
    make_staff()
    refused = sign_in(client, "ed@gmina.pl")
    assert refused.status_code == 400
    assert "Formularz wygasł" in text_of(refused)
    assert client.get("/admin/account").status_code == 302
    assert audit_actions() == []  # refused before any password was checked

    token = re.search(r'name="csrf_token" value="([^"]+)"', text_of(client.get("/admin/login"))).group(1)
    assert sign_in(client, "ed@gmina.pl", csrf_token=token).status_code == 302
    # Logging out needs the token too.
    assert client.post("/admin/logout").status_code == 400
    assert client.get("/admin/account").status_code == 200
