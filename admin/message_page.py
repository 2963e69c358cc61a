"""The page of one staff message: before sending, the preview (who gets what, the SMS,
push and call as they go out, the cost) and the approval; after, the delivery figures,
the calls' outcomes, the failures and the timeline.
"""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import current_app, render_template
from sqlalchemy import func, select

from admin.charts import bar_chart, column_chart
from admin.compose_page import language_name
from admin.message_helpers import (EDITABLE, PLACEHOLDER, Errors, area_name, current_user, shown_fingerprint,
                                   staff_emails, zone)
from alerts import approval, quiet, render
from alerts.figures import CALL_ORDER, call_figures, delivery_figures
from alerts.match import GOT_IT
from alerts.models import AWAITING, DRAFT, FAILED, PUBLISHED, SCHEDULED, UNDELIVERED, Alert, Delivery
from alerts.preview import preview as build_preview
from alerts.preview import sent_variants
from alerts.sms_text import count_segments
from db import db, utcnow
from i18n import clock, number, t
from municipality import CATEGORIES, LANGUAGES
from staff.models import StaffUser
from subscribers.models import Subscriber


def placeholders(alert: Alert) -> list[str]:
    found: list[str] = []
    for text in (*alert.titles.values(), *alert.texts.values()):
        found.extend(m for m in PLACEHOLDER.findall(text or "") if m not in found)
    return found


def timeline(alert_id: int) -> list[tuple[str, float]]:
    """Deliveries handed to the provider per minute (wider steps for a long send)."""
    times = sorted(db.session.scalars(
        select(Delivery.sent_at).where(Delivery.alert_id == alert_id, Delivery.sent_at.is_not(None))).all())
    if not times:
        return []
    local = zone()
    first = times[0].astimezone(local).replace(second=0, microsecond=0)
    span = (times[-1].astimezone(local) - first).total_seconds() / 60
    step = max(1, math.ceil((span + 1) / 120))  # at most ~120 points
    counts: dict[int, int] = {}
    for value in times:
        index = int((value.astimezone(local) - first).total_seconds() // 60) // step
        counts[index] = counts.get(index, 0) + 1
    return [(clock(first + timedelta(minutes=i * step)), counts.get(i, 0))
            for i in range(0, max(counts) + 1)]


def failures(alert_id: int) -> list[dict[str, Any]]:
    """Failed deliveries per channel and error code, with one provider message as an example
    (the messages name the number, so they would not group)."""
    rows = db.session.execute(
        select(Delivery.channel, Delivery.error_code, func.count(), func.min(Delivery.error))
        .where(Delivery.alert_id == alert_id, Delivery.status.in_((FAILED, UNDELIVERED)))
        .group_by(Delivery.channel, Delivery.error_code)
        .order_by(func.count().desc()).limit(50)
    ).all()
    return [{"channel": c, "error_code": code, "count": n, "error": err} for c, code, n, err in rows]


def unreported_segments(alert: Alert) -> tuple[int, int]:
    """SMS the provider took without saying how many segments they were (Twilio through a
    Messaging Service answers 0 and nothing records the count later): how many, and their
    segments estimated from the text exactly as rendered for each resident's language."""
    rows = db.session.execute(
        select(Subscriber.language, func.count()).select_from(Delivery)
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.alert_id == alert.id, Delivery.channel == "sms", Delivery.segments.is_(None),
               Delivery.status.in_(GOT_IT))
        .group_by(Subscriber.language)
    ).all()
    count = sum(n for _, n in rows)
    segments = sum(count_segments(render.sms_body(alert, lang if lang in LANGUAGES else "pl")).segments * n
                   for lang, n in rows)
    return count, segments


def sms_cost(segments: int) -> Decimal:
    price = Decimal(str(current_app.config.get("SMS_PRICE_PER_SEGMENT", "0")))
    return (price * segments).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def sent_context(alert: Alert) -> dict[str, Any]:
    figures = delivery_figures(alert.id)
    unreported, estimated = unreported_segments(alert) if "sms" in figures["by_channel"] else (0, 0)
    cost = sms_cost(figures["sms_segments"] + estimated)
    by_area = sorted(figures["by_area"].items(), key=lambda kv: area_name(kv[0]))
    return {
        "figures": figures,
        "figures_by_area": by_area,
        "area_chart": bar_chart([(area_name(code), row["total"]) for code, row in by_area],
                                title=t("admin.msg.sent.by_area_chart")) if by_area else None,
        "timeline_chart": column_chart(timeline(alert.id), title=t("admin.msg.sent.timeline")),
        "failures": failures(alert.id),
        "cost_so_far": cost,
        "segments_so_far": figures["sms_segments"] + estimated,
        "unreported": unreported,
        "currency": current_app.config.get("SMS_PRICE_CURRENCY", "PLN"),
        "calls": call_figures(alert.id),
        "call_order": CALL_ORDER,
        **sent_sms(alert),
    }


