"""Staff sign-in: password, optional TOTP second factor, throttling, lockout, sessions.

- Passwords are scrypt hashes (StaffUser.set_password).
- After STAFF_LOCKOUT_ATTEMPTS wrong passwords or codes in a row an account is locked for
  STAFF_LOCKOUT_MINUTES (flagged in the audit log); sign-in attempts are also limited per
  IP address, so nobody can guess across many accounts.
- TOTP (authenticator apps): optional for everyone; required for approvers and admins when
  the gmina sets STAFF_REQUIRE_TOTP. A code is accepted once (replay within its 30-second
  window is refused).
- The session holds the account id and a key derived from the password hash: changing
  the password or disabling the account ends every session at once.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

import pyotp
from flask import current_app, redirect, request, session, url_for
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from db import db, utcnow
from staff import audit
from staff.models import StaffUser
from subscribers import ratelimit

_dummy_hash: str | None = None
_UNSET = object()


def _dummy() -> str:
    """Compared against when the e-mail is unknown, so a wrong e-mail takes as long as a
    wrong password. Made on first use: scrypt at import would slow every process start."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = generate_password_hash("not-a-real-password", method="scrypt")
    return _dummy_hash


class LoginError(Exception):
    """Sign-in refused. `code`: bad_credentials, locked, totp_required, totp_invalid, rate_limited."""

    def __init__(self, code: str, retry_after: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.retry_after = retry_after


def _ip_limit(ip: str | None) -> ratelimit.Limit:
    return ratelimit.Limit(f"login:ip:{ip}", current_app.config["STAFF_LOGINS_PER_IP"], 900)


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret)


def verify_totp(user: StaffUser, code: str | None, secret: str | None = None) -> bool:
    """Check a 6-digit code against the user's (or a new) secret; refuse a replayed code."""
    secret = secret or user.totp_secret
    code = (code or "").strip().replace(" ", "")
    if not secret or not code.isdigit() or len(code) != 6:
        return False
    totp = _totp(secret)
    now = utcnow()
    # Replay is a question for the secret in use; a new secret being enrolled has no history.
    last = user.totp_last_step if secret == user.totp_secret else None
    for drift in (0, -1, 1):  # one step of clock drift either way
        step = totp.timecode(now) + drift
        if hmac.compare_digest(totp.generate_otp(step), code):
            if last is not None and step <= last:
                return False
            user.totp_last_step = step
            return True
    return False


def authenticate(email: str | None, password: str | None, totp_code: str | None) -> StaffUser:
    """Return the account for these credentials or raise LoginError (and audit either)."""
    ip = request.remote_addr
    wait = ratelimit.retry_after_if_exceeded([_ip_limit(ip)])
    if wait:
        raise LoginError("rate_limited", retry_after=wait)
    ratelimit.record_hits([_ip_limit(ip)])
    db.session.commit()

    address = (email or "").strip().lower()
    user = db.session.scalar(select(StaffUser).where(func.lower(StaffUser.email) == address)) if address else None
    now = utcnow()
    if user is None or not user.active:
        from werkzeug.security import check_password_hash

        check_password_hash(_dummy(), password or "")
        audit.record("login_failed", detail_email=address[:254], reason="unknown or disabled account")
        raise LoginError("bad_credentials")
    if user.locked_until is not None and user.locked_until > now:
        audit.record("login_refused_locked", staff=user)
        raise LoginError("locked", retry_after=int((user.locked_until - now).total_seconds()) + 1)

    if not user.check_password(password or ""):
        _failed(user, "wrong password")
    if user.totp_secret:
        if not (totp_code or "").strip():
            # The right password without a code tells the caller the password is right, so
            # it counts towards the lockout like a wrong one: guessing stays capped.
            _count_attempt(user)
            raise LoginError("totp_required")
        if not verify_totp(user, totp_code):
            _failed(user, "wrong second-factor code")
    user.failed_logins = 0
    user.locked_until = None
    audit.record("login", staff=user, commit=False)
    db.session.commit()
    return user


def _count_attempt(user: StaffUser) -> None:
    cfg = current_app.config
    user.failed_logins = (user.failed_logins or 0) + 1
    if user.failed_logins >= cfg["STAFF_LOCKOUT_ATTEMPTS"]:
        _failed(user, "password without a second-factor code, too often")
    db.session.commit()


def _failed(user: StaffUser, reason: str) -> None:
    cfg = current_app.config
    user.failed_logins = (user.failed_logins or 0) + 1
    if user.failed_logins >= cfg["STAFF_LOCKOUT_ATTEMPTS"]:
        user.locked_until = utcnow() + timedelta(minutes=cfg["STAFF_LOCKOUT_MINUTES"])
        user.failed_logins = 0
        audit.record("lockout", staff=user, flagged=True, commit=False, reason=reason)
        db.session.commit()
        raise LoginError("locked", retry_after=cfg["STAFF_LOCKOUT_MINUTES"] * 60)
    audit.record("login_failed", staff=user, commit=False, reason=reason)
    db.session.commit()
    raise LoginError("totp_invalid" if "code" in reason else "bad_credentials")


def totp_required(user: StaffUser) -> bool:
    """The gmina requires a second factor for this role and the account has none yet."""
    return bool(current_app.config["STAFF_REQUIRE_TOTP"]) and user.can("approver") and not user.totp_secret


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(user: StaffUser, secret: str) -> str:
    issuer = f"Syrena {current_app.extensions['municipality'].name}"
    return _totp(secret).provisioning_uri(name=user.email, issuer_name=issuer)


def enable_totp(user: StaffUser, secret: str, code: str | None) -> bool:
    """Turn the second factor on once the user proves their app has the secret."""
    if not verify_totp(user, code, secret=secret):
        return False
    user.totp_secret = secret
    audit.record("totp_enabled", staff=user, commit=False)
    db.session.commit()
    return True


# --- sessions -----------------------------------------------------------------------------------

def _session_key(user: StaffUser) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"staff:{user.id}:{user.password_hash}:{user.active}".encode(), hashlib.sha256).hexdigest()


def start_session(user: StaffUser) -> None:
    session.clear()  # a new session id for the signed-in user (no fixation)
    session["staff_id"] = user.id
    session["staff_key"] = _session_key(user)
    session.permanent = True
    request.environ.pop("syrena.staff", None)


def end_session() -> None:
    user = current_staff()
    if user is not None:
        audit.record("logout", staff=user)
    session.clear()
    request.environ.pop("syrena.staff", None)


def current_staff() -> StaffUser | None:
    """The signed-in, active account of this request, or None.

    Cached on the request, not on `g`: an app context can outlive many requests (tests,
    scripts), and an earlier request's account must never be reused."""
    cached = request.environ.get("syrena.staff", _UNSET)
    if cached is not _UNSET:
        return cached
    user = None
    staff_id = session.get("staff_id")
    if staff_id is not None:
        user = db.session.get(StaffUser, staff_id)
        if user is None or not user.active or not hmac.compare_digest(session.get("staff_key", ""),
                                                                      _session_key(user)):
            session.clear()
            user = None
    request.environ["syrena.staff"] = user
    return user


def login_required(role: str = "editor") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """View decorator: signed in, second factor set up where required, at least `role`."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = current_staff()
            if user is None:
                return redirect(url_for("admin_auth.login", next=request.full_path))
            if totp_required(user) and request.endpoint not in ("admin_auth.totp_setup", "admin_auth.logout"):
                return redirect(url_for("admin_auth.totp_setup"))
            if not user.can(role):
                from flask import abort

                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator
