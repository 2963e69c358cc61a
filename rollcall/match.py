"""Who a roll-call's message goes to: its members (decided at the start), reachable on the
channel; a re-send only those of them without an answer when it goes out. One SELECT.
And which messages were a roll-call's questions."""

from __future__ import annotations

from sqlalchemy import Select, select

from alerts.match import reachable
from alerts.models import Alert
from rollcall.models import SOURCE, RollCallMember
from subscribers.models import Subscriber


def carriers(roll_call_id: int) -> Select:
    """Ids of the alerts that asked this roll-call's question (every wave)."""
    return select(Alert.id).where(Alert.source == SOURCE, Alert.external_id.startswith(f"{SOURCE}:{roll_call_id}:"))


def recipients(alert: Alert, channel: str) -> Select:
    meta = alert.meta or {}
    members = select(RollCallMember.subscriber_id).where(RollCallMember.roll_call_id == meta["roll_call"])
    if meta.get("wave", 1) > 1:
        members = members.where(RollCallMember.answer.is_(None))
    return reachable(channel).where(Subscriber.id.in_(members))
