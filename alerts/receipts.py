"""What happened to a delivery after we handed it over: callbacks, polling, reconciliation.

- The Twilio status webhook (signature checked, 403 otherwise) records every callback as a
  DeliveryEvent and moves the delivery forward only (callbacks come late, twice, or out of
  order: 'sent' after 'delivered' changes nothing).
- ``poll_statuses`` asks the provider about deliveries left without a final status,
  because Twilio retries a failed callback only once.
- ``reconcile_stuck`` settles deliveries a dead dispatcher left in 'sending' (their lease
  unrenewed for DISPATCH_STALE_SECONDS) or that timed out as 'uncertain'. A delivery whose
  own reference came back already (a status callback carries ``?d=<delivery id>``, which
  records the SID) is sent. Otherwise it asks the provider what it sent to that number
  since the claim, less DISPATCH_CLOCK_SKEW_SECONDS (the provider's clock may be behind
  ours), and marks the delivery sent when it finds the same text under a SID no other
  delivery holds, or queues it again when it does not. This is what keeps a kill -9 from
  texting anyone twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import Blueprint, Response, current_app, request
from sqlalchemy import and_, func, or_, select, update

from alerts import render
from alerts.models import (
    DELIVERED,
    FAILED,
    PENDING,
    SENDING,
    SENT,
    SKIPPED,
    STATUS_RANK,
    UNCERTAIN,
    UNDELIVERED,
    Alert,
    Delivery,
    DeliveryEvent,
)
from db import db, utcnow
from alerts.routing import channel_for
from providers.sms import ProviderError
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
        status=report.status[:16], error_code=str(report.error_code) if report.error_code else None,
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
        service.deactivate(subscriber, UNREACHABLE_CODES[code], service.Origin("provider"))


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


def reconcile_stuck(now: datetime | None = None, limit: int = 500) -> int:
    """Settle deliveries left 'sending' by a dead dispatcher or 'uncertain' after a timeout.

    Each is taken over with a compare-and-set on (status, claimed_at), so two reconcilers
    never settle the same row. Returns how many were settled.
    """
    now = now or utcnow()
    cfg = current_app.config
    stale = now - timedelta(seconds=cfg.get("DISPATCH_STALE_SECONDS", 120))
    uncertain = now - timedelta(seconds=cfg.get("DISPATCH_UNCERTAIN_SECONDS", 30))
    skew = timedelta(seconds=cfg.get("DISPATCH_CLOCK_SKEW_SECONDS", 600))
    # A claim is a lease its live owner renews: only one left unrenewed has expired.
    lease = func.coalesce(Delivery.lease_renewed_at, Delivery.claimed_at)
    expired = or_(and_(Delivery.status == SENDING, lease < stale),
                  and_(Delivery.status == UNCERTAIN, Delivery.claimed_at < uncertain))
    rows = db.session.execute(
        select(Delivery.id, Delivery.status, Delivery.claimed_at, Delivery.channel, Delivery.alert_id,
               Subscriber.phone, Subscriber.language, Subscriber.status, Delivery.provider_ref,
               Delivery.provider)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id, isouter=True)
        .where(expired)
        .order_by(Delivery.id).limit(limit)
    ).all()
    if not rows:
        return 0
    alerts: dict[int, Alert] = {}
    settled = 0
    for d_id, status, claimed_at, kind, alert_id, phone, lang, s_status, known_ref, provider in rows:
        # Compare-and-set, expiry included: a lease renewed since the read is not taken.
        took = db.session.execute(
            update(Delivery).where(Delivery.id == d_id, Delivery.status == status,
                                   Delivery.claimed_at == claimed_at, expired)
            .values(claimed_at=now, claimed_by="reconcile").execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        if took != 1:
            continue
        values: dict = {"updated_at": now}
        detail: str
        if kind == "sms" and known_ref:
            # Our own reference came back (a callback to ?d=<id>): the provider has it.
            values.update(status=SENT, provider_ref=known_ref)
            detail = f"the provider had sent it ({known_ref}, reported by its callback)"
        elif kind == "sms" and phone:
            alert = alerts.get(alert_id) or db.session.get(Alert, alert_id)
            alerts[alert_id] = alert
            body = render.sms_body(alert, lang or "pl")
            try:
                # The provider written on the row before its call: the one that may have it.
                found = [r for r in channel_for(provider).find_sent(phone, claimed_at - skew) if r.body == body]
            except ProviderError as exc:
                # Cannot ask the provider now: leave it as it was and try again later.
                db.session.execute(update(Delivery).where(Delivery.id == d_id)
                                   .values(status=status, claimed_at=now)
                                   .execution_options(synchronize_session=False))
                db.session.commit()
                log.warning("reconciling delivery %s: provider unavailable: %s", d_id, exc)
                continue
            if found:
                # The wide window may reach an earlier message with the same text (another
                # alert's): a SID another delivery already holds is not this one's.
                held = set(db.session.scalars(select(Delivery.provider_ref).where(
                    Delivery.provider_ref.in_([r.provider_ref for r in found]), Delivery.id != d_id)))
                found = [r for r in found if r.provider_ref not in held]
            if found:
                values.update(status=SENT, provider_ref=found[0].provider_ref, sent_at=found[0].created_at)
                detail = f"the provider had sent it ({found[0].provider_ref})"
            else:
                values.update(status=PENDING, next_attempt_at=now)
                detail = "the provider has no such message: queued again"
        elif kind == "sms":
            values.update(status=SKIPPED, error="resident left")
            detail = "resident left"
        else:
            # A repeated push replaces the earlier notification (same tag): safe to resend.
            values.update(status=PENDING, next_attempt_at=now)
            detail = "push queued again"
        db.session.execute(update(Delivery).where(Delivery.id == d_id).values(**values)
                           .execution_options(synchronize_session=False))
        db.session.add(DeliveryEvent(delivery_id=d_id, source="reconcile", status=values["status"],
                                     provider_ref=values.get("provider_ref"), detail=detail, received_at=now))
        db.session.commit()
        settled += 1
        log.info("reconciled delivery %s (%s): %s", d_id, status, detail)
    return settled
