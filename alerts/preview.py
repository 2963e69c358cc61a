"""What staff see before sending: who gets it, the SMS exactly as it goes out, and the cost.

Computed from the saved alert with the same ``recipients`` query publishing uses and the
same renderer the dispatcher uses, so the preview is what happens (tests hold us to it).
Per language it says which variant residents get (their own text, or the Polish SMS when
the message has none in their language) and what it costs, and it names, by language and
count, every variant that falls back to Polish or is cut to its cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app
from sqlalchemy import func, select

from alerts import render
from alerts.match import GOT_IT
from alerts.models import UNDELIVERED, Alert, Delivery
from alerts.publish import active_channels, recipients
from alerts.sms_text import count_segments, is_gsm7
from db import db
from municipality import LANGUAGES
from subscribers.models import Subscriber, SubscriberArea


@dataclass
class SmsPreview:
    language: str
    body: str
    encoding: str
    segments: int
    characters: int
    recipients: int
    shortened: bool  # the text was cut to the segment cap and ends with the link
    non_gsm: tuple[str, ...]  # characters that force UCS-2 (only when diacritics are kept)
    variant: str = "own"  # "own": written in this language; "fallback": the Polish SMS
    unicode_script: bool = False  # a script GSM-7 cannot carry: UCS-2 by necessity, own cap
    cap: int = 2  # the segment cap this variant was fitted to
    cost: Decimal = Decimal("0.00")  # segments x recipients x price


@dataclass(frozen=True)
class LanguageNotice:
    """A loud warning about one language's residents: code "fallback" (they get the Polish
    SMS) or "shortened" (their SMS is cut to `cap` segments and ends with the link)."""

    code: str
    language: str
    recipients: int
    cap: int


@dataclass
class VoicePreview:
    """The call as it will be read: its text (staff's wording, or made from the message),
    the voicemail version, how long it takes, and what the calls cost."""

    text: str  # what follows the intro: exactly what residents will hear
    edited: bool  # staff wrote it; otherwise it is made from the title and text
    derived: str  # what would be read without staff's wording
    intro: str
    voicemail: str
    seconds: int  # one reading of intro, text and menu
    minutes: int  # billed per call: every started minute
    recipients: int
    cost: Decimal  # one answered call each
    cost_max: Decimal  # every resident called VOICE_ATTEMPTS times
    attempts: int
    price: Decimal  # per started minute


@dataclass
class Preview:
    reach: dict[str, int]  # channel -> residents
    by_area: dict[str, dict[str, int]]  # area code -> channel -> residents
    sms: list[SmsPreview]
    sms_segments: int  # total segments that will be billed
    cost: Decimal
    currency: str
    warnings: list[str] = field(default_factory=list)  # stable codes: translate as preview.warning_<code>
    notices: list[LanguageNotice] = field(default_factory=list)  # per language, residents first
    voice: VoicePreview | None = None


def preview(alert: Alert) -> Preview:
    cfg = current_app.config
    channels = active_channels(alert)
    reach: dict[str, int] = {}
    by_area: dict[str, dict[str, int]] = {}
    languages: dict[str, int] = {}
    for channel in channels:
        who = recipients(alert, channel).subquery()
        reach[channel] = db.session.scalar(select(func.count()).select_from(who)) or 0
        per_area = select(SubscriberArea.area, func.count()).where(SubscriberArea.subscriber_id.in_(select(who.c.id)))
        if alert.areas is not None:
            # A resident of several areas counts in the targeted ones only.
            per_area = per_area.where(SubscriberArea.area.in_(alert.areas))
        for area, count in db.session.execute(per_area.group_by(SubscriberArea.area)):
            by_area.setdefault(area, {})[channel] = count
        if channel == "sms":
            languages = dict(db.session.execute(
                select(Subscriber.language, func.count()).where(Subscriber.id.in_(select(who.c.id)))
                .group_by(Subscriber.language)).all())

    sms: list[SmsPreview] = []
    total_segments = 0
    price = Decimal(str(cfg.get("SMS_PRICE_PER_SEGMENT", "0")))
    if "sms" in channels:
        for lang in sorted({"pl", *languages}, key=lambda x: (x != "pl", x)):
            body = render.sms_body(alert, lang)
            info = count_segments(body)
            sent_as = render.sms_language(alert, lang)
            # fit_sms adds the link to the full text only when it had to cut.
            shortened = body.endswith(render.alert_url(alert, sent_as))
            unicode_script = sent_as != "pl" and render.needs_unicode(body)
            count = languages.get(lang, 0)
            sms.append(SmsPreview(
                lang, body, info.encoding, info.segments, len(body), count, shortened, info.non_gsm,
                variant="own" if sent_as == lang else "fallback", unicode_script=unicode_script,
                cap=render.segment_cap(unicode_script), cost=_money(price * info.segments * count)))
            total_segments += info.segments * count
    cost = _money(price * total_segments)

    # Fallbacks first: residents who cannot read their SMS matter more than a cut one.
    notices = sorted((LanguageNotice(code, p.language, p.recipients, p.cap) for p in sms
                      for code, applies in (("fallback", p.variant == "fallback"), ("shortened", p.shortened))
                      if applies and p.recipients), key=lambda n: (n.code != "fallback", n.language))
    warnings: list[str] = []
    if any(p.shortened for p in sms):
        warnings.append("shortened")
    if any(p.variant == "fallback" and p.recipients for p in sms):
        warnings.append("fallback")
    if any(p.encoding == "UCS-2" and not p.unicode_script for p in sms):
        warnings.append("ucs2")
    if sum(reach.values()) == 0:
        warnings.append("no_recipients")
    if "push" in alert.channels and "push" not in channels:
        warnings.append("push_off")
    if "voice" in alert.channels and "voice" not in channels:
        warnings.append("voice_off")
    if alert.exercise:
        warnings.append("exercise")
    voice = voice_preview(alert, reach["voice"]) if "voice" in channels else None
    return Preview(reach=reach, by_area=by_area, sms=sms, sms_segments=total_segments, cost=cost,
                   currency=cfg.get("SMS_PRICE_CURRENCY", "PLN"), warnings=warnings, notices=notices, voice=voice)


def voice_preview(alert: Alert, recipients: int) -> VoicePreview:
    """The call of `alert` (the draft, or its approved version) for `recipients` residents."""
    from alerts import voice_text

    cfg = current_app.config
    message = render.approved(alert)
    parts = voice_text.message_parts(alert)
    seconds = voice_text.estimate(parts)
    minutes = voice_text.billed_minutes(seconds)
    price = Decimal(str(cfg.get("VOICE_PRICE_PER_MINUTE", "0")))
    attempts = int(cfg.get("VOICE_ATTEMPTS", 3))
    edited = bool((message.spoken or {}).get(voice_text.CALL_LANGUAGE))
    return VoicePreview(
        text=parts[1], edited=edited, derived=voice_text.derived_text(message), intro=parts[0],
        voicemail=" ".join(voice_text.voicemail_parts(alert)[1:]), seconds=seconds, minutes=minutes,
        recipients=recipients, cost=_money(price * minutes * recipients),
        cost_max=_money(price * minutes * recipients * attempts), attempts=attempts, price=price)


def _money(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def text_warnings(text: str, keep_diacritics: bool) -> list[str]:
    """Characters in a text that would force UCS-2 (for the live counter while typing)."""
    return [] if not keep_diacritics or is_gsm7(text) else sorted(set(c for c in text if not is_gsm7(c)))


# The provider took these: they went out (an undelivered one reached the operator).
WENT_OUT = (*GOT_IT, UNDELIVERED)


@dataclass
class SentVariant:
    """One SMS text that went out for a sent message, and to whom.

    language: the language of the text; body: the SMS exactly as sent; count: SMS that went
    out with it; by_language: residents' language -> count (a language other than
    `language` got the Polish SMS because the message had no text in it)."""

    language: str
    body: str
    count: int = 0
    by_language: dict[str, int] = field(default_factory=dict)


def sent_variants(alert: Alert) -> tuple[list[SentVariant], int]:
    """Every SMS variant of a sent message (Polish first, then each language it was written
    in, even before any went out) with the deliveries that went out grouped by the
    residents' language; and how many went out to residents whose data was since erased
    (their language, so their variant, is no longer known)."""
    rows = db.session.execute(
        select(Subscriber.language, func.count()).select_from(Delivery)
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.alert_id == alert.id, Delivery.channel == "sms", Delivery.status.in_(WENT_OUT))
        .group_by(Subscriber.language)
    ).all()
    variants = {lang: SentVariant(lang, render.sms_body(alert, lang)) for lang in LANGUAGES
                if render.sms_language(alert, lang) == lang}
    unknown = 0
    for lang, count in sorted(rows, key=lambda row: (row[0] != "pl", row[0] or "")):
        if lang is None:
            unknown += count
            continue
        sent_as = render.sms_language(alert, lang)
        variant = variants.setdefault(sent_as, SentVariant(sent_as, render.sms_body(alert, sent_as)))
        variant.count += count
        variant.by_language[lang] = variant.by_language.get(lang, 0) + count
    return sorted(variants.values(), key=lambda v: (v.language != "pl", v.language)), unknown
