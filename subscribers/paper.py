"""A resident registered by staff from a signed paper form (the sołtys's list, the office's
counter): the consent is the signature, the ledger says so (source "paper", the form's
reference, who typed it in), and the resident is told once how to change or leave.

No code is asked for (the resident is not at the keyboard), so the one message that goes
to the number names the form: a typo in the number reaches a stranger with one message that
tells them how to leave, never a stream of warnings. A number that opted out after the form
was signed, or whose resident changed their choices since (online, by SMS, 9 in a call), is
refused: the newer wish wins.
(The form carries a day, not a time: a form signed on the day of an opt-out counts as after.)
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select

from db import db, utcnow
from i18n import translate
from staff import audit
from staff.models import StaffUser
from subscribers import call_choice, outbox, service
from subscribers.errors import SubscriptionError
from subscribers.models import ACTIVE, OPTED_OUT, ConsentEvent, Subscriber
from subscribers.phone import is_landline, normalize_phone

REFERENCE_MAX = 64
# A signed form older than this is too old to rest a consent on.
FORM_MAX_AGE_DAYS = 366
NOTICE_TTL = timedelta(hours=12)


def _reference(raw: str) -> str:
    reference = " ".join((raw or "").split())
    if not reference:
        raise SubscriptionError("reference_missing", field="reference")
    if len(reference) > REFERENCE_MAX:
        raise SubscriptionError("reference_too_long", field="reference", limit=REFERENCE_MAX)
    return reference


def _signed_on(signed_on: date | None) -> date:
    today = utcnow().astimezone(ZoneInfo(service.municipality().timezone)).date()
    if signed_on is None:
        raise SubscriptionError("signed_on_missing", field="signed_on")
    if signed_on > today or signed_on < today - timedelta(days=FORM_MAX_AGE_DAYS):
        raise SubscriptionError("signed_on_invalid", field="signed_on", days=FORM_MAX_AGE_DAYS)
    return signed_on


def _phone(raw: object) -> str:
    return normalize_phone(raw, current_app.config["ALLOWED_PHONE_REGIONS"], landline=call_choice.calls_enabled())


def problems(phone_raw: object, reference: str, signed_on: date | None) -> list[SubscriptionError]:
    """Every problem of the form's own fields at once (the page shows them all)."""
    found = []
    for check, value in ((_phone, phone_raw), (_reference, reference), (_signed_on, signed_on)):
        try:
            check(value)
        except SubscriptionError as exc:
            found.append(exc)
    return found


def register(phone_raw: object, prefs: service.Preferences, reference: str, signed_on: date | None,
             staff: StaffUser, origin: service.Origin, closed_groups: list[str] = ()) -> Subscriber:
    """Register (or update) the resident of a paper form and commit. A landline gets calls
    only; `closed_groups` (sołtysi, OSP, ...) are added in the same transaction, each under its
    legal basis (subscribers/groups.py). Errors: the phone errors, ``reference_missing``, ``reference_too_long``,
    ``signed_on_missing``, ``signed_on_invalid``, ``opted_out_since`` (the number left
    after the form was signed), ``changed_since`` (the resident changed their choices
    after the form was signed)."""
    reference = _reference(reference)
    signed_on = _signed_on(signed_on)
    if closed_groups:
        from subscribers import groups

        groups.check_closed(list(closed_groups))
    phone = _phone(phone_raw)
    m = service.municipality()
    if is_landline(phone):
        # A landline cannot get an SMS: it is registered for calls, whatever was ticked.
        prefs = replace(prefs, voice_only=True, calls=call_choice.all_calls(prefs.categories))
    subscriber = service.subscriber_for_signup(phone, prefs.language)
    signed_at = datetime.combine(signed_on, time.max, tzinfo=ZoneInfo(m.timezone))
    if subscriber.status == OPTED_OUT and subscriber.opted_out_at and subscriber.opted_out_at > signed_at:
        raise SubscriptionError("opted_out_since", field="signed_on", day=subscriber.opted_out_at.astimezone(
            ZoneInfo(m.timezone)).date().isoformat())
    changed = _changed_since(subscriber, signed_at)
    if changed is not None:
        # The resident chose something themselves after signing: that newer wish stands.
        raise SubscriptionError("changed_since", field="signed_on", day=changed)
    was = subscriber.status
    now = utcnow()
    service._apply_preferences(subscriber, prefs)
    subscriber.status, subscriber.status_reason, subscriber.opted_out_at = ACTIVE, None, None
    subscriber.verified_at = subscriber.verified_at or now
    paper = replace(origin, source="paper", reference=reference)
    service._ledger(subscriber, "subscribe", paper, prefs, consent=True,
                    detail=f"paper form signed {signed_on.isoformat()}, entered by staff {staff.id}; status was {was}")
    audit.record("subscriber_registered_on_paper", staff=staff, target=f"subscriber:{subscriber.id}", commit=False,
                 reference=reference, calls_only=subscriber.voice_only)
    from subscribers import groups

    for code in closed_groups:
        groups.add(subscriber, code, staff, paper, commit=False)
    _tell(subscriber, reference, now)
    db.session.commit()
    return subscriber


# What a resident does about their own choices; a paper form older than one of these is stale.
OWN_CHANGES = ("subscribe", "verify", "change", "opt_in", "voice_opt_out")


def _changed_since(subscriber: Subscriber, signed_at: datetime) -> str | None:
    """The day of the resident's own latest change of their choices (sign-up, change, 9 in a
    call, ...), if it came after the form was signed; paper entries do not count."""
    if subscriber.id is None:
        return None
    at = db.session.scalar(select(func.max(ConsentEvent.created_at)).where(
        ConsentEvent.subscriber_id == subscriber.id, ConsentEvent.action.in_(OWN_CHANGES),
        ConsentEvent.source != "paper"))
    if at is None or at <= signed_at:
        return None
    return at.astimezone(ZoneInfo(service.municipality().timezone)).date().isoformat()


def _tell(subscriber: Subscriber, reference: str, now: datetime) -> None:
    """One message to the number: registered from form `reference`, and how to leave."""
    from alerts.sms_text import fit_sms
    from subscribers.links import manage_url

    m = service.municipality()
    assert subscriber.phone
    if subscriber.voice_only:
        from alerts import voice_text

        lines = [translate("voice.paper_registered", "pl", gmina=m.genitive, reference=reference),
                 voice_text.phrase("paper_leave"), voice_text.phrase("goodbye")]
        outbox.enqueue(subscriber.phone, "\n".join(lines), f"paper-{subscriber.id}", now + NOTICE_TTL,
                       subscriber_id=subscriber.id, kind="call")
        return
    lang = subscriber.language
    stop = translate("sms.confirmed_stop", lang) if m.inbound_number else ""
    text = translate("sms.paper_registered", lang, gmina=m.name, reference=reference, link=manage_url(subscriber),
                     stop=stop)
    outbox.enqueue(subscriber.phone, fit_sms(text, max_segments=2, keep_diacritics=(lang == "uk")),
                   f"paper-{subscriber.id}", now + NOTICE_TTL, subscriber_id=subscriber.id)
