"""Who a roll-call's message goes to: its members (decided at the start), reachable on the
channel; a re-send only those of them without an answer when it goes out. One SELECT."""

from __future__ import annotations

from sqlalchemy import Select, select

from alerts.match import reachable
from alerts.models import Alert
from rollcall.models import RollCallMember
from subscribers.models import Subscriber


def recipients(alert: Alert, channel: str) -> Select:
    meta = alert.meta or {}
    members = select(RollCallMember.subscriber_id).where(RollCallMember.roll_call_id == meta["roll_call"])
    if meta.get("wave", 1) > 1:
        members = members.where(RollCallMember.answer.is_(None))
    return reachable(channel).where(Subscriber.id.in_(members))
