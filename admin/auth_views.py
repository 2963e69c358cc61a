"""Staff sign-in, sign-out and one's own account: password and second factor (TOTP).

The rules (throttling, replay, sessions) are in staff/; this blueprint
reads the forms, turns a LoginError into a sentence, and keeps redirects on this site.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
from typing import Any
from urllib.parse import urlsplit

import segno
from flask import (Blueprint, Response, current_app, flash, redirect, render_template, request, session,
                   url_for)
from werkzeug.wrappers import Response as BaseResponse

from admin import add_error_pages
from db import db
from i18n import t
from staff import audit, sessions
from staff.auth import (LoginError, authenticate, current_staff, enable_totp, end_all_sessions, end_session,
                        login_required, start_session, totp_required, totp_uri)
from staff.cli import MIN_PASSWORD
from staff.models import StaffUser
from subscribers import ratelimit

bp = Blueprint("admin_auth", __name__, url_prefix="/admin")

# A harmless hint cookie: this browser signed in with a second factor before, so the login
# form shows the code field at once instead of asking for the password twice.
TOTP_HINT_COOKIE = "admin_2fa"
# While a second factor is being enrolled the session holds a random nonce, never the secret:
# Flask's session cookie is signed, not encrypted. The secret is derived from the nonce with
# SECRET_KEY, so a copied cookie (a proxy log, a backup) does not give the authenticator seed.
PENDING_NONCE = "totp_enrol_nonce"


# --- helpers --------------------------------------------------------------------------------

def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site ("/admin/..."), else None: never an open redirect."""
    if not target:
        return None
    target = target.strip()
    if not target.startswith("/") or target.startswith("//"):
        return None
    # Backslashes and control characters: browsers read "/\evil.example" as another host.
    if "\\" in target or any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    if parts.path in (url_for("admin_auth.login"), url_for("admin_auth.logout")):
        return None
    # login_required passes request.full_path, which ends with "?" when there is no query.
    return target[:-1] if target.endswith("?") else target


def _after_login(next_url: str | None) -> str:
    return next_url or url_for("admin.dashboard")


def _after_sign_in(user: StaffUser, next_url: str | None) -> str:
    """Where a fresh session goes first: a temporary password is replaced, then a required
    second factor is set up, then the page asked for."""
    if user.must_change_password:
        return url_for("admin_auth.new_password", next=next_url)
    if totp_required(user):
        return url_for("admin_auth.totp_setup", next=next_url)
    return _after_login(next_url)


def _minutes(seconds: int | None) -> int:
    return max(1, math.ceil((seconds or 60) / 60))


def login_error_message(exc: LoginError) -> str:
    """The sentence shown for a refused sign-in (unknown e-mail and wrong password read the same)."""
    if exc.code == "rate_limited":
        if (exc.retry_after or 60) < 120:
            return t("admin_auth.error.rate_limited_seconds", seconds=exc.retry_after or 1)
        return t("admin_auth.error.rate_limited", minutes=_minutes(exc.retry_after))
    if exc.code in ("totp_required", "totp_invalid"):
        return t(f"admin_auth.error.{exc.code}")
    return t("admin_auth.error.bad_credentials")


def _wants_totp_field() -> bool:
    return request.cookies.get(TOTP_HINT_COOKIE) == "1"


def _set_totp_hint(response: BaseResponse) -> None:
    response.set_cookie(TOTP_HINT_COOKIE, "1", max_age=365 * 24 * 3600, path=bp.url_prefix, httponly=True,
                        samesite="Lax", secure=current_app.config.get("SESSION_COOKIE_SECURE", False))


def _password_change_limit(user_id: int) -> ratelimit.Limit:
    # Wrong current passwords (password change, second factor replacement): a stolen session
    # must not be a way to guess the password.
    return ratelimit.Limit(f"staff:pwchange:{user_id}", current_app.config["STAFF_LOCKOUT_ATTEMPTS"], 900)


