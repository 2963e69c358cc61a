"""What is in force now, for the public pages: the warnings and messages a resident should
know about, most severe first, and when IMGW was last read.

In force means published and not ended; a withdrawal notice is not itself in force (it is
listed among the recent withdrawals), and an exercise or a message to a group is never shown
publicly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select

from alerts.models import KIND_CANCEL, PUBLISHED, Alert, FeedHealth
from rollcall.models import SOURCE as ROLLCALL
from db import db, utcnow
from municipality import CATEGORIES

# How long a withdrawal stays on the home page: a resident who got the warning last night
# sees in the morning that it was called off.
RECENT_WITHDRAWALS = timedelta(hours=24)
# The feeds that stand for "IMGW was read" (alerts/feeds.py records their health).
IMGW_FEEDS = ("imgw-meteo", "imgw-hydro")


def severity(alert: Alert) -> int:
    """Emergency messages first, then hazard warnings by level, then the office's messages."""
    if alert.category == "emergency":
        return 4
    category = CATEGORIES.get(alert.category)
    return (alert.level or 1) if category is not None and category.hazard else 0


@dataclass(frozen=True)
class Situation:
    in_force: list[Alert]
    withdrawn: list[Alert]  # withdrawal notices of the last RECENT_WITHDRAWALS
    imgw_read_at: datetime | None


def current(now: datetime | None = None) -> Situation:
    now = now or utcnow()
    # A message to a group (the OSP, the sołtysi) is not the public's, like an exercise, and
    # neither is a roll-call's question.
    public = (Alert.status == PUBLISHED, Alert.exercise.is_(False), Alert.groups.is_(None),
              Alert.source != ROLLCALL)
    alerts = db.session.scalars(
        select(Alert).where(*public, Alert.kind != KIND_CANCEL,
                            or_(Alert.expires_at.is_(None), Alert.expires_at > now))
    ).all()
    withdrawn = db.session.scalars(
        select(Alert).where(*public, Alert.kind == KIND_CANCEL, Alert.published_at > now - RECENT_WITHDRAWALS)
        .order_by(Alert.published_at.desc()).limit(20)
    ).all()
    read_at = db.session.scalar(select(func.max(FeedHealth.last_success_at)).where(FeedHealth.feed.in_(IMGW_FEEDS)))
    ordered = sorted(alerts, key=lambda a: (-severity(a), -(a.published_at or now).timestamp()))
    return Situation(in_force=ordered, withdrawn=list(withdrawn), imgw_read_at=read_at)