def sent_sms(alert: Alert) -> dict[str, Any]:
    """The SMS as they went out: each variant, the residents' languages that got it and how
    many; a language that got the Polish SMS is named as such."""
    if "sms" not in alert.channels:
        return {"sent_sms": [], "sent_sms_unknown": 0}
    variants, unknown = sent_variants(alert)
    shown = [{"language": v.language, "body": v.body, "count": v.count,
              # With several languages on one text, each says how many of its residents got it.
              "names": ([f"{language_name(code)} ({number(n)})" for code, n in v.by_language.items()]
                        if len(v.by_language) > 1 else [language_name(v.language)]),
              "fallback_names": [language_name(code) for code in v.by_language if code != v.language]}
             for v in variants]
    return {"sent_sms": shown, "sent_sms_unknown": unknown}


def show_page(alert: Alert, errors: Errors | None = None, reason: str = "",
               status: int = 200):  # noqa: ANN202
    user = current_user()
    context: dict[str, Any] = {}
    pv = None
    if alert.status in (DRAFT, AWAITING, SCHEDULED):
        pv = build_preview(alert)
        rows = [(area_name(code), sum(counts.values())) for code, counts in
                sorted(pv.by_area.items(), key=lambda kv: area_name(kv[0]))]
        context["preview_chart"] = (bar_chart(rows, title=t("admin.msg.preview.by_area_chart"))
                                    if rows else None)
        # A resident of a targeted village who also chose another one counts there too: say so.
        by_area = sorted(pv.by_area.items(), key=lambda kv: area_name(kv[0]))
        context["preview_by_area"] = [(code, counts, alert.areas is None or code in alert.areas)
                                      for code, counts in by_area]
        context["ucs2_chars"] = list(dict.fromkeys(
            ch for sms in pv.sms if not sms.unicode_script for ch in sms.non_gsm))
        context["sms_price"] = Decimal(str(current_app.config.get("SMS_PRICE_PER_SEGMENT", "0")))
    if alert.published_at is not None:
        context.update(sent_context(alert))
    refusal = approval.can_approve(user, alert)
    people = staff_emails({i for i in (alert.created_by, alert.approved_by, alert.meta.get("rejected_by"),
                                         *alert.meta.get("edited_by", [])) if i})
    follow_ups = db.session.scalars(select(Alert).where(Alert.parent_id == alert.id).order_by(Alert.id)).all()
    now = utcnow()
    scheduled_later = alert.send_at is not None and alert.send_at > now
    span = quiet.hours()
    # When the quiet hours hold it: before approval, for sending now (or at its time); after,
    # while its deliveries still wait.
    held = None
    if alert.status in (DRAFT, AWAITING, SCHEDULED):
        held = quiet.held_until(alert, alert.send_at if scheduled_later else now)
    elif alert.status == PUBLISHED and context.get("figures", {}).get("total", {}).get("queued"):
        held = quiet.held_until(alert, now)
    context["deletable"] = approval.can_delete(user, alert)
    if alert.status == SCHEDULED and not user.can("approver"):
        context["stoppers"] = db.session.scalars(
            select(StaffUser.email).where(StaffUser.role.in_(("approver", "admin")), StaffUser.active.is_(True))
            .order_by(StaffUser.email)).all()
    context["quiet"] = {"held": held, "start": clock(span[0]) if span else "",
                        "end": clock(span[1]) if span else "", "minimum": quiet.MIN_REASON,
                        "override": (alert.meta or {}).get(quiet.OVERRIDE_KEY)}
    return render_template(
        "admin/messages/show.html", alert=alert, pv=pv, refusal=refusal, people=people, follow_ups=follow_ups,
        category=CATEGORIES.get(alert.category), placeholders=placeholders(alert),
        fingerprint=shown_fingerprint(alert), scheduled_later=scheduled_later, errors=errors or Errors(),
        reason=reason, editable=alert.status in EDITABLE, two_person=approval.two_person_needed(alert),
        chain_reach=chain_reach(alert),
        can_follow_up=approval.can_follow_up(alert), **context), status


def chain_reach(alert: Alert) -> str | None:
    """The real reach in words, when the chain makes it wider than the message's own areas."""
    reach = approval.reach_areas(alert)
    if alert.areas is None or reach == alert.areas:
        return None
    return t("alert.whole_gmina") if reach is None else ", ".join(area_name(code) for code in reach)
