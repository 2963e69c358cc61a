"""A resident's messages in their GDPR export, and their provider ids for erasure. (On
erasure the delivery rows stay, with the resident's id cleared by the foreign key, so the
gmina keeps anonymous counts; the message bodies are deleted at the SMS provider.)"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from alerts.models import Alert, Delivery, DeliveryEvent
from db import db
from subscribers import erasure, service
from subscribers.models import Subscriber


def export_messages(subscriber: Subscriber) -> tuple[str, list[dict[str, Any]]]:
    rows = db.session.execute(
        select(Delivery, Alert).join(Alert, Alert.id == Delivery.alert_id)
        .where(Delivery.subscriber_id == subscriber.id).order_by(Delivery.id)
    ).all()
    from alerts.call_outcome import calls_made

    made = calls_made([d.id for d, _alert in rows if d.channel == "voice"])
    return "messages_to_you", [
        {"alert": alert.id, "title": alert.title(subscriber.language), "channel": d.channel, "status": d.status,
         "sent_at": d.sent_at.isoformat() if d.sent_at else None,
         **({"call_outcome": d.outcome, "calls": made.get(d.id, 0)} if d.channel == "voice" else {})}
        for d, alert in rows
    ]


def sms_refs(subscriber: Subscriber) -> list[str]:
    """The provider's ids of the alert SMS sent to the resident (push has nothing to delete)."""
    return list(db.session.scalars(
        select(Delivery.provider_ref)
        .where(Delivery.subscriber_id == subscriber.id, Delivery.channel == "sms", Delivery.provider_ref.is_not(None))
        .order_by(Delivery.id)
    ))


def call_refs(subscriber: Subscriber) -> list[str]:
    """The Twilio SIDs of every call to the resident about an alert: the current one of each
    delivery and the earlier attempts its events remember."""
    mine = select(Delivery.id).where(Delivery.subscriber_id == subscriber.id, Delivery.channel == "voice")
    current = db.session.scalars(select(Delivery.provider_ref).where(Delivery.id.in_(mine),
                                                                     Delivery.provider_ref.is_not(None)))
    earlier = db.session.scalars(select(DeliveryEvent.provider_ref).where(
        DeliveryEvent.delivery_id.in_(mine), DeliveryEvent.provider_ref.is_not(None)).distinct())
    return list(dict.fromkeys([*current, *earlier]))


def forget_error_texts(subscriber: Subscriber) -> None:
    """Erasure: a provider's error text can quote the number (masked when stored, but a
    provider may word it otherwise); the anonymous counts keep only the error code."""
    mine = select(Delivery.id).where(Delivery.subscriber_id == subscriber.id).scalar_subquery()
    db.session.execute(update(DeliveryEvent).where(DeliveryEvent.delivery_id.in_(mine)).values(detail=None))
    db.session.execute(update(Delivery).where(Delivery.subscriber_id == subscriber.id).values(error=None))


if export_messages not in service.EXPORT_SECTIONS:
    service.EXPORT_SECTIONS.append(export_messages)
if sms_refs not in erasure.MESSAGE_REFS:
    erasure.MESSAGE_REFS.append(sms_refs)
if call_refs not in erasure.MESSAGE_REFS:
    erasure.MESSAGE_REFS.append(call_refs)
if forget_error_texts not in erasure.ERASE_HOOKS:
    erasure.ERASE_HOOKS.append(forget_error_texts)
