"""What a resident can do, whatever door they come through (web page, JSON API, SMS).

Views and webhooks stay thin: they read input, call one function here, and render the
result or the SubscriptionError. Every step that changes consent writes a ConsentEvent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Iterable

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from db import db, utcnow
from municipality import CATEGORIES, LANGUAGES, Municipality
from subscribers.consent import CONSENT_VERSION
from subscribers.errors import SubscriptionError
from subscribers.call_choice import all_calls, calls_detail, calls_enabled
from subscribers.phone import is_landline
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
    SubscriberGroup,
    Verification,
    new_link_secret,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Origin:
    """Where a request came from, for the consent ledger and the rate limits."""

    source: str  # web | api | sms | voice | staff | paper | provider
    ip: str | None = None
    user_agent: str | None = None
    # The paper form's reference (source "paper").
    reference: str | None = None


@dataclass(frozen=True)
class Preferences:
    categories: dict[str, int]  # category code -> lowest level wanted (1-3)
    areas: tuple[str, ...]
    language: str
    # Category code -> lowest level that also rings the phone; empty: no calls at all. Any
    # resident with calls is called for every emergency too.
    calls: dict[str, int] = field(default_factory=dict)
    # Calls only, never an SMS (a landline, or a resident who cannot read one).
    voice_only: bool = False
    # Open groups (profile [[groups]], open = true) the resident joined themselves.
    groups: tuple[str, ...] = ()

    def as_payload(self) -> dict[str, Any]:
        """JSON-ready, for a code's payload or the session (``from_payload`` reads it)."""
        return {"categories": dict(self.categories), "areas": list(self.areas), "language": self.language,
                "calls": dict(self.calls), "voice_only": self.voice_only, "groups": list(self.groups)}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Preferences:
        return cls(categories={k: int(v) for k, v in data["categories"].items()}, areas=tuple(data["areas"]),
                   language=data["language"], calls={k: int(v) for k, v in (data.get("calls") or {}).items()},
                   voice_only=bool(data.get("voice_only")), groups=tuple(data.get("groups") or ()))


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
        except (TypeError, ValueError, OverflowError):  # OverflowError: 1e999 in JSON is inf
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


def parse_groups(codes: Iterable[str] | None) -> tuple[str, ...]:
    """The open groups a resident asks to join. Errors: ``group_unknown``, and
    ``group_closed`` for a group only staff add members to."""
    m = municipality()
    chosen: set[str] = set()
    for code in codes or []:
        group = m.group(code) if isinstance(code, str) else None
        if group is None:
            raise SubscriptionError("group_unknown", field="groups", value=str(code))
        if not group.open:
            raise SubscriptionError("group_closed", field="groups", value=code)
        chosen.add(code)
    return tuple(sorted(chosen))


def default_preferences(area: str | None = None, language: str | None = None) -> Preferences:
    m = municipality()
    return Preferences(
        categories={c: 1 for c in m.default_categories},
        areas=(area,) if area else tuple(m.area_codes()),
        language=language or m.default_language,
    )


def current_preferences(subscriber: Subscriber) -> Preferences:
    calls = {c.category: c.call_level for c in subscriber.categories if c.call_level is not None}
    if subscriber.voice and "emergency" not in calls:
        calls["emergency"] = 1
    joined = tuple(sorted(g.group for g in subscriber.groups if g.source == "self"))
    return Preferences(categories=subscriber.category_levels(), areas=tuple(subscriber.area_codes()),
                       language=subscriber.language, calls=calls if subscriber.voice else {},
                       voice_only=subscriber.voice_only, groups=joined)


def _apply_preferences(subscriber: Subscriber, prefs: Preferences) -> None:
    """Store `prefs` as the resident's. Where the gmina makes no calls no form shows call
    choices, so the resident's calls stay as they are (whatever door the change came by)."""
    if not calls_enabled() and subscriber.id is not None:
        current = current_preferences(subscriber)
        prefs = replace(prefs, calls={c: lvl for c, lvl in current.calls.items()
                                      if c in prefs.categories or c == "emergency"},
                        voice_only=current.voice_only)
    # Explicit deletes first: replacing the collections would let the unit of work insert the
    # new rows before deleting the old ones with the same primary key.
    db.session.execute(delete(SubscriberCategory).where(SubscriberCategory.subscriber_id == subscriber.id))
    db.session.execute(delete(SubscriberArea).where(SubscriberArea.subscriber_id == subscriber.id))
    # The groups the resident joined themselves; staff's additions (closed groups) stay.
    staff_added = set(db.session.scalars(select(SubscriberGroup.group).where(
        SubscriberGroup.subscriber_id == subscriber.id, SubscriberGroup.source != "self")))
    db.session.execute(delete(SubscriberGroup).where(SubscriberGroup.subscriber_id == subscriber.id,
                                                     SubscriberGroup.source == "self"))
    db.session.add_all(SubscriberGroup(subscriber_id=subscriber.id, group=g, source="self")
                       for g in prefs.groups if g not in staff_added)
    db.session.add_all(SubscriberCategory(subscriber_id=subscriber.id, category=c, min_level=lvl,
                                          call_level=prefs.calls.get(c))
                       for c, lvl in prefs.categories.items())
    db.session.add_all(SubscriberArea(subscriber_id=subscriber.id, area=a) for a in prefs.areas)
    subscriber.language = prefs.language
    subscriber.voice = bool(prefs.calls)
    subscriber.voice_only = prefs.voice_only and bool(prefs.calls)
    db.session.flush()
    db.session.expire(subscriber, ["categories", "areas", "groups"])