def password_errors(user: StaffUser, current: str, new: str, repeat: str) -> tuple[dict[str, str], int]:
    """What is wrong with a password change (empty when nothing) and the HTTP status to
    answer with. A wrong current password is counted: a stolen session must not be a way
    to guess the password."""
    errors: dict[str, str] = {}
    # Every try takes from the budget before the check, in one atomic statement, so parallel
    # guesses cannot get past it.
    wait = ratelimit.hit([_password_change_limit(user.id)])
    if wait:
        errors["current_password"] = t("admin_auth.error.rate_limited", minutes=_minutes(wait))
        return errors, 429
    db.session.commit()
    if not user.check_password(current):
        audit.record("password_change_refused", staff=user, target=f"staff:{user.id}", commit=False,
                     reason="wrong current password")
        db.session.commit()
        errors["current_password"] = t("admin_auth.password.wrong_current")
    elif len(new) < MIN_PASSWORD:
        errors["new_password"] = t("admin_auth.password.too_short", min=MIN_PASSWORD)
    elif new != repeat:
        errors["new_password_repeat"] = t("admin_auth.password.mismatch")
    elif new == current:
        errors["new_password"] = t("admin_auth.password.same")
    return errors, 400


def set_own_password(user: StaffUser, new: str) -> None:
    """Store the new password, end every session of the account and start a fresh one for
    this browser: a copied cookie from before the change stops working."""
    user.set_password(new)
    user.must_change_password = False
    end_all_sessions(user, "password_changed")
    audit.record("password_changed", staff=user, target=f"staff:{user.id}", commit=False)
    db.session.commit()
    start_session(user)


def _enrolment_secret(user: StaffUser, *, fresh: bool = False) -> str:
    """The base32 TOTP secret being enrolled in this session (160 bits, like new_totp_secret())."""
    nonce = session.get(PENDING_NONCE)
    if fresh or not nonce:
        nonce = secrets.token_urlsafe(16)
        session[PENDING_NONCE] = nonce
    key = current_app.config["SECRET_KEY"].encode()
    digest = hmac.new(key, f"totp-enrol:{user.id}:{nonce}".encode(), hashlib.sha256).digest()[:20]
    return base64.b32encode(digest).decode()


add_error_pages(bp)


# --- sign in and out ------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        user = current_staff()
        if user is not None:
            return redirect(_after_sign_in(user, next_url))
        return render_template("admin/auth/login.html", email="", error=None, error_code=None,
                               next_url=next_url, show_code=_wants_totp_field())

    email = (request.form.get("email") or "").strip()
    code = (request.form.get("code") or "").strip()
    try:
        user = authenticate(email, request.form.get("password"), code)
    except LoginError as exc:
        status = {"rate_limited": 429, "totp_required": 200}.get(exc.code, 400)
        body = render_template("admin/auth/login.html", email=email, error=login_error_message(exc),
                               error_code=exc.code, next_url=next_url,
                               show_code=exc.code in ("totp_required", "totp_invalid") or bool(code)
                               or _wants_totp_field())
        response = Response(body, status=status)
        if exc.code == "rate_limited" and exc.retry_after:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    start_session(user)
    response = redirect(_after_sign_in(user, next_url))
    if user.totp_secret:
        _set_totp_hint(response)
    return response


@bp.post("/logout")
def logout() -> BaseResponse:
    signed_in = current_staff() is not None
    end_session()
    if signed_in:
        flash(t("admin_auth.flash.logged_out"), "info")
    return redirect(url_for("admin_auth.login"))


@bp.route("/account/new-password", methods=["GET", "POST"])
@login_required("editor")
def new_password() -> Any:
    """Replace a temporary password (from `users create` or an admin's reset): nothing else
    works until this is done (login_required sends the account here)."""
    user = current_staff()
    next_url = safe_next(request.values.get("next"))
    if not user.must_change_password:
        return redirect(url_for("admin_auth.account"))
    errors: dict[str, str] = {}
    if request.method == "POST":
        errors, status = password_errors(user, request.form.get("current_password") or "",
                                         request.form.get("new_password") or "",
                                         request.form.get("new_password_repeat") or "")
        if not errors:
            set_own_password(user, request.form.get("new_password") or "")
            flash(t("admin_auth.flash.password_changed"), "info")
            return redirect(_after_sign_in(user, next_url))
    body = render_template("admin/auth/new_password.html", user=user, errors=errors, next_url=next_url,
                           min_password=MIN_PASSWORD)
    return (body, status) if errors else body


