"""What happened to a delivery after we handed it over: callbacks, polling, reconciliation.

- The Twilio status webhook (signature checked, 403 otherwise) records every callback as a
  DeliveryEvent and moves the delivery forward only (callbacks come late, twice, or out of
  order: 'sent' after 'delivered' changes nothing).
- ``poll_statuses`` asks the provider about deliveries left without a final status,
  because Twilio retries a failed callback only once.
- Reconciliation of deliveries a dead dispatcher left behind is in alerts/reconcile.py
  (``reconcile_stuck``, re-exported here for old callers).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import Blueprint, Response, request
from sqlalchemy import select

from alerts.models import DELIVERED, FAILED, SENT, STATUS_RANK, UNDELIVERED, Delivery, DeliveryEvent
from db import db, utcnow
from alerts.routing import channel_for
from providers.sms import ProviderError
from alerts.reconcile import reconcile_stuck  # noqa: F401 - re-export
from providers.twilio_webhooks import StatusReport, parse_status
from subscribers.inbound import require_twilio_signature
from subscribers.models import ACTIVE, Subscriber

log = logging.getLogger(__name__)
bp = Blueprint("receipts", __name__, url_prefix="/webhooks/twilio")

# Twilio's message statuses, as our delivery statuses.
TWILIO_STATUS = {
    "accepted": SENT, "scheduled": SENT, "queued": SENT, "sending": SENT, "sent": SENT,
    "delivered": DELIVERED, "read": DELIVERED, "undelivered": UNDELIVERED, "failed": FAILED,
    "canceled": FAILED,
}
# Asynchronous error codes that say the number itself is the problem.
OPTED_OUT_CODES = {21610}
UNREACHABLE_CODES = {30005: "unknown handset (30005)", 30006: "landline or unreachable carrier (30006)"}


def apply_report(delivery: Delivery | None, report: StatusReport, source: str, now: datetime) -> bool:
    """Record a provider report and move the delivery forward if it ranks higher.

    Returns True when the delivery's status changed. The caller commits.
    """
    status = TWILIO_STATUS.get(report.status)
    db.session.add(DeliveryEvent(
        delivery_id=delivery.id if delivery else None, provider_ref=report.provider_ref, source=source,
        provider=delivery.provider if delivery else None, status=report.status[:16], error_code=str(report.error_code) if report.error_code else None,
        received_at=now,
    ))
    if delivery is None or status is None:
        return False
    if delivery.provider_ref is None:
        # The dispatcher may have died before saving the SID: the callback still tells us.
        delivery.provider_ref = report.provider_ref
    if STATUS_RANK[status] <= STATUS_RANK.get(delivery.status, 0):
        return False
    delivery.status = status
    delivery.updated_at = now
    if status in (SENT, DELIVERED, UNDELIVERED) and delivery.sent_at is None:
        # Also when 'delivered' overtakes the dispatcher's own record; that record keeps it.
        delivery.sent_at = now
    if report.error_code:
        delivery.error_code = str(report.error_code)
        delivery.error = f"provider error {report.error_code}"
    _act_on_resident(delivery, report.error_code)
    return True


def _act_on_resident(delivery: Delivery, code: int | None) -> None:
    if code is None or delivery.subscriber_id is None:
        return
    from subscribers import service

    subscriber = db.session.get(Subscriber, delivery.subscriber_id)
    if subscriber is None or subscriber.status != ACTIVE:
        return
    if code in OPTED_OUT_CODES:
        service.opt_out(subscriber, service.Origin("provider"), detail=f"provider error {code}")
    elif code in UNREACHABLE_CODES:
        service.sms_unreachable(subscriber, UNREACHABLE_CODES[code], service.Origin("provider"))


@bp.post("/status")
def twilio_status() -> Response:
    """Twilio's status callback. Unknown or malformed reports get 200 so Twilio stops retrying."""
    require_twilio_signature()
    report = parse_status(request.form)
    if report is None:
        return Response(status=204)
    delivery = None
    raw_id = request.args.get("d", "")
    if raw_id.isdigit():
        # Two callbacks for one delivery at once: the row lock makes the rank check atomic
        # (SQLite has one writer anyway; SQLAlchemy leaves FOR UPDATE out there).
        delivery = db.session.get(Delivery, int(raw_id), with_for_update=True)
        if delivery is not None and delivery.provider_ref not in (None, report.provider_ref):
            delivery = None  # a callback for another message than the one we recorded
    if delivery is None:
        delivery = db.session.scalar(
            select(Delivery).where(Delivery.provider_ref == report.provider_ref).with_for_update())
    apply_report(delivery, report, "callback", utcnow())
    db.session.commit()
    return Response(status=204)


def poll_statuses(now: datetime | None = None, limit: int = 200) -> int:
    """Scheduler job: fetch the status of SMS sent over 10 minutes ago still without a final
    status (up to 3 days back). Returns how many changed."""
    now = now or utcnow()
    rows = db.session.scalars(
        select(Delivery).where(
            Delivery.channel == "sms", Delivery.status == SENT, Delivery.provider_ref.is_not(None),
            Delivery.sent_at < now - timedelta(minutes=10), Delivery.sent_at > now - timedelta(days=3),
        ).order_by(Delivery.updated_at).limit(limit)
    ).all()
    changed = 0
    for delivery in rows:
        try:
            status, code = channel_for(delivery.provider).fetch_status(delivery.provider_ref)
        except ProviderError as exc:
            log.warning("status poll for delivery %s failed: %s", delivery.id, exc)
            continue
        report = StatusReport(provider_ref=delivery.provider_ref, status=status, error_code=code, to=None)
        changed += apply_report(delivery, report, "poll", now)
        delivery.updated_at = now  # rotate: the next poll asks about others first
    db.session.commit()
    return changed