def _ledger(subscriber: Subscriber, action: str, origin: Origin, prefs: Preferences | None = None,
            detail: str | None = None, consent: bool = False) -> None:
    if prefs is not None and prefs.calls:
        calls = calls_detail(prefs.calls) + (" (calls only)" if prefs.voice_only else "")
        detail = "; ".join(d for d in (detail, calls) if d)
    if prefs is not None and prefs.groups:
        detail = "; ".join(d for d in (detail, "groups: " + ", ".join(prefs.groups)) if d)
    db.session.add(ConsentEvent(
        subscriber_id=subscriber.id,
        action=action,
        phone=subscriber.phone,
        categories=dict(prefs.categories) if prefs else None,
        areas=list(prefs.areas) if prefs else None,
        language=prefs.language if prefs else None,
        consent_version=CONSENT_VERSION if consent else None,
        source=origin.source,
        reference=origin.reference,
        ip=origin.ip,
        user_agent=(origin.user_agent or "")[:400] or None,
        detail=detail,
    ))


# --- finding and creating residents ----------------------------------------------------------
# Codes (sign-up, lost link, checking what was typed) live in subscribers/codes.py.

def subscriber_by_phone(phone: str) -> Subscriber | None:
    return db.session.scalar(select(Subscriber).where(Subscriber.phone == phone))


def subscriber_for_signup(phone: str, language: str) -> Subscriber:
    """The resident with this number, created (pending) if new. Parallel sign-ups of one new
    number make one row and no error: the insert does nothing when another request made it
    first (the unique number decides)."""
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    db.session.execute(
        insert(Subscriber)
        .values(phone=phone, status=PENDING, language=language, created_at=utcnow(), link_version=1,
                link_secret=new_link_secret(), test_group=False)
        .on_conflict_do_nothing(index_elements=[Subscriber.phone])
    )
    subscriber = subscriber_by_phone(phone)
    assert subscriber is not None
    return subscriber


# --- changing and leaving ---------------------------------------------------------------

def update_preferences(subscriber: Subscriber, prefs: Preferences, origin: Origin) -> None:
    """Change what the resident gets. Where the gmina makes no calls the form shows no call
    choices, so the resident's stay as they are. A landline keeps calls only: an SMS cannot
    reach it (``landline_calls_only``)."""
    if calls_enabled() and subscriber.phone and is_landline(subscriber.phone) and not prefs.voice_only:
        raise SubscriptionError("landline_calls_only", field="contact")
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
    prefs = current_preferences(subscriber)
    if subscriber.voice_only and not subscriber.voice:
        # Calls only, and calls were stopped (9): coming back means calls again, or nothing
        # would reach them.
        prefs = replace(prefs, calls=all_calls(prefs.categories))
        _apply_preferences(subscriber, prefs)
    _ledger(subscriber, "opt_in", origin, prefs, consent=True)
    db.session.commit()
    return True


def sms_unreachable(subscriber: Subscriber, reason: str, origin: Origin) -> None:
    """The number cannot get SMS. A resident who also takes calls keeps them (calls only from
    now on: a landline that looked like a mobile); anyone else is deactivated."""
    if subscriber.voice and calls_enabled():
        # Calls are all that reaches them now: everything they chose rings the phone.
        prefs = replace(current_preferences(subscriber), voice_only=True)
        prefs = replace(prefs, calls=all_calls(prefs.categories))
        _apply_preferences(subscriber, prefs)
        _ledger(subscriber, "sms_off", origin, prefs, detail=f"calls only from now on: {reason}")
        db.session.commit()
        return
    deactivate(subscriber, reason, origin)


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
    subscriber = subscriber_for_signup(phone, m.default_language)
    now = utcnow()
    if subscriber.status == ACTIVE:
        if area and area not in subscriber.area_codes():
            prefs = current_preferences(subscriber)
            prefs = replace(prefs, areas=tuple(sorted({*prefs.areas, area})))
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
            prefs = replace(prefs, areas=tuple(sorted({*prefs.areas, area})))
            _apply_preferences(subscriber, prefs)
    if subscriber.voice_only:
        # START came by SMS from this number: it takes SMS after all.
        prefs = replace(current_preferences(subscriber), voice_only=False)
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
    """Every manage link issued so far stops working (a lost phone, a leaked link)."""
    subscriber.link_version += 1
    subscriber.link_secret = new_link_secret()
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
            "calls_only": subscriber.voice_only,
            "calls": current_preferences(subscriber).calls,
            "groups": subscriber.group_codes(),
        },
        "consent_history": [
            {"action": e.action, "at": _iso(e.created_at), "source": e.source, "categories": e.categories,
             "areas": e.areas, "language": e.language, "consent_version": e.consent_version,
             "ip": e.ip, "user_agent": e.user_agent, "detail": e.detail, "paper_form": e.reference}
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
