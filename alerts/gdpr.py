"""A resident's messages in their GDPR export. (On erasure the delivery rows stay, with
the resident's id cleared by the foreign key, so the gmina keeps anonymous counts.)"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from alerts.models import Alert, Delivery
from db import db
from subscribers import service
from subscribers.models import Subscriber


def export_messages(subscriber: Subscriber) -> tuple[str, list[dict[str, Any]]]:
    rows = db.session.execute(
        select(Delivery, Alert).join(Alert, Alert.id == Delivery.alert_id)
        .where(Delivery.subscriber_id == subscriber.id).order_by(Delivery.id)
    ).all()
    return "messages_to_you", [
        {"alert": alert.id, "title": alert.title(subscriber.language), "channel": d.channel, "status": d.status,
         "sent_at": d.sent_at.isoformat() if d.sent_at else None}
        for d, alert in rows
    ]


if export_messages not in service.EXPORT_SECTIONS:
    service.EXPORT_SECTIONS.append(export_messages)
