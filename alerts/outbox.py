"""Fan-out: turn a published alert into one outbox row per (alert, resident, channel).

One set-based statement per channel (INSERT ... SELECT ... ON CONFLICT DO NOTHING): the
database does the work, memory stays flat whatever the population, and running it twice
adds nothing because of the unique constraint.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, Select, func, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from alerts.models import PENDING, Alert, Delivery
from db import UTCDateTime, db, utcnow

# Priority: emergency and severe warnings overtake routine messages already queued.
PRIORITY_EMERGENCY = 30
PRIORITY_LEVEL_3 = 20
PRIORITY_LEVEL_2 = 10
PRIORITY_ROUTINE = 0


def priority(alert: Alert) -> int:
    if alert.category == "emergency":
        return PRIORITY_EMERGENCY
    if (alert.level or 0) >= 3:
        return PRIORITY_LEVEL_3
    if (alert.level or 0) == 2:
        return PRIORITY_LEVEL_2
    if (alert.meta or {}).get("quiet_hours_override"):
        # An approver sent this routine message inside the quiet hours on purpose, with a
        # reason (alerts/quiet.py): it goes at night, still behind every warning.
        return QUIET_HOURS_MIN_PRIORITY
    return PRIORITY_ROUTINE


# Only emergencies and warnings of level 2 and above wake people at night: a delivery with a
# lower priority waits out the quiet hours (the dispatcher claims only priority >= this then).
QUIET_HOURS_MIN_PRIORITY = PRIORITY_LEVEL_2


def waits_for_quiet_hours(alert: Alert) -> bool:
    return priority(alert) < QUIET_HOURS_MIN_PRIORITY


def insert_deliveries(alert: Alert, channel: str, subscriber_ids: Select, now: datetime | None = None) -> int:
    """Queue `alert` on `channel` for every subscriber id the SELECT yields; returns rows added."""
    now = now or utcnow()
    ids = subscriber_ids.subquery()
    source = select(
        literal(alert.id, Integer),
        ids.c.id,
        literal(channel),
        literal(PENDING),
        literal(priority(alert), Integer),
        literal(now, UTCDateTime()),
        literal(0, Integer),
        literal(now, UTCDateTime()),
    # SQLite needs a WHERE in an INSERT ... SELECT with ON CONFLICT to parse it unambiguously.
    ).where(ids.c.id.is_not(None))
    postgres = db.engine.dialect.name == "postgresql"
    insert = pg_insert if postgres else sqlite_insert
    stmt = insert(Delivery).from_select(
        ["alert_id", "subscriber_id", "channel", "status", "priority", "next_attempt_at", "attempts", "created_at"],
        source,
    ).on_conflict_do_nothing(index_elements=["alert_id", "subscriber_id", "channel"])
    if postgres:
        # psycopg reports no rowcount for INSERT ... SELECT through SQLAlchemy; count the
        # inserted rows on the server instead (nothing but one number crosses the wire).
        inserted = stmt.returning(literal(1, Integer)).cte("inserted")
        return int(db.session.scalar(select(func.count()).select_from(inserted)) or 0)
    return max(db.session.execute(stmt).rowcount or 0, 0)