@bp.post("/account/sign-out-everywhere")
@login_required("editor")
def sign_out_everywhere() -> BaseResponse:
    """End every session of one's own account, this one included (a lost phone, a shared
    computer): the next page asks for the password again."""
    user = current_staff()
    count = end_all_sessions(user, "signed_out_everywhere")
    audit.record("signed_out_everywhere", staff=user, target=f"staff:{user.id}", commit=False, sessions=count)
    db.session.commit()
    session.clear()
    flash(t("admin_auth.flash.signed_out_everywhere"), "info")
    return redirect(url_for("admin_auth.login"))


# --- own account ----------------------------------------------------------------------------

@bp.get("/account")
@login_required("editor")
def account() -> str:
    return _render_account({})


def _render_account(errors: dict[str, str], status: int = 200) -> Any:
    user = current_staff()
    body = render_template("admin/auth/account.html", user=user, errors=errors,
                           totp_needed=totp_required(user), min_password=MIN_PASSWORD,
                           live_sessions=sessions.live_count(user))
    return body if status == 200 else (body, status)


@bp.post("/account/password")
@login_required("editor")
def change_password() -> Any:
    """Change one's own password: every other session of the account ends (staff/auth.py)."""
    user = current_staff()
    new = request.form.get("new_password") or ""
    errors, status = password_errors(user, request.form.get("current_password") or "", new,
                                     request.form.get("new_password_repeat") or "")
    if errors:
        return _render_account(errors, status)
    set_own_password(user, new)  # this browser stays signed in with a new session; the others are out
    flash(t("admin_auth.flash.password_changed"), "info")
    return redirect(url_for("admin_auth.account"))


@bp.route("/account/totp", methods=["GET", "POST"])
@login_required("editor")
def totp_setup() -> Any:
    """Enrol (or replace) the second factor: show a secret and its QR code, confirm with a code.

    Required before anything else when the gmina sets STAFF_REQUIRE_TOTP for approvers and
    admins (login_required sends them here)."""
    user = current_staff()
    next_url = safe_next(request.values.get("next"))
    # The same secret on a reload (the phone may already have it); ?new=1 starts over.
    secret = _enrolment_secret(user, fresh=request.method == "GET" and request.args.get("new") == "1")
    errors: dict[str, str] = {}
    if request.method == "POST":
        replacing = bool(user.totp_secret)
        wait = ratelimit.hit([_password_change_limit(user.id)]) if replacing else None
        if replacing and not wait:
            db.session.commit()
        if wait:
            errors["current_password"] = t("admin_auth.error.rate_limited", minutes=_minutes(wait))
        elif replacing and not user.check_password(request.form.get("current_password") or ""):
            audit.record("totp_reset_refused", staff=user, target=f"staff:{user.id}",
                         reason="wrong current password")
            errors["current_password"] = t("admin_auth.password.wrong_current")
        elif enable_totp(user, secret, request.form.get("code")):
            session.pop(PENDING_NONCE, None)
            flash(t("admin_auth.flash.totp_enabled"), "info")
            response = redirect((next_url or url_for("admin_auth.account")) if replacing
                                else _after_login(next_url))
            _set_totp_hint(response)
            return response
        else:
            errors["code"] = t("admin_auth.totp.code_invalid")
    uri = totp_uri(user, secret)
    qr = segno.make(uri, error="m").svg_data_uri(scale=5, border=4, dark="#000", light="#fff")
    body = render_template("admin/auth/totp_setup.html", user=user, secret=secret,
                           secret_groups=" ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
                           uri=uri, qr=qr, errors=errors, next_url=next_url, required=totp_required(user),
                           replacing=bool(user.totp_secret))
    return (body, 400) if errors else body
