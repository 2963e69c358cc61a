"""Staff sign-in: password, optional TOTP second factor, throttling, sessions.

- Passwords are scrypt hashes (StaffUser.set_password).
- No hard lock anyone can trigger: each (account, client address) pair gets
  STAFF_LOCKOUT_ATTEMPTS free tries, then growing delays (staff/throttle.py), counted
  before the password is checked. Sign-in attempts are also limited per address, so nobody
  can guess across many accounts. An unknown e-mail is answered exactly like a known one.
- TOTP (authenticator apps): optional for everyone; required for approvers and admins when
  STAFF_REQUIRE_TOTP is on (the default in production). A time step signs in once: it is
  recorded under a primary key, so of many parallel sign-ins with one code one succeeds.
- Sessions are rows in the database (staff/sessions.py); a temporary password must be
  changed before anything else works (login_required).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any

import pyotp
from flask import abort, current_app, has_request_context, redirect, request, url_for
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from werkzeug.security import check_password_hash, generate_password_hash

from db import db, is_postgres, utcnow
from staff import audit, sessions, throttle
from staff.models import StaffTotpStep, StaffUser
from subscribers import ratelimit

_dummy_hash: str | None = None
_UNSET = object()
# Used steps older than this many steps are of no use for replay (codes are checked within
# one step of drift) and are dropped when the account signs in again.
_KEEP_STEPS = 10


def _dummy() -> str:
    """Compared against when the e-mail is unknown, so a wrong e-mail takes as long as a
    wrong password. Made on first use: scrypt at import would slow every process start."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = generate_password_hash("not-a-real-password", method="scrypt")
    return _dummy_hash


class LoginError(Exception):
    """Sign-in refused. `code`: bad_credentials, totp_required, totp_invalid, rate_limited."""

    def __init__(self, code: str, retry_after: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.retry_after = retry_after


def _ip_limit(ip: str | None) -> ratelimit.Limit:
    return ratelimit.Limit(f"login:ip:{ratelimit.client_key(ip)}", current_app.config["STAFF_LOGINS_PER_IP"], 900)


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret)


def _claim_step(user: StaffUser, step: int) -> bool:
    """Record that `step` signed this account in; False when it already had (one statement:
    a parallel request with the same code conflicts on the primary key)."""
    insert = pg_insert if is_postgres() else sqlite_insert
    stmt = insert(StaffTotpStep).values(staff_id=user.id, step=step, used_at=utcnow()).on_conflict_do_nothing(
        index_elements=[StaffTotpStep.staff_id, StaffTotpStep.step]).returning(StaffTotpStep.step)
    # RETURNING, not rowcount: psycopg reports -1 for an ORM-level INSERT.
    claimed = db.session.execute(stmt).scalar() is not None
    if claimed:
        db.session.execute(delete(StaffTotpStep).where(StaffTotpStep.staff_id == user.id,
                                                       StaffTotpStep.step < step - _KEEP_STEPS))
    db.session.commit()
    return claimed


def verify_totp(user: StaffUser, code: str | None, secret: str | None = None) -> bool:
    """Check a 6-digit code against the user's (or a new) secret and use it up: a code that
    has signed in (or enrolled) once is refused ever after, even in parallel."""
    secret = secret or user.totp_secret
    code = (code or "").strip().replace(" ", "")
    if not secret or not code.isdigit() or len(code) != 6:
        return False
    totp = _totp(secret)
    now = utcnow()
    for drift in (0, -1, 1):  # one step of clock drift either way
        step = totp.timecode(now) + drift
        if hmac.compare_digest(totp.generate_otp(step), code):
            return _claim_step(user, step)
    return False


def normalise_email(email: str | None) -> str:
    return (email or "").strip().lower()


def _account_for(address: str) -> StaffUser | None:
    # Nothing that cannot be a stored address reaches the database (PostgreSQL refuses a NUL
    # in text with an error): such input is simply an unknown e-mail, answered like any other.
    if not address or len(address) > 254 or "\x00" in address:
        return None
    return db.session.scalar(select(StaffUser).where(func.lower(StaffUser.email) == address))


