"""Server-side staff sessions: the cookie carries a random token, the database decides.

- start(user) makes a new row and puts its token in Flask's (signed) session cookie; only
  the token's SHA-256 is stored, so SECRET_KEY plus a copy of the database cannot mint a
  working cookie.
- A session ends (ended_at set, never cleared) on logout, a password change or reset,
  disabling the account, or "sign out everywhere"; a copied cookie then stops working.
- It also ends after STAFF_SESSION_IDLE_MINUTES without a request and, however busy, after
  PERMANENT_SESSION_LIFETIME from sign-in: it is never renewed.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app, request, session
from sqlalchemy import delete, func, select, update

from db import db, utcnow
from staff.models import StaffSession, StaffUser

COOKIE_KEY = "staff_session"
# Ended and outlived sessions are kept this long (who was signed in from where), then dropped.
KEEP_ENDED = timedelta(days=90)
# last_seen_at is written at most this often: a write per page view would queue every
# admin request behind SQLite's single writer. The idle timeout is exact to this much.
TOUCH_EVERY = timedelta(seconds=60)
_ENV_SESSION = "syrena.staff_session"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(user: StaffUser) -> StaffSession:
    """A new session for `user` in this browser (a fresh cookie: no session fixation)."""
    session.clear()
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = StaffSession(token_hash=token_hash(token), staff_id=user.id, created_at=now, last_seen_at=now,
                       ip=request.remote_addr, user_agent=(request.headers.get("User-Agent") or "")[:400])
    db.session.add(row)
    # Housekeeping at a quiet moment: this account's long-gone sessions.
    db.session.execute(delete(StaffSession).where(
        StaffSession.staff_id == user.id,
        StaffSession.created_at < now - current_app.permanent_session_lifetime - KEEP_ENDED))
    db.session.commit()
    session[COOKIE_KEY] = token
    session.permanent = True
    request.environ[_ENV_SESSION] = row.id
    return row


def _end(row_id: int, reason: str) -> None:
    db.session.execute(update(StaffSession).where(StaffSession.id == row_id, StaffSession.ended_at.is_(None))
                       .values(ended_at=utcnow(), ended_reason=reason))
    db.session.commit()


def lookup() -> StaffUser | None:
    """The account whose live session this request's cookie names, or None (and the cookie's
    token is dropped when its session is over)."""
    token = session.get(COOKIE_KEY)
    if not isinstance(token, str) or not token:
        return None
    row = db.session.scalar(select(StaffSession).where(StaffSession.token_hash == token_hash(token)))
    if row is None or row.ended_at is not None:
        session.pop(COOKIE_KEY, None)
        return None
    user = db.session.get(StaffUser, row.staff_id)
    now = utcnow()
    idle = timedelta(minutes=current_app.config["STAFF_SESSION_IDLE_MINUTES"])
    reason = None
    if user is None or not user.active:
        reason = "disabled"
    elif now - row.created_at > current_app.permanent_session_lifetime:
        reason = "expired"
    elif now - row.last_seen_at > idle:
        reason = "idle"
    if reason:
        _end(row.id, reason)
        session.pop(COOKIE_KEY, None)
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        db.session.execute(update(StaffSession).where(StaffSession.id == row.id, StaffSession.ended_at.is_(None))
                           .values(last_seen_at=now))
        db.session.commit()
    request.environ[_ENV_SESSION] = row.id
    return user


def end_current(reason: str = "logout") -> None:
    """End this browser's session (if any) and forget its token."""
    lookup_id = request.environ.get(_ENV_SESSION)
    token = session.get(COOKIE_KEY)
    if lookup_id is None and isinstance(token, str):
        lookup_id = db.session.scalar(select(StaffSession.id).where(StaffSession.token_hash == token_hash(token)))
    if lookup_id is not None:
        _end(lookup_id, reason)
    session.clear()
    request.environ.pop(_ENV_SESSION, None)


def end_all(user: StaffUser, reason: str) -> int:
    """End every live session of `user`, everywhere (the caller commits). Returns how many."""
    result = db.session.execute(update(StaffSession)
                                .where(StaffSession.staff_id == user.id, StaffSession.ended_at.is_(None))
                                .values(ended_at=utcnow(), ended_reason=reason))
    return result.rowcount or 0


def live_count(user: StaffUser) -> int:
    """Sessions not ended yet (some may have timed out unseen: they end at their next use)."""
    return db.session.scalar(select(func.count()).select_from(StaffSession)
                             .where(StaffSession.staff_id == user.id, StaffSession.ended_at.is_(None))) or 0
