"""Abuse limits in the database, shared by every web process.

``hit(limits)`` is the one to use: a token bucket per key (GCRA), taken by ONE conditional
upsert per limit, so 30 parallel requests against a limit of 5 get exactly 5 through, on
SQLite (one writer at a time) and PostgreSQL (the upsert locks the key's row and re-checks
the condition against the row as committed). A limit of N per window W lets N through at
once and then one every W/N: there is no window edge where 2N fit in a moment.

Keys never hold a phone number or a full IPv6 address: ``number_key`` is an HMAC of the
number (so counters say nothing after an erasure), ``client_key`` buckets IPv6 clients by
their /64 (one home or phone network gets a whole /64 and could walk it).

Every limit in Syrena (residents' codes, staff sign-in, password changes) goes through
``hit``. (The old fixed-window table, rate_counter, is only purged now.)
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import case, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from db import db, utcnow
from proxy import ip_bucket
from subscribers.models import RateBucket, RateCounter


@dataclass(frozen=True)
class Limit:
    key: str  # e.g. "code:ip:1.2.3.4"
    max_count: int
    window_seconds: int


# --- keys ----------------------------------------------------------------------------------

def number_key(phone: str) -> str:
    """A stable pseudonym of an E.164 number for counters and code lookups: an HMAC keyed by
    SECRET_KEY, so the database alone never gives the number back."""
    key = hmac.new(current_app.config["SECRET_KEY"].encode(), b"syrena.number-key", hashlib.sha256).digest()
    return hmac.new(key, phone.encode(), hashlib.sha256).hexdigest()[:40]


def client_key(ip: str | None) -> str:
    """The client a per-IP limit counts: the address for IPv4, its /64 network for IPv6."""
    return ip_bucket(ip)[:64]


# --- the atomic token bucket -------------------------------------------------------------------

def _insert():  # noqa: ANN202
    return pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert


def _take(limit: Limit, now: float) -> bool:
    """One token from `limit`'s bucket, or False when it is empty. One statement."""
    if limit.max_count <= 0:
        return False
    interval = limit.window_seconds / limit.max_count
    start = case((RateBucket.tat > now, RateBucket.tat), else_=now)
    stmt = _insert()(RateBucket).values(key=limit.key, tat=now + interval)
    stmt = stmt.on_conflict_do_update(
        index_elements=[RateBucket.key],
        set_={"tat": start + interval},
        # A millisecond's tolerance: float seconds summed N times must not refuse the N-th
        # hit of a burst of N (epoch seconds in a double are exact to about 0.2 us).
        where=start + interval - now <= limit.window_seconds + 1e-3,
    ).returning(RateBucket.tat)
    return db.session.execute(stmt).first() is not None


def _wait(limit: Limit, now: float) -> int:
    if limit.max_count <= 0:
        return limit.window_seconds
    tat = db.session.scalar(select(RateBucket.tat).where(RateBucket.key == limit.key)) or now
    interval = limit.window_seconds / limit.max_count
    return max(1, math.ceil(tat + interval - limit.window_seconds - now))


def hit(limits: Sequence[Limit], now: datetime | None = None) -> int | None:
    """Take one hit from every limit. None when all allowed it (the caller commits, which
    also releases the rows); otherwise the seconds until they would, and the session is rolled
    back so a refused request charges no limit.

    Call it first in a transaction: on refusal the rollback also drops anything pending.
    Keys are taken in sorted order, so two requests never wait on each other crosswise.
    """
    ts = (now or utcnow()).timestamp()
    ordered = sorted(limits, key=lambda limit: limit.key)
    for limit in ordered:
        if not _take(limit, ts):
            wait = _wait(limit, ts)
            db.session.rollback()
            return wait
    return None


def purge_old(before: datetime) -> int:
    """Housekeeping: drop fixed windows that started before `before` and buckets that have
    been full again since then (a full bucket is the same as no row)."""
    windows = db.session.execute(delete(RateCounter).where(RateCounter.window_start < before)).rowcount or 0
    buckets = db.session.execute(delete(RateBucket).where(RateBucket.tat < before.timestamp())).rowcount or 0
    return windows + buckets
