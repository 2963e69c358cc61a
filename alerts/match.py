"""Who should get an alert: a SELECT of subscriber ids, never a Python loop.

A resident matches when they are active (verified, not opted out), reachable on the
channel, chose the alert's category with a level threshold the alert meets, and chose an
area the alert targets. ``emergency`` reaches every active resident in the target areas
whatever their categories.

Calls (``voice``) go to residents who asked for them, for the categories they want called
about from the level they chose (``call_level``; by default weather and hydro from level 2),
and for every emergency. A message to groups (sołtysi, OSP, ...) reaches their members in
the target areas whatever their categories. A resident with calls only (``voice_only``: a landline) never gets an SMS.
"""

from __future__ import annotations

from sqlalchemy import Select, or_, select

from alerts.models import DELIVERED, SENDING, SENT, UNCERTAIN, Alert, Delivery
from subscribers.models import (ACTIVE, PushSubscription, Subscriber, SubscriberArea, SubscriberCategory,
                                SubscriberGroup)

# A resident "got" a message when the provider took it (or may have: sending/uncertain).
GOT_IT = (SENDING, UNCERTAIN, SENT, DELIVERED)


def reachable(channel: str) -> Select:
    """Active residents who can be reached on `channel`."""
    query = select(Subscriber.id).where(Subscriber.status == ACTIVE)
    if channel == "sms":
        return query.where(Subscriber.phone.is_not(None), Subscriber.voice_only.is_(False))
    if channel == "voice":
        return query.where(Subscriber.phone.is_not(None), Subscriber.voice.is_(True))
    return query.where(Subscriber.id.in_(select(PushSubscription.subscriber_id)))


def matching(alert: Alert, channel: str) -> Select:
    """Subscriber ids whose preferences match the alert on `channel`. An exercise goes to
    the staff test group only, whatever they chose."""
    query = reachable(channel)
    if alert.exercise:
        return query.where(Subscriber.test_group.is_(True))
    if alert.groups:
        # A message to groups reaches their members, whatever categories they chose: being
        # in the group (joined, or added under its legal basis) is what they chose.
        query = query.where(Subscriber.id.in_(
            select(SubscriberGroup.subscriber_id).where(SubscriberGroup.group.in_(alert.groups))))
        if channel == "voice" and alert.category != "emergency":
            # A call still rings only for what the member wants calls about (the farmers'
            # deadline comes by SMS), unless calls are all they get.
            query = query.where(or_(Subscriber.voice_only.is_(True), Subscriber.id.in_(
                select(SubscriberCategory.subscriber_id).where(
                    SubscriberCategory.category == alert.category,
                    SubscriberCategory.call_level <= (alert.level or 1)))))
    elif alert.category != "emergency":
        # Messages without levels (official, events...) count as level 1: everyone who chose them.
        level = alert.level or 1
        # A call comes from the level chosen for calls (NULL: never), an SMS or push from
        # the level chosen for the category.
        threshold = SubscriberCategory.call_level if channel == "voice" else SubscriberCategory.min_level
        query = query.where(Subscriber.id.in_(
            select(SubscriberCategory.subscriber_id).where(
                SubscriberCategory.category == alert.category, threshold <= level)
        ))
    if alert.areas is not None:
        query = query.where(Subscriber.id.in_(
            select(SubscriberArea.subscriber_id).where(SubscriberArea.area.in_(alert.areas))
        ))
    return query


def earlier_recipients(chain_ids: list[int], channel: str) -> Select:
    """Active residents who got any earlier message of an alert's chain on `channel`."""
    return reachable(channel).where(Subscriber.id.in_(
        select(Delivery.subscriber_id).where(
            Delivery.alert_id.in_(chain_ids), Delivery.channel == channel, Delivery.status.in_(GOT_IT))
    ))
