"""What a resident can do, whatever door they come through (web page, JSON API, SMS).

Views and webhooks stay thin: they read input, call one function here, and render the
result or the SubscriptionError. Every step that changes consent writes a ConsentEvent.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from flask import current_app
from sqlalchemy import delete, func, select

from db import db, utcnow
from i18n import translate
from municipality import CATEGORIES, LANGUAGES, Municipality
from providers.sms import ProviderError, SmsMessage
from subscribers import ratelimit
from subscribers.consent import CONSENT_VERSION
from subscribers.errors import SubscriptionError
from subscribers.models import (
    ACTIVE,
    DEACTIVATED,
    OPTED_OUT,
    PENDING,
    ConsentEvent,
    InboundSms,
    Subscriber,
    SubscriberArea,
    SubscriberCategory,
    Verification,
)
from subscribers.phone import normalize_phone, number_prefix

log = logging.getLogger(__name__)

HOUR = 3600


@dataclass(frozen=True)
class Origin:
    """Where a request came from, for the consent ledger and the rate limits."""

    source: str  # web | api | sms | staff | provider
    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class Preferences:
    categories: dict[str, int]  # category code -> lowest level wanted (1-3)
    areas: tuple[str, ...]
    language: str


def municipality() -> Municipality:
    return current_app.extensions["municipality"]


# --- preferences ------------------------------------------------------------------------

def parse_preferences(categories: Iterable[str] | None, levels: dict[str, Any] | None,
                      areas: Iterable[str] | None, language: str | None) -> Preferences:
    """Validate a resident's choice against the municipality profile.

    Errors: ``categories_missing``, ``category_unknown``, ``level_invalid``, ``areas_missing``,
    ``area_unknown``, ``language_unknown``. With a single area in the gmina, areas may be
    omitted. Levels default to 1 (everything).
    """
    m = municipality()
    cats = [c for c in (categories or []) if c]
    if not cats:
        raise SubscriptionError("categories_missing", field="categories")
    unknown = [c for c in cats if c not in m.categories]
    if unknown:
        raise SubscriptionError("category_unknown", field="categories", value=unknown[0])
    chosen: dict[str, int] = {}
    for code in cats:
        raw = (levels or {}).get(code, 1)
        try:
            level = int(raw)
        except (TypeError, ValueError):
            raise SubscriptionError("level_invalid", field=f"level_{code}") from None
        if not 1 <= level <= 3:
            raise SubscriptionError("level_invalid", field=f"level_{code}")
        chosen[code] = level if CATEGORIES[code].hazard else 1

    area_list = [a for a in (areas or []) if a]
    if not area_list and len(m.areas) == 1:
        area_list = [m.areas[0].code]
    if not area_list:
        raise SubscriptionError("areas_missing", field="areas")
    bad = [a for a in area_list if m.area(a) is None]
    if bad:
        raise SubscriptionError("area_unknown", field="areas", value=bad[0])

    lang = language or m.default_language
    if lang not in LANGUAGES:
        raise SubscriptionError("language_unknown", field="language")
    return Preferences(categories=chosen, areas=tuple(sorted(set(area_list))), language=lang)


def default_preferences(area: str | None = None, language: str | None = None) -> Preferences:
    m = municipality()
    return Preferences(
        categories={c: 1 for c in m.default_categories},
        areas=(area,) if area else tuple(m.area_codes()),
        language=language or m.default_language,
    )


def current_preferences(subscriber: Subscriber) -> Preferences:
    return Preferences(categories=subscriber.category_levels(), areas=tuple(subscriber.area_codes()),
                       language=subscriber.language)


def _apply_preferences(subscriber: Subscriber, prefs: Preferences) -> None:
    # Explicit deletes first: replacing the collections would let the unit of work insert the
    # new rows before deleting the old ones with the same primary key.
    db.session.execute(delete(SubscriberCategory).where(SubscriberCategory.subscriber_id == subscriber.id))
    db.session.execute(delete(SubscriberArea).where(SubscriberArea.subscriber_id == subscriber.id))
    db.session.add_all(SubscriberCategory(subscriber_id=subscriber.id, category=c, min_level=lvl)
                       for c, lvl in prefs.categories.items())
    db.session.add_all(SubscriberArea(subscriber_id=subscriber.id, area=a) for a in prefs.areas)
    subscriber.language = prefs.language
    db.session.flush()
    db.session.expire(subscriber, ["categories", "areas"])


def _ledger(subscriber: Subscriber, action: str, origin: Origin, prefs: Preferences | None = None,
            detail: str | None = None, consent: bool = False) -> None:
    db.session.add(ConsentEvent(
        subscriber_id=subscriber.id,
        action=action,
        phone=subscriber.phone,
        categories=dict(prefs.categories) if prefs else None,
        areas=list(prefs.areas) if prefs else None,
        language=prefs.language if prefs else None,
        consent_version=CONSENT_VERSION if consent else None,
        source=origin.source,
        ip=origin.ip,
        user_agent=(origin.user_agent or "")[:400] or None,
        detail=detail,
    ))


# --- verification codes -----------------------------------------------------------------

def _hash_code(subscriber_id: int, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"verify:{subscriber_id}:{code}".encode(), hashlib.sha256).hexdigest()


def _code_limits(phone: str, ip: str | None) -> list[ratelimit.Limit]:
    cfg = current_app.config
    limits = [
        ratelimit.Limit(f"code:number:{phone}", cfg["RATE_LIMIT_CODES_PER_NUMBER"], HOUR),
        ratelimit.Limit(f"code:prefix:{number_prefix(phone)}", cfg["RATE_LIMIT_CODES_PER_PREFIX"], HOUR),
    ]
    if ip:
        limits.append(ratelimit.Limit(f"code:ip:{ip}", cfg["RATE_LIMIT_CODES_PER_IP"], HOUR))
    return limits


def _budget_limit() -> ratelimit.Limit:
    return ratelimit.Limit("code:budget", current_app.config["VERIFICATION_SMS_HOURLY_BUDGET"], HOUR)


def _resend_wait(subscriber: Subscriber, now: datetime) -> int | None:
    """Seconds before another code may go to this number: 60 s after the first, then doubling
    (capped), counted over the last day, so one number cannot be pumped."""
    since = now - timedelta(days=1)
    recent = db.session.execute(
        select(func.count(), func.max(Verification.created_at))
        .where(Verification.subscriber_id == subscriber.id, Verification.created_at >= since)
    ).one()
    count, last = recent
    if not count or last is None:
        return None
    cfg = current_app.config
    wait = min(cfg["VERIFY_RESEND_BASE_SECONDS"] * 2 ** (count - 1), cfg["VERIFY_RESEND_MAX_SECONDS"])
    remaining = (last + timedelta(seconds=wait) - now).total_seconds()
    return int(remaining) + 1 if remaining > 0 else None


def _send_code(subscriber: Subscriber, purpose: str, payload: dict[str, Any], origin: Origin) -> None:
    """Rate-limit, store a fresh code (voiding older ones), and text it. Raises SubscriptionError."""
    now = utcnow()
    assert subscriber.phone
    limits = _code_limits(subscriber.phone, origin.ip)
    wait = ratelimit.retry_after_if_exceeded([*limits, _budget_limit()], now)
    if wait:
        db.session.rollback()
        raise SubscriptionError("rate_limited", status=429, retry_after=wait)
    wait = _resend_wait(subscriber, now)
    if wait:
        db.session.rollback()
        raise SubscriptionError("resend_wait", status=429, retry_after=wait, seconds=wait)

    code = f"{secrets.randbelow(10**6):06d}"
    db.session.execute(
        db.update(Verification)
        .where(Verification.subscriber_id == subscriber.id, Verification.consumed_at.is_(None),
               Verification.voided_at.is_(None))
        .values(voided_at=now)
    )
    verification = Verification(
        subscriber_id=subscriber.id, purpose=purpose, code_hash=_hash_code(subscriber.id, code),
        payload=payload, created_at=now,
        expires_at=now + timedelta(seconds=current_app.config["VERIFY_CODE_TTL_SECONDS"]),
    )
    db.session.add(verification)
    ratelimit.record_hits(limits, now)
    # Commit before the HTTP call: an SMS provider's latency must not hold the database lock.
    db.session.commit()

    lang = payload.get("language") or subscriber.language
    minutes = current_app.config["VERIFY_CODE_TTL_SECONDS"] // 60
    body = translate("sms.code", lang, code=code, gmina=municipality().name, minutes=minutes)
    try:
        current_app.extensions["sms"].send(SmsMessage(to=subscriber.phone, body=body,
                                                      reference=f"verification-{verification.id}"))
    except ProviderError as exc:
        verification.voided_at = utcnow()
        db.session.commit()
        log.warning("verification SMS to subscriber %s failed: %s", subscriber.id, exc)
        if exc.permanent and exc.reason in ("invalid_number", "landline", "blocked"):
            raise SubscriptionError("phone_unreachable", field="phone") from None
        if exc.permanent and exc.reason == "opted_out":
            raise SubscriptionError("phone_blocked_sms", field="phone") from None
        raise SubscriptionError("sms_unavailable", status=503, retry_after=60) from None
    ratelimit.record_hits([_budget_limit()])
    db.session.commit()


def _subscriber_by_phone(phone: str) -> Subscriber | None:
    return db.session.scalar(select(Subscriber).where(Subscriber.phone == phone))


def request_subscription(phone_raw: str | None, prefs: Preferences, consent: bool, origin: Origin) -> str:
    """Start a sign-up: text a code to the number. Returns the E.164 number.

    The answer is the same whether or not the number is already subscribed (no enumeration);
    the chosen preferences apply only after the code is entered.
    """
    if not consent:
        raise SubscriptionError("consent_required", field="consent")
    phone = normalize_phone(phone_raw, current_app.config["ALLOWED_PHONE_REGIONS"])
    subscriber = _subscriber_by_phone(phone)
    if subscriber is None:
        subscriber = Subscriber(phone=phone, status=PENDING, language=prefs.language)
        db.session.add(subscriber)
        db.session.flush()
    _ledger(subscriber, "subscribe", origin, prefs, consent=True)
    payload = {"categories": prefs.categories, "areas": list(prefs.areas), "language": prefs.language}
    _send_code(subscriber, "subscribe", payload, origin)
    return phone


def request_manage_code(phone_raw: str | None, origin: Origin) -> str:
    """A resident who lost their link asks for a code to get back to their settings.

    For a number we do not know, nothing is sent but the answer is the same.
    """
    phone = normalize_phone(phone_raw, current_app.config["ALLOWED_PHONE_REGIONS"])
    subscriber = _subscriber_by_phone(phone)
    if subscriber is None or subscriber.status not in (ACTIVE, OPTED_OUT):
        # Still count the attempt, so the form cannot be used to probe numbers for free.
        wait = ratelimit.retry_after_if_exceeded([*_code_limits(phone, origin.ip), _budget_limit()])
        if wait:
            raise SubscriptionError("rate_limited", status=429, retry_after=wait)
        ratelimit.record_hits(_code_limits(phone, origin.ip))
        db.session.commit()
        return phone
    try:
        _send_code(subscriber, "manage", {"language": subscriber.language}, origin)
    except SubscriptionError as exc:
        if exc.code != "resend_wait":
            raise
        # An unknown number never waits, so a known one must not say so either: the code
        # sent a moment ago is still valid, and nothing new goes out.
    return phone


def verify_code(phone_raw: str | None, code: str | None, origin: Origin) -> Subscriber:
    """Check a code; on success the subscription is active and the chosen preferences apply.

    Errors: ``code_invalid`` (with ``tries_left``), ``code_expired``, ``code_locked``
    (after VERIFY_MAX_ATTEMPTS wrong tries the code is void). An unknown number gets
    ``code_invalid`` like a wrong code.
    """
    phone = normalize_phone(phone_raw, current_app.config["ALLOWED_PHONE_REGIONS"])
    code = (code or "").strip().replace(" ", "")
    if not code:
        raise SubscriptionError("code_missing", field="code")
    subscriber = _subscriber_by_phone(phone)
    verification = None
    if subscriber is not None:
        verification = db.session.scalar(
            select(Verification)
            .where(Verification.subscriber_id == subscriber.id, Verification.consumed_at.is_(None),
                   Verification.voided_at.is_(None))
            .order_by(Verification.created_at.desc(), Verification.id.desc())
            .limit(1)
        )
    max_attempts = current_app.config["VERIFY_MAX_ATTEMPTS"]
    if subscriber is None or verification is None:
        raise SubscriptionError("code_invalid", field="code", tries_left=max_attempts - 1)
    now = utcnow()
    if verification.expires_at <= now:
        raise SubscriptionError("code_expired", field="code")
    if not hmac.compare_digest(verification.code_hash, _hash_code(subscriber.id, code)):
        verification.attempts += 1
        if verification.attempts >= max_attempts:
            verification.voided_at = now
            db.session.commit()
            raise SubscriptionError("code_locked", field="code")
        db.session.commit()
        raise SubscriptionError("code_invalid", field="code", tries_left=max_attempts - verification.attempts)

    verification.consumed_at = now
    was = subscriber.status
    if verification.purpose == "subscribe":
        p = verification.payload
        prefs = Preferences(categories={k: int(v) for k, v in p["categories"].items()},
                            areas=tuple(p["areas"]), language=p["language"])
        _apply_preferences(subscriber, prefs)
        subscriber.status = ACTIVE
        subscriber.status_reason = None
        subscriber.opted_out_at = None
        subscriber.verified_at = now
        _ledger(subscriber, "verify", origin, prefs, consent=True,
                detail=f"verification {verification.id}; status was {was}")
        db.session.commit()
        _send_confirmation(subscriber)
        return subscriber
    _ledger(subscriber, "verify", origin, detail=f"manage access, verification {verification.id}")
    db.session.commit()
    return subscriber


def _send_confirmation(subscriber: Subscriber) -> None:
    """Text the manage link once a web or app sign-up is confirmed, so the resident can
    change or leave later even without the page (the consent text promises it)."""
    from alerts.sms_text import fit_sms
    from subscribers.links import manage_url

    m = municipality()
    lang = subscriber.language
    stop = translate("sms.confirmed_stop", lang) if m.inbound_number else ""
    text = translate("sms.confirmed", lang, gmina=m.name, link=manage_url(subscriber), stop=stop)
    body = fit_sms(text, max_segments=2, keep_diacritics=(lang == "uk"))
    try:
        current_app.extensions["sms"].send(SmsMessage(to=subscriber.phone, body=body,
                                                      reference=f"confirmation-{subscriber.id}"))
    except ProviderError as exc:
        # The subscription stands; the page showed the link too.
        log.warning("confirmation SMS to subscriber %s failed: %s", subscriber.id, exc)


# --- changing and leaving ---------------------------------------------------------------

def update_preferences(subscriber: Subscriber, prefs: Preferences, origin: Origin) -> None:
    _apply_preferences(subscriber, prefs)
    _ledger(subscriber, "change", origin, prefs, consent=True)
    db.session.commit()


def opt_out(subscriber: Subscriber, origin: Origin, detail: str | None = None) -> bool:
    """Stop all messages at once. Returns False when the resident had already left
    (so a confirmation goes out only once)."""
    if subscriber.status == OPTED_OUT:
        return False
    subscriber.status = OPTED_OUT
    subscriber.opted_out_at = utcnow()
    _ledger(subscriber, "opt_out", origin, detail=detail)
    db.session.commit()
    return True


def opt_in(subscriber: Subscriber, origin: Origin) -> bool:
    """Come back after leaving (START, or the link). Only a verified number can return."""
    if subscriber.status == ACTIVE:
        return False
    if subscriber.verified_at is None:
        raise SubscriptionError("not_verified")
    subscriber.status = ACTIVE
    subscriber.opted_out_at = None
    subscriber.status_reason = None
    _ledger(subscriber, "opt_in", origin, current_preferences(subscriber), consent=True)
    db.session.commit()
    return True


def deactivate(subscriber: Subscriber, reason: str, origin: Origin) -> None:
    """The number cannot get SMS (invalid, landline): stop sending and show staff why."""
    subscriber.status = DEACTIVATED
    subscriber.status_reason = reason[:200]
    _ledger(subscriber, "deactivate", origin, detail=reason)
    db.session.commit()


def keyword_signup(phone: str, area: str | None, origin: Origin) -> tuple[Subscriber, str]:
    """START [area] by SMS: the message itself proves the number.

    Returns (subscriber, outcome) with outcome ``subscribed`` (new), ``resumed`` (came back
    after leaving or from an unfinished web sign-up), ``area_changed`` or ``already``.
    Raises ``area_unknown`` for an area code the gmina does not have.
    """
    m = municipality()
    if area is not None and m.area(area) is None:
        raise SubscriptionError("area_unknown", field="areas", value=area)
    subscriber = _subscriber_by_phone(phone)
    now = utcnow()
    if subscriber is None:
        subscriber = Subscriber(phone=phone, status=PENDING, language=m.default_language)
        db.session.add(subscriber)
        db.session.flush()
    if subscriber.status == ACTIVE:
        if area and area not in subscriber.area_codes():
            prefs = current_preferences(subscriber)
            prefs = Preferences(prefs.categories, tuple(sorted({*prefs.areas, area})), prefs.language)
            update_preferences(subscriber, prefs, origin)
            return subscriber, "area_changed"
        return subscriber, "already"
    outcome = "subscribed" if subscriber.verified_at is None else "resumed"
    if subscriber.verified_at is None or not subscriber.categories:
        prefs = default_preferences(area, subscriber.language)
        _apply_preferences(subscriber, prefs)
    else:
        prefs = current_preferences(subscriber)
        if area and area not in prefs.areas:
            prefs = Preferences(prefs.categories, tuple(sorted({*prefs.areas, area})), prefs.language)
            _apply_preferences(subscriber, prefs)
    subscriber.status = ACTIVE
    subscriber.status_reason = None
    subscriber.opted_out_at = None
    subscriber.verified_at = subscriber.verified_at or now
    _ledger(subscriber, "subscribe" if outcome == "subscribed" else "opt_in", origin, prefs,
            consent=True, detail="SMS keyword")
    db.session.commit()
    return subscriber, outcome


def revoke_links(subscriber: Subscriber) -> None:
    subscriber.link_version += 1
    db.session.commit()


# --- GDPR: access (erasure: subscribers/erasure.py) --------------------------------------

def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def export_data(subscriber: Subscriber) -> dict[str, Any]:
    """Everything Syrena holds about a resident (GDPR Art. 15 and 20), as JSON-ready data."""
    events = db.session.scalars(
        select(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber.id).order_by(ConsentEvent.id)
    ).all()
    codes = db.session.scalars(
        select(Verification).where(Verification.subscriber_id == subscriber.id).order_by(Verification.id)
    ).all()
    inbound = db.session.scalars(
        select(InboundSms).where(InboundSms.from_phone == subscriber.phone).order_by(InboundSms.id)
    ).all() if subscriber.phone else []
    data: dict[str, Any] = {
        "controller": municipality().controller or municipality().name,
        "exported_at": utcnow().isoformat(),
        "subscriber": {
            "phone": subscriber.phone,
            "language": subscriber.language,
            "status": subscriber.status,
            "status_reason": subscriber.status_reason,
            "created_at": _iso(subscriber.created_at),
            "verified_at": _iso(subscriber.verified_at),
            "opted_out_at": _iso(subscriber.opted_out_at),
            "categories": subscriber.category_levels(),
            "areas": subscriber.area_codes(),
        },
        "consent_history": [
            {"action": e.action, "at": _iso(e.created_at), "source": e.source, "categories": e.categories,
             "areas": e.areas, "language": e.language, "consent_version": e.consent_version,
             "ip": e.ip, "user_agent": e.user_agent, "detail": e.detail}
            for e in events
        ],
        "verification_codes": [
            {"purpose": v.purpose, "sent_at": _iso(v.created_at), "used_at": _iso(v.consumed_at),
             "wrong_tries": v.attempts}
            for v in codes
        ],
        "messages_from_you": [{"at": _iso(m.received_at), "text": m.body} for m in inbound],
    }
    for section in EXPORT_SECTIONS:
        name, value = section(subscriber)
        data[name] = value
    return data


# Other modules (deliveries, push subscriptions) add their part of a resident's data here,
# so this module needs no knowledge of them. Erasure: subscribers/erasure.py.
EXPORT_SECTIONS: list = []
