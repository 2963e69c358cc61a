"""One-time codes that prove a number: asked for at sign-up or for a lost link, then typed in.

What an attacker outside may try, and what holds:

- Learning who is subscribed through the lost-link form. Every number, resident or not,
  walks the same path: the same limits are charged, a code row is stored (for a number that
  is not a resident a decoy, with no subscriber and a hash that no code matches), the answer,
  the wrong-code countdown and the error codes are the same, and no request waits for the SMS
  provider (texts are queued in subscribers/outbox.py), so the timing is the same too.
- Pumping SMS or guessing codes with parallel requests. Each limit is one atomic statement:
  the token buckets of subscribers/ratelimit.py (per number, per number range, per client
  address, and the global budget, all reserved before anything is queued), a conditional
  UPDATE per wrong try (``attempts < max``), and a conditional UPDATE that consumes a code
  once. Typing codes is limited per client address too.
- Keeping numbers: codes are found by an HMAC of the number, and counters are keyed by it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import case, func, select, update

from db import db, utcnow
from i18n import translate
from subscribers import call_choice, outbox, ratelimit
from subscribers.errors import SubscriptionError
from subscribers.models import ACTIVE, OPTED_OUT, Subscriber, Verification
from subscribers.phone import is_landline, normalize_phone, number_prefix
from subscribers.service import (
    Origin,
    Preferences,
    _apply_preferences,
    _ledger,
    municipality,
    subscriber_by_phone,
    subscriber_for_signup,
)

HOUR = 3600
# How long a queued manage-link text stays worth sending.
CONFIRMATION_TTL = timedelta(hours=6)


def _hash_code(phone_key: str, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"verify:{phone_key}:{code}".encode(), hashlib.sha256).hexdigest()


def code_limits(phone: str, ip: str | None, *, by_call: bool = False) -> list[ratelimit.Limit]:
    """What one code request is charged: the number, its range, the client and the budget;
    a code read out in a call (dearer than an SMS, and the toll fraudster's favourite) also
    the calls' own budget."""
    cfg = current_app.config
    limits = [
        ratelimit.Limit(f"code:number:{ratelimit.number_key(phone)}", cfg["RATE_LIMIT_CODES_PER_NUMBER"], HOUR),
        ratelimit.Limit(f"code:prefix:{ratelimit.number_key('prefix:' + number_prefix(phone))}",
                        cfg["RATE_LIMIT_CODES_PER_PREFIX"], HOUR),
        # Reserved here, before the text is even queued: the budget caps what can be spent.
        ratelimit.Limit("code:budget", cfg["VERIFICATION_SMS_HOURLY_BUDGET"], HOUR),
    ]
    if ip:
        limits.append(ratelimit.Limit(f"code:ip:{ratelimit.client_key(ip)}", cfg["RATE_LIMIT_CODES_PER_IP"], HOUR))
    if by_call:
        limits.append(ratelimit.Limit("code:call_budget", cfg.get("VERIFICATION_CALLS_HOURLY_BUDGET", 30), HOUR))
    return limits


def _resend_wait(phone_key: str, now: datetime) -> int | None:
    """Seconds before another code may go to this number: 60 s after the first, then doubling
    (capped), counted over the last day, so one number cannot be pumped."""
    count, last = db.session.execute(
        select(func.count(), func.max(Verification.created_at))
        .where(Verification.phone_key == phone_key, Verification.created_at >= now - timedelta(days=1))
    ).one()
    if not count or last is None:
        return None
    cfg = current_app.config
    wait = min(cfg["VERIFY_RESEND_BASE_SECONDS"] * 2 ** (count - 1), cfg["VERIFY_RESEND_MAX_SECONDS"])
    remaining = (last + timedelta(seconds=wait) - now).total_seconds()
    return int(remaining) + 1 if remaining > 0 else None


def resend_wait(phone: str) -> int | None:
    """Whole seconds (rounded up) until another code may go to `phone` (E.164); None: now.
    The same wait a code request would be refused with, for the page to count down."""
    return _resend_wait(ratelimit.number_key(phone), utcnow())


def _charge(phone: str, origin: Origin, now: datetime, *, by_call: bool = False) -> None:
    """Start the transaction of a code request: take the limits, then check the resend wait.

    Raises ``rate_limited`` or ``resend_wait`` (429) with nothing charged. The wait is read
    after the limits on purpose: on PostgreSQL the number's bucket row is locked by then, so
    parallel requests for one number queue up here and each sees the code of the one before.
    """
    wait = ratelimit.hit(code_limits(phone, origin.ip, by_call=by_call), now)
    if wait:
        raise SubscriptionError("rate_limited", status=429, retry_after=wait)
    wait = _resend_wait(ratelimit.number_key(phone), now)
    if wait:
        db.session.rollback()
        raise SubscriptionError("resend_wait", status=429, retry_after=wait, seconds=wait)


def _store_code(phone: str, subscriber: Subscriber | None, purpose: str, payload: dict[str, Any],
                now: datetime, *, by_call: bool = False) -> None:
    """Void the number's older codes and store a new one; queue its text (or, `by_call`,
    a call that reads it twice) to a resident.

    With no subscriber the row is a decoy: same statements, nothing queued, a hash that no
    six digits match. The caller commits.
    """
    key = ratelimit.number_key(phone)
    db.session.execute(
        update(Verification)
        .where(Verification.phone_key == key, Verification.consumed_at.is_(None), Verification.voided_at.is_(None))
        .values(voided_at=now)
        .execution_options(synchronize_session=False)
    )
    ttl = current_app.config["VERIFY_CODE_TTL_SECONDS"]
    code = f"{secrets.randbelow(10**6):06d}"
    verification = Verification(
        subscriber_id=subscriber.id if subscriber else None, phone_key=key, purpose=purpose,
        code_hash=_hash_code(key, code) if subscriber else secrets.token_hex(32),
        payload=payload, created_at=now, expires_at=now + timedelta(seconds=ttl),
    )
    db.session.add(verification)
    db.session.flush()
    if subscriber is None:
        return
    if by_call:
        from alerts import voice_text

        outbox.enqueue(phone, "\n".join(voice_text.code_parts(code)), f"verification-{verification.id}",
                       verification.expires_at, subscriber_id=subscriber.id, verification_id=verification.id,
                       kind="call")
        return
    lang = payload.get("language") or subscriber.language
    body = translate("sms.code", lang, code=code, gmina=municipality().name, minutes=ttl // 60)
    outbox.enqueue(phone, body, f"verification-{verification.id}", verification.expires_at,
                   subscriber_id=subscriber.id, verification_id=verification.id)


def signup_phone(phone_raw: object, *, voice_only: bool) -> str:
    """The number of a sign-up in E.164. A landline is accepted for calls only; asked for
    SMS, it is refused with ``phone_landline`` (which says calls would work) where the gmina
    makes calls, and as ``phone_not_mobile`` where it does not."""
    regions = current_app.config["ALLOWED_PHONE_REGIONS"]
    calls = call_choice.calls_enabled()
    phone = normalize_phone(phone_raw, regions, landline=calls)
    if calls and not voice_only and is_landline(phone):
        raise SubscriptionError("phone_landline", field="phone")
    return phone


def request_subscription(phone_raw: str | None, prefs: Preferences, consent: bool, origin: Origin) -> str:
    """Start a sign-up: queue a code to the number. Returns the E.164 number.

    The answer is the same whether or not the number is already subscribed (no enumeration);
    the chosen preferences apply only after the code is entered. Errors: ``consent_required``,
    the phone errors, ``rate_limited``, ``resend_wait``.
    """
    if not consent:
        raise SubscriptionError("consent_required", field="consent")
    phone = signup_phone(phone_raw, voice_only=prefs.voice_only)
    now = utcnow()
    _charge(phone, origin, now, by_call=prefs.voice_only)
    subscriber = subscriber_for_signup(phone, prefs.language)
    _ledger(subscriber, "subscribe", origin, prefs, consent=True)
    # Calls only: the code is read out by a call (a landline cannot get the SMS).
    _store_code(phone, subscriber, "subscribe", prefs.as_payload(), now, by_call=prefs.voice_only)
    db.session.commit()
    return phone


def request_manage_code(phone_raw: str | None, origin: Origin) -> str:
    """A resident who lost their link asks for a code to get back to their settings.

    Any number gets the same answer, limits, countdown and timing; only a resident who is
    subscribed (or left and may come back) is texted. A request within the resend wait
    answers the same too: the code sent a moment ago is still valid.
    """
    # A landline can be a resident's (calls only) wherever the gmina makes calls.
    phone = normalize_phone(phone_raw, current_app.config["ALLOWED_PHONE_REGIONS"],
                            landline=call_choice.calls_enabled())
    now = utcnow()
    try:
        # A landline's code can only be a call. (Decided by the number, never by whether it is
        # a resident's, so the limits answer every number alike.)
        _charge(phone, origin, now, by_call=is_landline(phone))
    except SubscriptionError as exc:
        if exc.code != "resend_wait":
            raise
        return phone
    subscriber = subscriber_by_phone(phone)
    if subscriber is not None and subscriber.status not in (ACTIVE, OPTED_OUT):
        subscriber = None
    payload = {"language": subscriber.language} if subscriber else {}
    _store_code(phone, subscriber, "manage", payload, now,
                by_call=subscriber is not None and subscriber.voice_only and call_choice.calls_enabled())
    db.session.commit()
    return phone


def signup_problem(phone: str) -> SubscriptionError | None:
    """Why the latest sign-up code to this number could not be texted, or None.

    Only for sign-up codes: every number asking to sign up is texted alike, so this tells
    nothing about who is subscribed. A lost-link code's failure is never shown (only
    residents are texted, so it would tell).
    """
    purpose, error = db.session.execute(
        select(Verification.purpose, Verification.delivery_error)
        .where(Verification.phone_key == ratelimit.number_key(phone))
        .order_by(Verification.created_at.desc(), Verification.id.desc()).limit(1)
    ).first() or (None, None)
    if purpose != "subscribe" or not error:
        return None
    if error == "sms_unavailable":
        return SubscriptionError(error, status=503, retry_after=60)
    return SubscriptionError(error, field="phone")


def _verify_limits(ip: str | None) -> list[ratelimit.Limit]:
    per_ip = current_app.config["RATE_LIMIT_VERIFY_PER_IP"]
    return [ratelimit.Limit(f"verify:ip:{ratelimit.client_key(ip)}", per_ip, HOUR)]


def verify_code(phone_raw: str | None, code: str | None, origin: Origin) -> Subscriber:
    """Check a code; on success the subscription is active and the chosen preferences apply.

    Errors: ``code_missing``, ``rate_limited`` (too many tries from this client),
    ``code_invalid`` (with ``tries_left``), ``code_expired``, ``code_locked`` (after
    VERIFY_MAX_ATTEMPTS wrong tries the code is void, and says so until a new one is asked
    for). A number with no live code gets ``code_invalid`` like a wrong code; a sign-up code
    the provider refused gets its reason (see ``signup_problem``).
    """
    phone = normalize_phone(phone_raw, current_app.config["ALLOWED_PHONE_REGIONS"], landline=call_choice.calls_enabled())
    code = (code or "").strip().replace(" ", "")
    if not code:
        raise SubscriptionError("code_missing", field="code")
    wait = ratelimit.hit(_verify_limits(origin.ip))
    if wait:
        raise SubscriptionError("rate_limited", status=429, retry_after=wait)
    db.session.commit()  # the try counts, whatever follows

    key = ratelimit.number_key(phone)
    max_attempts = current_app.config["VERIFY_MAX_ATTEMPTS"]
    # The newest code of the number is the only one that can be live (a new one voids the rest).
    verification = db.session.scalar(
        select(Verification).where(Verification.phone_key == key)
        .order_by(Verification.created_at.desc(), Verification.id.desc()).limit(1)
    )
    now = utcnow()
    if verification is None or verification.consumed_at is not None:
        raise SubscriptionError("code_invalid", field="code", tries_left=max_attempts - 1)
    if verification.voided_at is not None:
        if verification.attempts >= max_attempts:
            raise SubscriptionError("code_locked", field="code")
        raise signup_problem(phone) or SubscriptionError("code_invalid", field="code", tries_left=max_attempts - 1)
    if verification.expires_at <= now:
        raise SubscriptionError("code_expired", field="code")
    live = (Verification.id == verification.id, Verification.consumed_at.is_(None),
            Verification.voided_at.is_(None), Verification.attempts < max_attempts)
    if not hmac.compare_digest(verification.code_hash, _hash_code(key, code)):
        # One statement decides the try: parallel wrong tries can never exceed the maximum.
        attempts = db.session.execute(
            update(Verification).where(*live)
            .values(attempts=Verification.attempts + 1,
                    voided_at=case((Verification.attempts + 1 >= max_attempts, now), else_=None))
            .returning(Verification.attempts)
            .execution_options(synchronize_session=False)
        ).scalar()
        db.session.commit()
        if attempts is None or attempts >= max_attempts:
            raise SubscriptionError("code_locked", field="code")
        raise SubscriptionError("code_invalid", field="code", tries_left=max_attempts - attempts)

    consumed = db.session.execute(
        update(Verification).where(*live, Verification.expires_at > now).values(consumed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if consumed != 1:  # a parallel request used or locked it a moment ago
        db.session.rollback()
        raise SubscriptionError("code_invalid", field="code", tries_left=max_attempts - 1)
    subscriber = db.session.get(Subscriber, verification.subscriber_id)
    assert subscriber is not None  # a decoy's hash matches no code
    if verification.purpose == "subscribe":
        prefs = Preferences.from_payload(verification.payload)
        was = subscriber.status
        _apply_preferences(subscriber, prefs)
        subscriber.status = ACTIVE
        subscriber.status_reason = None
        subscriber.opted_out_at = None
        subscriber.verified_at = now
        _ledger(subscriber, "verify", origin, prefs, consent=True,
                detail=f"verification {verification.id}; status was {was}")
        if not subscriber.voice_only:
            _queue_confirmation(subscriber, now)
    else:
        _ledger(subscriber, "verify", origin, detail=f"manage access, verification {verification.id}")
    db.session.commit()
    return subscriber


def _queue_confirmation(subscriber: Subscriber, now: datetime) -> None:
    """Text the manage link once a web or app sign-up is confirmed, so the resident can
    change or leave later even without the page (the consent text promises it)."""
    from alerts.sms_text import fit_sms
    from subscribers.links import manage_url

    m = municipality()
    lang = subscriber.language
    stop = translate("sms.confirmed_stop", lang) if m.inbound_number else ""
    text = translate("sms.confirmed", lang, gmina=m.name, link=manage_url(subscriber), stop=stop)
    body = fit_sms(text, max_segments=2, keep_diacritics=(lang == "uk"))
    assert subscriber.phone
    outbox.enqueue(subscriber.phone, body, f"confirmation-{subscriber.id}", now + CONFIRMATION_TTL,
                   subscriber_id=subscriber.id)
