"""The residents' SMS outbox: verification codes and manage links, queued by a request and
sent a moment later by ``drain()``.

Why a queue: a request that waited for the SMS provider took 300 ms for a subscribed number
and 15 ms for an unknown one, and so told anyone who was subscribed. Now every request only
writes rows, in the same transaction as the code itself (so a code is either stored and
queued, or neither); the scheduler drains the queue every second (see scheduler.py), ahead
of and apart from alert fan-out.

Delivery is at least once: a drain that dies between the provider call and the delete
leaves a claim that goes stale and is sent again. A permanent refusal (not a mobile number,
blocked) voids the code; a passing outage is retried until the code would have expired.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, func, or_, select, update

from db import db, utcnow
from providers.sms import ProviderError, SmsMessage
from subscribers.models import SmsOutbox, Verification

log = logging.getLogger(__name__)

# A claim older than this belongs to a drain that died; its rows are sent again.
STALE_CLAIM_SECONDS = 60
RETRY_BASE_SECONDS = 2.0
RETRY_MAX_SECONDS = 60.0


def enqueue(to_phone: str, body: str, reference: str, not_after: datetime, *,
            subscriber_id: int | None = None, verification_id: int | None = None, kind: str = "sms") -> None:
    """Queue a text (the caller commits, together with whatever the text is about). With
    kind "call" the body's lines are read out by a phone call instead."""
    db.session.add(SmsOutbox(to_phone=to_phone, body=body, reference=reference, not_after=not_after,
                             subscriber_id=subscriber_id, verification_id=verification_id,
                             next_attempt_at=utcnow(), kind=kind))


def _call(row: SmsOutbox) -> None:
    """Read the row's lines out in a call (TwiML sent with the call: nothing to fetch, so
    the code is in no URL of ours). Raises ProviderError."""
    from alerts.voice_text import is_code_line, voice as call_voice
    from providers.twilio_voice import CallRequest, Slow, say_twiml

    voice = current_app.extensions.get("voice")
    if voice is None:
        raise ProviderError("calls are off (VOICE_BACKEND is not set)", permanent=True, reason="config")
    cfg = current_app.config
    lines = [Slow(line) if is_code_line(line) else line for line in row.body.split("\n")]
    twiml = say_twiml(call_voice(), lines)
    voice.place(CallRequest(to=row.to_phone, url=None, status_callback=None, twiml=twiml, detect_machine=False,
                            ring_seconds=int(cfg.get("VOICE_RING_SECONDS", 30)), time_limit_seconds=120,
                            spoken=" ".join(lines)))


def _claim(now: datetime, batch: int) -> list[int]:
    due = (select(SmsOutbox.id)
           .where(SmsOutbox.next_attempt_at <= now,
                  or_(SmsOutbox.claimed_at.is_(None),
                      SmsOutbox.claimed_at < now - timedelta(seconds=STALE_CLAIM_SECONDS)))
           .order_by(SmsOutbox.id).limit(batch))
    if db.engine.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    # Claimed and committed before any provider call: two drains never send the same row.
    ids = list(db.session.execute(
        update(SmsOutbox).where(SmsOutbox.id.in_(due.scalar_subquery()))
        .values(claimed_at=now, attempts=SmsOutbox.attempts + 1)
        .returning(SmsOutbox.id)
    ).scalars())
    db.session.commit()
    return ids


def _error_code(exc: ProviderError | None) -> str:
    """What a resident signing up is told (subscribers/codes.py shows it)."""
    # An opt-out at the provider (the number once replied STOP) is told like any other
    # unreachable number: a distinct answer would tell anyone typing a stranger's number that
    # it once was a resident. The text says what to do in either case.
    if exc is not None and exc.permanent and exc.reason in ("invalid_number", "landline", "blocked", "opted_out"):
        return "phone_unreachable"
    return "sms_unavailable"


def _give_up(row: SmsOutbox, why: str, exc: ProviderError | None = None) -> None:
    if row.verification_id is not None:
        # Only a sign-up code is voided and its failure told. A lost-link code stays exactly
        # as it is: a decoy for a number that is not a resident is never sent either, and
        # the two must stay alike to whoever types codes for a number.
        db.session.execute(update(Verification)
                           .where(Verification.id == row.verification_id, Verification.purpose == "subscribe")
                           .values(voided_at=func.coalesce(Verification.voided_at, utcnow()),
                                   delivery_error=_error_code(exc)))
    db.session.execute(delete(SmsOutbox).where(SmsOutbox.id == row.id))
    log.warning("SMS %s not sent: %s", row.reference, why)


def drain(batch: int = 100) -> int:
    """Send what is due, oldest first; returns how many rows it handled. Needs an app context."""
    # With two providers, each retry goes through the next one: a code must not wait for
    # one provider's outage to end (attempts counts from 1 at the first claim).
    channels = list(current_app.extensions["sms_channels"].values())
    handled = 0
    while True:
        now = utcnow()
        ids = _claim(now, batch)
        if not ids:
            return handled
        rows = db.session.scalars(select(SmsOutbox).where(SmsOutbox.id.in_(ids)).order_by(SmsOutbox.id)).all()
        for row in rows:
            handled += 1
            if row.not_after <= now:
                _give_up(row, "expired before it could be sent")
                continue
            try:
                if row.kind == "call":
                    _call(row)
                else:
                    sms = channels[(max(1, row.attempts) - 1) % len(channels)]
                    sms.send(SmsMessage(to=row.to_phone, body=row.body, reference=row.reference))
            except ProviderError as exc:
                if exc.permanent:
                    _give_up(row, f"refused by the provider: {exc}", exc)
                else:
                    wait = min(RETRY_BASE_SECONDS * 2 ** (row.attempts - 1), RETRY_MAX_SECONDS)
                    if exc.retry_after:
                        wait = max(wait, float(exc.retry_after))
                    row.claimed_at = None
                    row.next_attempt_at = utcnow() + timedelta(seconds=wait)
                    log.info("SMS %s will be retried in %.0f s: %s", row.reference, wait, exc)
            else:
                db.session.execute(delete(SmsOutbox).where(SmsOutbox.id == row.id))
            # Each outcome is committed at once: a crash later must not resend this one.
            db.session.commit()
