"""What staff see before sending: who gets it, the SMS exactly as it goes out, and the cost.

Computed from the saved alert with the same ``recipients`` query publishing uses and the
same renderer the dispatcher uses, so the preview is what happens (tests hold us to it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app
from sqlalchemy import func, select

from alerts import render
from alerts.models import Alert
from alerts.publish import active_channels, recipients
from alerts.sms_text import count_segments, is_gsm7
from db import db
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


@dataclass
class Preview:
    reach: dict[str, int]  # channel -> residents
    by_area: dict[str, dict[str, int]]  # area code -> channel -> residents
    sms: list[SmsPreview]
    sms_segments: int  # total segments that will be billed
    cost: Decimal
    currency: str
    warnings: list[str] = field(default_factory=list)  # stable codes: translate as preview.warning_<code>


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
    if "sms" in channels:
        for lang in sorted({"pl", *languages}, key=lambda x: (x != "pl", x)):
            body = render.sms_body(alert, lang)
            info = count_segments(body)
            # fit_sms adds the link to the full text only when it had to cut.
            shortened = body.endswith(render.alert_url(alert, lang))
            count = languages.get(lang, 0)
            sms.append(SmsPreview(lang, body, info.encoding, info.segments, len(body), count, shortened,
                                  info.non_gsm))
            total_segments += info.segments * count
    price = Decimal(str(cfg.get("SMS_PRICE_PER_SEGMENT", "0")))
    cost = (price * total_segments).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

    warnings: list[str] = []
    if any(p.shortened for p in sms):
        warnings.append("shortened")
    if any(p.encoding == "UCS-2" and p.language != "uk" for p in sms):
        warnings.append("ucs2")
    if sum(reach.values()) == 0:
        warnings.append("no_recipients")
    if "push" in alert.channels and "push" not in channels:
        warnings.append("push_off")
    if alert.exercise:
        warnings.append("exercise")
    return Preview(reach=reach, by_area=by_area, sms=sms, sms_segments=total_segments, cost=cost,
                   currency=cfg.get("SMS_PRICE_CURRENCY", "PLN"), warnings=warnings)


def text_warnings(text: str, keep_diacritics: bool) -> list[str]:
    """Characters in a text that would force UCS-2 (for the live counter while typing)."""
    return [] if not keep_diacritics or is_gsm7(text) else sorted(set(c for c in text if not is_gsm7(c)))