def authenticate(email: str | None, password: str | None, totp_code: str | None) -> StaffUser:
    """Return the account for these credentials or raise LoginError (and audit either).

    The attempt is counted before anything is checked; known and unknown e-mails take the
    same path, the same time and get the same answers."""
    ip = request.remote_addr
    wait = ratelimit.hit([_ip_limit(ip)])  # one atomic take: parallel tries cannot overshoot
    if wait:
        raise LoginError("rate_limited", retry_after=wait)
    db.session.commit()

    address = normalise_email(email)
    verdict = throttle.attempt(address, ip)
    if not verdict.allowed:
        raise LoginError("rate_limited", retry_after=verdict.retry_after)
    user = _account_for(address)
    if verdict.delays_started:
        # Someone used up the free tries for this account from one address: staff should look.
        audit.record("login_throttled", staff=user, flagged=True, commit=False, attempts=verdict.attempts,
                     **({} if user else {"detail_email": address[:254]}))
    if user is None or not user.active:
        check_password_hash(_dummy(), password or "")
        _failed(address, None, "unknown or disabled account")
        raise LoginError("bad_credentials")
    if not user.check_password(password or ""):
        _failed(address, user, "wrong password")
        raise LoginError("bad_credentials")
    if user.totp_secret:
        if not (totp_code or "").strip():
            db.session.commit()
            # The attempt was counted: the right password without a code is no free probe.
            raise LoginError("totp_required")
        if not verify_totp(user, totp_code):
            _failed(address, user, "wrong or used second-factor code")
            raise LoginError("totp_invalid")
    throttle.succeeded(address, ip)
    throttle.purge_old()
    audit.record("login", staff=user, commit=False)
    db.session.commit()
    return user


def _failed(address: str, user: StaffUser | None, reason: str) -> None:
    """Audit a refused sign-in; flag the account once its failures from all addresses
    together look like an attack spread over many addresses."""
    who: dict[str, Any] = {"staff": user} if user else {"detail_email": address[:254]}
    if throttle.failed_everywhere(address) == throttle.ATTACK_FAILURES:
        audit.record("login_attack", flagged=True, commit=False, failures=throttle.ATTACK_FAILURES, **who)
    audit.record("login_failed", reason=reason, **who)


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

def start_session(user: StaffUser) -> None:
    sessions.start(user)
    request.environ.pop("syrena.staff", None)


def end_session() -> None:
    user = current_staff()
    if user is not None:
        audit.record("logout", staff=user, commit=False)
    sessions.end_current("logout")
    request.environ.pop("syrena.staff", None)


def end_all_sessions(user: StaffUser, reason: str) -> int:
    """Sign `user` out everywhere (the caller commits); this request forgets them too."""
    count = sessions.end_all(user, reason)
    if not has_request_context():  # the command line
        return count
    cached = request.environ.get("syrena.staff")
    if cached is not None and cached is not _UNSET and cached.id == user.id:
        request.environ.pop("syrena.staff", None)
    return count


def current_staff() -> StaffUser | None:
    """The signed-in, active account of this request, or None.

    Cached on the request, not on `g`: an app context can outlive many requests (tests,
    scripts), and an earlier request's account must never be reused."""
    cached = request.environ.get("syrena.staff", _UNSET)
    if cached is not _UNSET:
        return cached
    user = sessions.lookup()
    request.environ["syrena.staff"] = user
    return user


# Pages a signed-in account may see before its temporary password is replaced or its
# required second factor is set up.
_PASSWORD_PAGES = ("admin_auth.new_password", "admin_auth.logout")
_TOTP_PAGES = ("admin_auth.totp_setup", "admin_auth.logout")


def login_required(role: str = "editor") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """View decorator: signed in, temporary password replaced, second factor set up where
    required, at least `role`."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = current_staff()
            if user is None:
                return redirect(url_for("admin_auth.login", next=request.full_path))
            if user.must_change_password:
                if request.endpoint not in _PASSWORD_PAGES:
                    return redirect(url_for("admin_auth.new_password", next=request.full_path))
            elif totp_required(user) and request.endpoint not in _TOTP_PAGES:
                return redirect(url_for("admin_auth.totp_setup"))
            if not user.can(role):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator
