"""What became of a call: answered, confirmed with 1, voicemail, busy, no answer; and the
next attempt when it was not heard.

A voice delivery is one row of the outbox, whatever the number of calls it takes. Its life:
pending -> sending (a dispatcher places call 1) -> sent (Twilio took it) -> then either
final (delivered: confirmed, opted out, voicemail left, or answered on the last attempt;
undelivered: busy or no answer on the last attempt; failed) or pending again for the next
call VOICE_RETRY_MINUTES later (busy, no answer, answered without pressing 1), at most
VOICE_ATTEMPTS calls (counted by the call SIDs its events name: a claim that Twilio refused
placed no call), never past the message's end. ``Delivery.outcome`` holds the last outcome;
every webhook is also a DeliveryEvent.

Each webhook locks the delivery's row first (FOR UPDATE; SQLite's write lock), so a key
press and a status callback for the same call take turns, and a callback that comes twice
changes nothing the second time. A call is matched to its delivery by ``?d=`` and its
CallSid: the current call, an earlier call of the same delivery (late news: recorded, never
acted on), or, while the row is still 'sending' without a SID, the call its dispatcher just
placed (the dispatcher may have died before recording it).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import distinct, exists, func, select

from alerts.models import (
    CALL_ANSWERED,
    CALL_BUSY,
    CALL_CONFIRMED,
    CALL_FAILED,
    CALL_NO_ANSWER,
    CALL_OPTED_OUT,
    CALL_VOICEMAIL,
    DELIVERED,
    FAILED,
    FINAL_STATUSES,
    PENDING,
    PUBLISHED,
    SENDING,
    SENT,
    SKIPPED,
    UNCERTAIN,
    UNDELIVERED,
    Delivery,
    DeliveryEvent,
)
from db import db, utcnow
from locks import sqlite_write_lock
from providers.sms import ProviderError
from providers.twilio_voice import CALL_TIME_LIMIT_SECONDS, CallReport
from providers.twilio_voice import FINAL_STATUSES as CALL_FINAL
from subscribers import call_choice
from subscribers.models import ACTIVE, Subscriber

log = logging.getLogger(__name__)

# Outcomes after which nobody is called again for this message.
HEARD = (CALL_CONFIRMED, CALL_OPTED_OUT, CALL_VOICEMAIL)
# A call's final status -> its outcome (completed: whatever the answer webhook found).
_STATUS_OUTCOME = {"busy": CALL_BUSY, "no-answer": CALL_NO_ANSWER, "failed": CALL_FAILED, "canceled": CALL_FAILED}
# Last attempt's outcome -> the delivery's final status.
_FINAL = {CALL_ANSWERED: DELIVERED, CALL_BUSY: UNDELIVERED, CALL_NO_ANSWER: UNDELIVERED, CALL_FAILED: FAILED}

CURRENT = "current"
EARLIER = "earlier"


def find(delivery_id: str | None, report: CallReport) -> tuple[Delivery | None, str | None]:
    """The delivery a webhook is about, locked until commit, and how the call relates to it
    (CURRENT, EARLIER); (None, None) when the call is none of its calls."""
    sqlite_write_lock()
    if not (delivery_id or "").isdigit():
        return None, None
    delivery = db.session.get(Delivery, int(delivery_id), with_for_update=True, populate_existing=True)
    if delivery is None or delivery.channel != "voice":
        return None, None
    if delivery.provider_ref == report.provider_ref:
        return delivery, CURRENT
    known = db.session.scalar(select(exists().where(DeliveryEvent.delivery_id == delivery.id,
                                                    DeliveryEvent.provider_ref == report.provider_ref)))
    if known:
        return delivery, EARLIER
    if delivery.provider_ref is None and delivery.status in (SENDING, UNCERTAIN):
        # Its dispatcher placed this call and has not recorded it yet (or died, or its call
        # to Twilio timed out after Twilio had placed it): adopt it.
        delivery.provider_ref = report.provider_ref
        return delivery, CURRENT
    return None, None


def record_event(delivery: Delivery | None, report: CallReport, status: str, now: datetime,
                 source: str = "callback", detail: str | None = None) -> None:
    db.session.add(DeliveryEvent(
        delivery_id=delivery.id if delivery else None, provider_ref=report.provider_ref, provider="twilio",
        source=source, status=status[:16], detail=detail, received_at=now))


def answered(delivery: Delivery, report: CallReport, now: datetime) -> str:
    """Twilio asks what to play now that the call was answered: "message" (a person, or
    AMD unsure), "voicemail" (a machine), or "gone" (the message was withdrawn or replaced
    since the call was placed). The caller commits."""
    if delivery.alert.status != PUBLISHED:
        record_event(delivery, report, "gone", now, detail="message withdrawn or replaced during the call")
        if delivery.status not in FINAL_STATUSES:
            delivery.status, delivery.error, delivery.updated_at = SKIPPED, "superseded", now
        return "gone"
    outcome = CALL_VOICEMAIL if report.machine else CALL_ANSWERED
    if delivery.status not in FINAL_STATUSES:
        delivery.outcome = outcome
    delivery.updated_at = now
    record_event(delivery, report, outcome, now, detail=f"answered by {report.answered_by or 'unknown'}")
    return "voicemail" if outcome == CALL_VOICEMAIL else "message"


def key_pressed(delivery: Delivery, report: CallReport, now: datetime) -> str:
    """A key in the menu: "confirmed" (1), "repeat" (2), "opted_out" (9), or "menu" (any
    other key, or none). 1 and 9 make the delivery final, also when the end of the call
    already queued the next one (that call is then never placed). The caller commits."""
    digit = (report.digits or "")[:1]
    if digit == "1":
        delivery.outcome = CALL_CONFIRMED
        _finish(delivery, DELIVERED, now)
        record_event(delivery, report, CALL_CONFIRMED, now, detail="pressed 1")
        return "confirmed"
    if digit == "9":
        delivery.outcome = CALL_OPTED_OUT
        _finish(delivery, DELIVERED, now)
        record_event(delivery, report, CALL_OPTED_OUT, now, detail="pressed 9")
        subscriber = db.session.get(Subscriber, delivery.subscriber_id) if delivery.subscriber_id else None
        if subscriber is not None:
            from subscribers import service

            call_choice.stop_calls(subscriber, service.Origin("voice"),
                                   detail=f"pressed 9 in a call about message {delivery.alert_id}")
        return "opted_out"
    record_event(delivery, report, "key", now, detail=f"pressed {digit}" if digit else "no key")
    return "repeat" if digit == "2" else "menu"


def _finish(delivery: Delivery, status: str, now: datetime) -> None:
    """Make the delivery final (a pending next call is then never placed)."""
    if delivery.status in FINAL_STATUSES:
        return
    delivery.status = status
    delivery.updated_at = now
    delivery.sent_at = delivery.sent_at or now


def deadline(delivery: Delivery) -> datetime:
    alert = delivery.alert
    if alert.expires_at is not None:
        return alert.expires_at
    hours = float(current_app.config.get("DISPATCH_MAX_AGE_HOURS", 24))
    return (alert.published_at or alert.created_at) + timedelta(hours=hours)


def calls_made(delivery_ids: list[int]) -> dict[int, int]:
    """How many calls each delivery has placed: the distinct call SIDs its events name.
    (Delivery.attempts counts claims, which a provider error also uses up.)"""
    if not delivery_ids:
        return {}
    return dict(db.session.execute(
        select(DeliveryEvent.delivery_id, func.count(distinct(DeliveryEvent.provider_ref)))
        .where(DeliveryEvent.delivery_id.in_(delivery_ids), DeliveryEvent.provider_ref.is_not(None))
        .group_by(DeliveryEvent.delivery_id)).all())


def _may_call_again(delivery: Delivery, at: datetime) -> bool:
    db.session.flush()  # this webhook's own event names the current call
    if calls_made([delivery.id]).get(delivery.id, 0) >= int(current_app.config.get("VOICE_ATTEMPTS", 3)):
        return False
    if delivery.alert.status != PUBLISHED or at >= deadline(delivery):
        return False
    subscriber = db.session.get(Subscriber, delivery.subscriber_id) if delivery.subscriber_id else None
    return subscriber is not None and subscriber.status == ACTIVE and subscriber.voice


def ended(delivery: Delivery, report: CallReport, now: datetime, source: str = "callback") -> str | None:
    """The call ended (a status callback, or a poll): settle the delivery or queue the next
    call. Returns the delivery's new status, or None when nothing changed. The caller commits."""
    record_event(delivery, report, report.status, now, source=source,
                 detail=f"{report.duration_seconds} s" if report.duration_seconds is not None else None)
    if report.status not in CALL_FINAL or delivery.status in FINAL_STATUSES or delivery.status == PENDING:
        return None
    if report.status == "completed":
        outcome = delivery.outcome if delivery.outcome in (*HEARD, CALL_ANSWERED) else (
            CALL_VOICEMAIL if report.machine else CALL_ANSWERED)
    else:
        outcome = _STATUS_OUTCOME[report.status]
    delivery.outcome = outcome
    delivery.updated_at = now
    if outcome in HEARD:
        _finish(delivery, DELIVERED, now)
        return delivery.status
    at = now + timedelta(minutes=float(current_app.config.get("VOICE_RETRY_MINUTES", 5)))
    if _may_call_again(delivery, at):
        # The next call is a new claim: the old SID stays in the events (an earlier call).
        delivery.status, delivery.next_attempt_at = PENDING, at
        delivery.provider_ref = None
        delivery.claimed_by = None  # the dispatcher that placed it must not touch the row again
        return PENDING
    _finish(delivery, _FINAL[outcome], now)
    return delivery.status


def poll_calls(now: datetime | None = None, limit: int = 100) -> int:
    """Scheduler job: ask Twilio about calls whose end we have not heard of (a lost status
    callback), placed long enough ago to be over. Returns how many deliveries moved."""
    voice = current_app.extensions.get("voice")
    if voice is None:
        return 0
    now = now or utcnow()
    cfg = current_app.config
    # Ringing, then the longest a call may last, then two minutes for Twilio's own callback.
    over = timedelta(seconds=int(cfg.get("VOICE_RING_SECONDS", 30)) + CALL_TIME_LIMIT_SECONDS + 120)
    ids = db.session.scalars(
        select(Delivery.id).where(Delivery.channel == "voice", Delivery.status == SENT,
                                  Delivery.provider_ref.is_not(None), Delivery.sent_at < now - over)
        .order_by(Delivery.updated_at).limit(limit)).all()
    db.session.commit()
    moved = 0
    for delivery_id in ids:
        sid = db.session.scalar(select(Delivery.provider_ref).where(Delivery.id == delivery_id))
        if sid is None:
            continue  # moved on since the list was read (a callback came)
        try:
            record = voice.fetch(sid)
        except ProviderError as exc:
            log.warning("fetching call %s of delivery %s failed: %s", sid, delivery_id, exc)
            continue
        report = CallReport(provider_ref=record.provider_ref, status=record.status, answered_by=record.answered_by,
                            duration_seconds=record.duration_seconds, digits=None)
        delivery, relation = find(str(delivery_id), report)
        if delivery is None or relation != CURRENT or delivery.status != SENT:
            db.session.rollback()
            continue
        if record.status in CALL_FINAL:
            moved += ended(delivery, report, now, source="poll") is not None
        else:
            delivery.updated_at = now  # still ringing or talking: ask about others first next time
        db.session.commit()
    return moved
