"""Fixed-window counters in the database, shared by every web process.

Counting is "a little inexact" under races (two processes may both read 4 of 5), which is
fine for abuse limits and keeps the code one table and two statements.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from db import db, utcnow
from subscribers.models import RateCounter


@dataclass(frozen=True)
class Limit:
    key: str  # e.g. "code:ip:1.2.3.4"
    max_count: int
    window_seconds: int


def _window_start(now: datetime, window: int) -> datetime:
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % window, tz=timezone.utc)


def retry_after_if_exceeded(limits: list[Limit], now: datetime | None = None) -> int | None:
    """Seconds until every limit allows one more hit, or None when all allow it now."""
    now = now or utcnow()
    wait = 0
    for limit in limits:
        start = _window_start(now, limit.window_seconds)
        count = db.session.scalar(
            select(RateCounter.count).where(RateCounter.key == limit.key, RateCounter.window_start == start)
        ) or 0
        if count >= limit.max_count:
            end = start + timedelta(seconds=limit.window_seconds)
            wait = max(wait, int((end - now).total_seconds()) + 1)
    return wait or None


def record_hits(limits: list[Limit], now: datetime | None = None) -> None:
    """Count one hit against each limit (an upsert; the caller commits)."""
    now = now or utcnow()
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    for limit in limits:
        stmt = insert(RateCounter).values(
            key=limit.key, window_start=_window_start(now, limit.window_seconds), count=1
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[RateCounter.key, RateCounter.window_start],
            set_={"count": RateCounter.count + 1},
        )
        db.session.execute(stmt)


def purge_old(before: datetime) -> int:
    """Housekeeping: drop counters whose window started before `before`."""
    result = db.session.execute(db.delete(RateCounter).where(RateCounter.window_start < before))
    return result.rowcount or 0
