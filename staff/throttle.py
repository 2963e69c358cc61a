"""Sign-in throttling per (account, client address): growing delays, never a hard lock.

A hard lock after N wrong passwords lets anyone lock every approver out during a flood.
Instead each (account, address) pair gets STAFF_LOCKOUT_ATTEMPTS free tries; after that
every try must wait: 1 s, then 2 s, 4 s ... up to STAFF_LOGIN_DELAY_MAX_SECONDS. The owner
signing in from another address is not slowed at all, and the per-address limit in
staff/auth.py caps one address across many accounts.

Each attempt is counted by ONE statement (INSERT ... ON CONFLICT DO UPDATE ... RETURNING)
that both counts it and decides whether it may go on to the password check, so twenty
parallel wrong passwords get exactly as many checks as twenty sequential ones. The account
is an HMAC of the typed e-mail, so an unknown e-mail is throttled exactly like a known one.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import and_, case, delete, literal, not_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from db import db, is_postgres
from proxy import ip_bucket
from staff.models import StaffLoginThrottle

# Failures are forgotten after this long without any attempt from that address.
FORGET_SECONDS = 24 * 3600
# Wrong passwords or codes for one account from all addresses together (a botnet trying a
# few from each) that make the audit log flag the account as under attack.
ATTACK_FAILURES = 20
# The row that counts an account's failures from every address.
EVERYWHERE = "*"


@dataclass(frozen=True)
class Verdict:
    allowed: bool  # go on to the password check
    retry_after: int | None  # when refused: seconds until the next attempt is allowed
    attempts: int  # attempts let through since the last success (this one included)
    delays_started: bool  # this attempt used the last free try: flag it in the audit log


def account_key(email: str) -> str:
    """HMAC of the normalised e-mail: the table never holds an address (known or not)."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"staff-login:{email.strip().lower()}".encode(), hashlib.sha256).hexdigest()


def attempt(email: str, ip: str | None) -> Verdict:
    """Count one sign-in attempt and say whether it may be checked. Commits at once, so the
    row lock is not held across the (slow, on purpose) password hash."""
    cfg = current_app.config
    free = max(1, int(cfg["STAFF_LOCKOUT_ATTEMPTS"]))
    base = float(cfg["STAFF_LOGIN_DELAY_BASE_SECONDS"])
    cap = float(cfg["STAFF_LOGIN_DELAY_MAX_SECONDS"])
    now = time.time()
    t = StaffLoginThrottle.__table__.c

    stale = t.last_attempt_at < now - FORGET_SECONDS
    blocked = and_(not_(stale), t.next_allowed_at > now)
    previous = case((stale, 0), else_=t.attempts)
    previous_delay = case((stale, 0.0), else_=t.delay_seconds)
    attempts = previous + 1
    doubled = previous_delay * 2
    delay = case((attempts < free, 0.0), (previous_delay <= 0, base), (doubled > cap, cap), else_=doubled)

    first_delay = base if free <= 1 else 0.0
    insert = pg_insert if is_postgres() else sqlite_insert
    stmt = insert(StaffLoginThrottle).values(
        account_key=account_key(email), ip_bucket=ip_bucket(ip), attempts=1, refused=0, last_refused=False,
        delay_seconds=first_delay, next_allowed_at=now + first_delay, last_attempt_at=now,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[StaffLoginThrottle.account_key, StaffLoginThrottle.ip_bucket],
        set_={
            # Every right-hand side reads the row as it was before this statement.
            "attempts": case((blocked, t.attempts), else_=attempts),
            "delay_seconds": case((blocked, t.delay_seconds), else_=delay),
            "next_allowed_at": case((blocked, t.next_allowed_at), else_=literal(now) + delay),
            "refused": case((blocked, t.refused + 1), (stale, 0), else_=t.refused),
            "last_refused": case((blocked, True), else_=False),
            "last_attempt_at": now,
        },
    ).returning(t.attempts, t.last_refused, t.next_allowed_at)
    row = db.session.execute(stmt).one()
    db.session.commit()
    if row.last_refused:
        return Verdict(False, max(1, math.ceil(row.next_allowed_at - now)), row.attempts, False)
    return Verdict(True, None, row.attempts, row.attempts == free)


def failed_everywhere(email: str) -> int:
    """Count one checked-and-wrong sign-in for the account across all addresses (no
    limit: a signal). Returns the count since the account last had a quiet day."""
    now = time.time()
    t = StaffLoginThrottle.__table__.c
    stale = t.last_attempt_at < now - FORGET_SECONDS
    insert = pg_insert if is_postgres() else sqlite_insert
    stmt = insert(StaffLoginThrottle).values(
        account_key=account_key(email), ip_bucket=EVERYWHERE, attempts=1, refused=0, last_refused=False,
        delay_seconds=0.0, next_allowed_at=0.0, last_attempt_at=now,
    ).on_conflict_do_update(
        index_elements=[StaffLoginThrottle.account_key, StaffLoginThrottle.ip_bucket],
        set_={"attempts": case((stale, 1), else_=t.attempts + 1), "last_attempt_at": now},
    ).returning(t.attempts)
    return db.session.execute(stmt).scalar_one()


def succeeded(email: str, ip: str | None) -> None:
    """A full sign-in from this address: its count starts over (the caller commits)."""
    db.session.execute(delete(StaffLoginThrottle).where(StaffLoginThrottle.account_key == account_key(email),
                                                        StaffLoginThrottle.ip_bucket == ip_bucket(ip)))


def forget_account(email: str) -> int:
    """Drop every address's count for this account (an admin reset its password)."""
    result = db.session.execute(delete(StaffLoginThrottle).where(StaffLoginThrottle.account_key ==
                                                                 account_key(email)))
    return result.rowcount or 0


def purge_old() -> int:
    """Housekeeping: rows nobody has tried for FORGET_SECONDS count for nothing."""
    result = db.session.execute(delete(StaffLoginThrottle).where(
        StaffLoginThrottle.last_attempt_at < time.time() - FORGET_SECONDS))
    return result.rowcount or 0
