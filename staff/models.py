"""Staff accounts and what signing in leaves behind: sessions, used TOTP steps, throttles.

Passwords are hashed with scrypt (werkzeug's default KDF). The rules that use these tables
are in staff/auth.py (sign-in), staff/sessions.py and staff/throttle.py.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from db import UTCDateTime, db, utcnow

ROLES = ("editor", "approver", "admin")
# Each role can do what the ones before it can.
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}


class StaffUser(db.Model):
    __tablename__ = "staff_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    # A password someone else chose (`users create`, an admin's reset): it must be replaced
    # at the first sign-in before anything else works.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, method="scrypt")

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def can(self, role: str) -> bool:
        """At least `role` (editor < approver < admin), and the account is active."""
        return self.active and ROLE_RANK[self.role] >= ROLE_RANK[role]


class StaffSession(db.Model):
    """One signed-in browser. The cookie holds a random token; only its SHA-256 is stored,
    so read access to the database (a backup, a replica) plus SECRET_KEY cannot make a
    working cookie. A session ends by setting ended_at; it is never revived."""

    __tablename__ = "staff_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # logout, password_changed, password_reset, disabled, signed_out_everywhere, idle, expired
    ended_reason: Mapped[str | None] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))


class StaffTotpStep(db.Model):
    """A TOTP time step that has signed someone in. The primary key is the "once": of many
    parallel sign-ins with the same code, one INSERT succeeds and the others conflict."""

    __tablename__ = "staff_totp_step"

    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StaffLoginThrottle(db.Model):
    """Sign-in attempts for one (account, client address) pair.

    The account is an HMAC of the e-mail typed, whether or not an account has it, so an
    unknown address is throttled exactly like a known one and the table names no one.
    Times are epoch seconds (floats) so the one upsert can do its arithmetic in SQL on
    SQLite and PostgreSQL alike."""

    __tablename__ = "staff_login_throttle"

    account_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    ip_bucket: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Attempts that were let through to the password check since the last success.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts refused unchecked because they came before next_allowed_at.
    refused: Mapped[int] = mapped_column(Integer, default=0)
    # Whether the latest attempt was refused: written by the same statement that decided it.
    last_refused: Mapped[bool] = mapped_column(Boolean, default=False)
    delay_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    next_allowed_at: Mapped[float] = mapped_column(Float, default=0.0)
    last_attempt_at: Mapped[float] = mapped_column(Float, default=0.0)
