"""Delivery figures for one alert: what staff watch during a send."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from alerts.models import (
    DELIVERED,
    DELIVERY_EXPIRED,
    FAILED,
    PENDING,
    SENDING,
    SENT,
    SKIPPED,
    UNCERTAIN,
    UNDELIVERED,
    Alert,
    Delivery,
)
from db import db
from subscribers.models import SubscriberArea

# How staff read the statuses.
BUCKETS = {PENDING: "queued", SENDING: "sending", UNCERTAIN: "sending", SENT: "sent", DELIVERED: "delivered",
           UNDELIVERED: "failed", FAILED: "failed", DELIVERY_EXPIRED: "expired", SKIPPED: "skipped"}
BUCKET_ORDER = ("queued", "sending", "sent", "delivered", "failed", "expired", "skipped")


def _empty() -> dict[str, int]:
    return {b: 0 for b in ("total", *BUCKET_ORDER)}


def delivery_figures(alert_id: int) -> dict[str, Any]:
    """Counts per channel and per area, plus segments (the SMS bill).

    'sent' counts what the provider accepted and has not confirmed yet; 'delivered' what the
    handset confirmed. A resident in several areas counts in each of them.
    """
    by_channel: dict[str, dict[str, int]] = {}
    total = _empty()
    for channel, status, count in db.session.execute(
        select(Delivery.channel, Delivery.status, func.count()).where(Delivery.alert_id == alert_id)
        .group_by(Delivery.channel, Delivery.status)
    ):
        bucket = BUCKETS.get(status, status)
        row = by_channel.setdefault(channel, _empty())
        for target in (row, total):
            target[bucket] = target.get(bucket, 0) + count
            target["total"] += count
    by_area: dict[str, dict[str, int]] = {}
    per_area = (select(SubscriberArea.area, Delivery.status, func.count())
                .join(SubscriberArea, SubscriberArea.subscriber_id == Delivery.subscriber_id)
                .where(Delivery.alert_id == alert_id))
    targeted = db.session.scalar(select(Alert.areas).where(Alert.id == alert_id))
    if targeted is not None:
        per_area = per_area.where(SubscriberArea.area.in_(targeted))  # count targeted areas only
    for area, status, count in db.session.execute(per_area.group_by(SubscriberArea.area, Delivery.status)):
        row = by_area.setdefault(area, _empty())
        row[BUCKETS.get(status, status)] += count
        row["total"] += count
    segments = db.session.scalar(
        select(func.coalesce(func.sum(Delivery.segments), 0))
        .where(Delivery.alert_id == alert_id, Delivery.channel == "sms")
    )
    return {"total": total, "by_channel": by_channel, "by_area": by_area, "sms_segments": int(segments or 0)}


# How staff read a call's outcome; "calling": no outcome yet (ringing, or the first call waits).
CALL_ORDER = ("confirmed", "answered", "voicemail", "busy", "no_answer", "failed", "opted_out", "calling")


def _call_bucket(outcome: str | None) -> str:
    return outcome if outcome in CALL_ORDER else "calling"


def call_figures(alert_id: int) -> dict[str, Any] | None:
    """Outcomes of the alert's calls, in all and per area, and how many residents did not
    confirm (everyone called who has not pressed 1, whatever happened); None without calls."""
    rows = db.session.execute(
        select(Delivery.outcome, func.count()).where(Delivery.alert_id == alert_id, Delivery.channel == "voice")
        .group_by(Delivery.outcome)).all()
    if not rows:
        return None
    total = {b: 0 for b in CALL_ORDER}
    for outcome, count in rows:
        total[_call_bucket(outcome)] += count
    by_area: dict[str, dict[str, int]] = {}
    per_area = (select(SubscriberArea.area, Delivery.outcome, func.count())
                .join(SubscriberArea, SubscriberArea.subscriber_id == Delivery.subscriber_id)
                .where(Delivery.alert_id == alert_id, Delivery.channel == "voice"))
    targeted = db.session.scalar(select(Alert.areas).where(Alert.id == alert_id))
    if targeted is not None:
        per_area = per_area.where(SubscriberArea.area.in_(targeted))
    for area, outcome, count in db.session.execute(per_area.group_by(SubscriberArea.area, Delivery.outcome)):
        row = by_area.setdefault(area, {b: 0 for b in CALL_ORDER})
        row[_call_bucket(outcome)] += count
    return {"total": total, "by_area": by_area, "called": sum(total.values()),
            "not_confirmed": sum(total.values()) - total["confirmed"]}


def not_confirmed(alert_id: int):  # noqa: ANN201 - a Select of (Delivery, phone, language)
    """The alert's calls nobody confirmed with 1, oldest first: the sołtys's list."""
    from subscribers.models import Subscriber

    return (select(Delivery, Subscriber.phone, Subscriber.id)
            .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.alert_id == alert_id, Delivery.channel == "voice",
                   Delivery.outcome.is_distinct_from("confirmed"))
            .order_by(Delivery.id))
