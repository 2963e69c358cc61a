"""What reached one resident, and when: "did Mrs X get the evacuation SMS?"

Per delivery (newest first): the message (its title, a link), the channel, where it stands
in words (the same buckets as a message's figures), and its times -- queued, handed to the
provider, and the delivery receipt (the first `delivered` event) -- on the gmina's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from alerts.figures import BUCKETS
from alerts.models import DELIVERED, Alert, Delivery, DeliveryEvent
from alerts.render import approved
from db import db
from i18n import current_language

# A resident's page shows this many; the CSV of a message has all of its recipients.
HISTORY_LIMIT = 50


@dataclass(frozen=True)
class Entry:
    alert_id: int
    title: str
    channel: str
    bucket: str  # queued | sending | sent | delivered | failed | expired | skipped
    queued_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    provider: str | None
    error: str | None


def receipt_at():  # noqa: ANN201 - a scalar subquery column
    """When a delivery's first `delivered` receipt came, for the delivery row of the outer
    query: read through the delivery_event index, row by row (the page's 50, or one
    message's recipients), never aggregated over every event."""
    return (select(func.min(DeliveryEvent.received_at))
            .where(DeliveryEvent.delivery_id == Delivery.id, DeliveryEvent.status == DELIVERED)
            .correlate(Delivery).scalar_subquery())


def delivered_time(delivery: Delivery, receipt: datetime | None) -> datetime | None:
    """The receipt's time; for a row marked delivered without a kept event, its last change."""
    return receipt or (delivery.updated_at if delivery.status == DELIVERED else None)


def history(subscriber_id: int, limit: int = HISTORY_LIMIT) -> tuple[list[Entry], int]:
    """The resident's latest deliveries (at most `limit`) and how many there are in all."""
    rows = db.session.execute(
        select(Delivery, receipt_at())
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(limit)).all()
    total = db.session.scalar(select(func.count()).select_from(Delivery)
                              .where(Delivery.subscriber_id == subscriber_id)) or 0
    alerts = {a.id: a for a in db.session.scalars(select(Alert).where(Alert.id.in_({d.alert_id for d, _ in rows})))}
    lang = current_language()
    entries = []
    for delivery, delivered_at in rows:
        alert = alerts[delivery.alert_id]
        entries.append(Entry(
            alert_id=alert.id, title=approved(alert).title(lang), channel=delivery.channel,
            bucket=BUCKETS.get(delivery.status, delivery.status), queued_at=delivery.created_at,
            sent_at=delivery.sent_at,
            delivered_at=delivered_time(delivery, delivered_at),
            provider=delivery.provider, error=delivery.error))
    return entries, total
