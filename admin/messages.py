"""Staff messages: the dashboard, writing and editing, the preview with approval, the queue
and the list of messages.

Views are thin: they read the form, call the domain (``alerts.approval``, which checks every
rule and writes the audit log; ``alerts.preview``; ``alerts.figures``), then flash and
redirect (POST/redirect/GET), or re-render the same form with the message next to the field
and everything typed kept. Nothing here decides who may do what: buttons are only shown
when the domain would allow them, and a POST asks the domain again.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from admin.charts import bar_chart, column_chart
from admin import add_error_pages, feed_status
from alerts import approval, quiet, render
from alerts.feeds import health_report
from alerts.figures import BUCKET_ORDER, CALL_ORDER, call_figures, delivery_figures
from alerts.models import (
    AWAITING,
    CANCELLED,
    CHANNELS,
    DRAFT,
    EXPIRED,
    FAILED,
    KIND_ALERT,
    KIND_CANCEL,
    KIND_UPDATE,
    PUBLISHED,
    REJECTED,
    SCHEDULED,
    UNDELIVERED,
    UPDATED,
    Alert,
    Delivery,
)
from alerts.match import GOT_IT
from alerts.preview import preview as build_preview
from alerts.preview import sent_variants
from alerts.publish import TEXT_MAX_CHARS, AlertError, fingerprint
from alerts.sms_text import browser_rules, count_segments
from db import db, utcnow
from i18n import clock, current_language, local_time, money, number, plural_forms, t, translate
from municipality import CATEGORIES, LANGUAGES
from staff.auth import current_staff, login_required
from staff.models import StaffUser
from subscribers.models import Subscriber

bp = Blueprint("admin", __name__, url_prefix="/admin")
add_error_pages(bp)

STATUSES = (DRAFT, AWAITING, SCHEDULED, PUBLISHED, UPDATED, CANCELLED, EXPIRED, REJECTED)
EDITABLE = (DRAFT, AWAITING)
LEVELS = (1, 2, 3)
PER_PAGE = 50
# Text left in square brackets by a message template ("[data]"): shown as a warning.
PLACEHOLDER = re.compile(r"\[[^\[\]\n]{1,40}\]")


# --- templates for recurring messages (Polish: what residents read) ----------------------------

@dataclass(frozen=True)
class MessageTemplate:
    code: str
    category: str
    title: str
    text: str


MESSAGE_TEMPLATES: tuple[MessageTemplate, ...] = (
    MessageTemplate(
        "water", "utilities", "Przerwa w dostawie wody",
        "[dzień] w godz. [od]-[do] nie będzie wody: [ulice lub miejscowości]. Przyczyna: [awaria/prace]. "
        "Beczkowóz stanie przy [miejsce]. Przepraszamy za utrudnienia."),
    MessageTemplate(
        "road", "utilities", "Zamknięta droga: [ulica]",
        "Od [dzień, godzina] do [dzień, godzina] droga [ulica, odcinek] będzie zamknięta z powodu "
        "[przyczyna]. Objazd: [trasa]. Prosimy o ostrożność."),
    MessageTemplate(
        "event", "events", "[Nazwa wydarzenia] – zapraszamy",
        "[Nazwa wydarzenia]: [dzień] o godz. [godzina], [miejsce]. [Co się odbędzie]. Wstęp wolny. "
        "Zapraszamy!"),
    MessageTemplate(
        "storm", "weather", "Burze – jak się przygotować",
        "Nadchodzą burze z silnym wiatrem. Zabezpiecz rzeczy na balkonie i w ogrodzie, nie parkuj pod "
        "drzewami, naładuj telefon. W czasie burzy zostań w budynku, z dala od drzew i linii "
        "energetycznych. W zagrożeniu życia dzwoń pod 112."),
)


def _templates() -> list[MessageTemplate]:
    offered = _municipality().categories
    return [tpl for tpl in MESSAGE_TEMPLATES if tpl.category in offered]


# --- small helpers -----------------------------------------------------------------------------

@dataclass
class Errors:
    """Messages for a re-rendered form: per field (shown next to it) and general."""

    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    @classmethod
    def of(cls, exc: AlertError) -> Errors:
        errors = cls()
        message = _message(exc)
        if exc.field:
            errors.fields[exc.field] = message
        else:
            errors.general.append(message)
        return errors


def _message(exc: AlertError) -> str:
    return t(f"error.{exc.code}", **exc.params)


def _municipality():  # noqa: ANN202
    return current_app.extensions["municipality"]


def _zone() -> ZoneInfo:
    return ZoneInfo(_municipality().timezone)


def _user() -> StaffUser:
    user = current_staff()
    assert user is not None  # login_required ran first
    return user


def _alert(alert_id: int) -> Alert:
    alert = db.session.get(Alert, alert_id)
    if alert is None:
        abort(404)
    return alert


def _to_show(alert_id: int, anchor: str | None = None):  # noqa: ANN202
    return redirect(url_for(".show", alert_id=alert_id, _anchor=anchor), code=303)


def _local_input(value: datetime | None) -> str:
    """An aware datetime as a datetime-local value in the gmina's time."""
    return value.astimezone(_zone()).strftime("%Y-%m-%dT%H:%M") if value else ""


def _area_name(code: str) -> str:
    area = _municipality().area(code)
    return area.name if area else code


def _areas_text(alert: Alert) -> str:
    if alert.areas is None:
        return t("alert.whole_gmina")
    return ", ".join(_area_name(code) for code in alert.areas)


def _fingerprint(alert: Alert) -> str:
    """What the approver sees: posted back with the approval, which is refused unless it is
    still the message's current version (alerts/approval.py)."""
    return fingerprint(alert)


def _staff_emails(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(db.session.execute(select(StaffUser.id, StaffUser.email).where(StaffUser.id.in_(ids))).all())


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {
        "number": number,
        "money": money,
        "area_name": _area_name,
        "areas_text": _areas_text,
        "categories": CATEGORIES,
        "statuses": STATUSES,
        "channels": CHANNELS,
        "buckets": BUCKET_ORDER,
        "source_name": feed_status.source_name,
        "validity_defaults": _validity_defaults,
    }


def _validity_defaults() -> str:
    """'Ostrzeżenia meteorologiczne 24 h, Komunikaty urzędowe 7 dni, ...' for the compose hint."""
    m = _municipality()
    lang = current_language()
    parts = []
    for category in m.offered_categories():
        hours = int(m.validity(category.code).total_seconds() // 3600)
        span = t("validity.days", days=hours // 24) if hours % 24 == 0 and hours >= 48 else t("validity.hours", hours=hours)
        parts.append(f"{category.name(lang)} {span}")
    return ", ".join(parts)


# --- the dashboard -------------------------------------------------------------------------------

def _feed_rows() -> tuple[str, list[dict[str, Any]]]:
    report = health_report()
    rows = []
    for name, info in report["feeds"].items():
        def when(key: str) -> datetime | None:
            return datetime.fromisoformat(info[key]) if info.get(key) else None

        row = {"name": name, "title": feed_status.feed_name(name), "last_success_at": when("last_success_at"),
               "last_error_at": when("last_error_at"), "last_error": info.get("last_error"),
               "summary": info.get("last_summary"), "failing": info["failing"], "stale": info["stale"]}
        row["problem"] = feed_status.problem(row)
        rows.append(row)
    return report.get("feeds_status", report["status"]), rows


@bp.get("/")
@login_required()
def dashboard():  # noqa: ANN201
    now = utcnow()
    active = db.session.scalars(
        # In force: published and not ended; a cancellation notice or an exercise is not.
        select(Alert).where(Alert.status == PUBLISHED, Alert.kind != KIND_CANCEL, Alert.exercise.is_(False),
                            (Alert.expires_at.is_(None)) | (Alert.expires_at > now))
        .order_by(Alert.published_at.desc())
    ).all()
    scheduled = db.session.scalars(
        select(Alert).where(Alert.status == SCHEDULED).order_by(Alert.send_at)).all()
    awaiting = db.session.scalar(select(func.count()).select_from(Alert).where(Alert.status == AWAITING)) or 0
    midnight = now.astimezone(_zone()).replace(hour=0, minute=0, second=0, microsecond=0)
    sent_today = db.session.scalars(
        select(Alert).where(Alert.published_at.is_not(None), Alert.published_at >= midnight)
        .order_by(Alert.published_at.desc())
    ).all()
    # Exercises go to the staff test group only: they stay out of the statistics.
    today = [(a, delivery_figures(a.id)) for a in sent_today if not a.exercise]
    exercises_today = sum(1 for a in sent_today if a.exercise)
    totals = {key: sum(f["total"][key] for _, f in today) for key in ("total", *BUCKET_ORDER)}
    # Segments the provider reported, plus an estimate for those it has not reported yet.
    segments = sum(f["sms_segments"] + (_unreported_segments(a)[1] if "sms" in f["by_channel"] else 0)
                   for a, f in today)
    feed_status, feeds = _feed_rows()
    return render_template(
        "admin/dashboard.html", active=active, scheduled=scheduled, awaiting=awaiting, today=today,
        totals=totals, segments=segments, cost=_cost(segments),
        currency=current_app.config.get("SMS_PRICE_CURRENCY", "PLN"), exercises_today=exercises_today,
        feed_status=feed_status, feeds=feeds)


# --- writing: new, edit, update, cancel -------------------------------------------------------------

def _new_form() -> MultiDict:
    form = MultiDict([("target", "all"), ("when", "now"), *(("channels", c) for c in CHANNELS)])
    code = request.args.get("template")
    tpl = next((x for x in _templates() if x.code == code), None)
    if tpl is not None:
        form["template"] = tpl.code
        form["category"] = tpl.category
        form["title_pl"] = tpl.title
        form["text_pl"] = tpl.text
    return form


def _form_from_alert(alert: Alert, *, titles: bool = True) -> MultiDict:
    form: MultiDict = MultiDict()
    form["category"] = alert.category
    form["level"] = str(alert.level or "")
    if titles:
        for lang in LANGUAGES:
            form[f"title_{lang}"] = alert.titles.get(lang, "")
            form[f"text_{lang}"] = alert.texts.get(lang, "")
        form["spoken_pl"] = (alert.spoken or {}).get("pl", "")
    form["target"] = "all" if alert.areas is None else "areas"
    for code in alert.areas or []:
        form.add("areas", code)
    for channel in alert.channels:
        form.add("channels", channel)
    form["when"] = "later" if alert.send_at else "now"
    form["send_at"] = _local_input(alert.send_at)
    form["expires_at"] = _local_input(alert.expires_at)
    if alert.keep_diacritics:
        form["keep_diacritics"] = "1"
    if alert.exercise:
        form["exercise"] = "1"
    return form


def _compose_page(mode: str, form: MultiDict, errors: Errors, *, alert: Alert | None = None,
                  parent: Alert | None = None, status: int = 200):  # noqa: ANN202
    """mode: new, edit, update (a correction of `parent`), cancel (its withdrawal)."""
    if alert is not None:
        kind = alert.kind
    else:
        kind = {"update": KIND_UPDATE, "cancel": KIND_CANCEL}.get(mode, KIND_ALERT)
    if mode == "new":
        action = url_for(".compose")
    elif mode == "edit":
        action = url_for(".edit", alert_id=alert.id)
    elif mode == "update":
        action = url_for(".follow_up_update", alert_id=parent.id)
    else:
        action = url_for(".follow_up_cancel", alert_id=parent.id)
    category = CATEGORIES.get(parent.category if parent is not None else form.get("category", ""))
    page = render_template(
        "admin/messages/compose.html", mode=mode, kind=kind, form=form, errors=errors, alert=alert,
        parent=parent, action=action, fixed_category=category if parent is not None else None,
        templates=_templates() if mode == "new" else [], offered=_municipality().offered_categories(),
        levels=LEVELS, languages=LANGUAGES, text_max=TEXT_MAX_CHARS,
        counters={code: _counter(code, parent, kind) for code in LANGUAGES},
        gsm_rules=json.dumps(browser_rules(), ensure_ascii=False),
        max_segments=current_app.config.get("SMS_MAX_SEGMENTS", 2),
        push_on=current_app.extensions.get("webpush") is not None,
        voice_on=current_app.extensions.get("voice") is not None)
    return page, status


def _saved(alert: Alert, message_key: str):  # noqa: ANN202
    flash(t(message_key), "ok")
    return _to_show(alert.id)


@bp.route("/messages/new", methods=["GET", "POST"])
@login_required()
def compose():  # noqa: ANN201
    if request.method == "GET":
        return _compose_page("new", _new_form(), Errors())
    try:
        draft = approval.draft_from_form(request.form)
        alert = approval.save_draft(_user(), draft)
    except AlertError as exc:
        db.session.rollback()
        return _compose_page("new", request.form, Errors.of(exc), status=400)
    return _saved(alert, "admin.msg.flash.saved")


@bp.route("/messages/<int:alert_id>/edit", methods=["GET", "POST"])
@login_required()
def edit(alert_id: int):  # noqa: ANN201
    alert = _alert(alert_id)
    if alert.status not in EDITABLE:
        flash(t("error.not_editable"), "error")
        return _to_show(alert.id)
    mode = "cancel" if alert.kind == KIND_CANCEL else "edit"
    if request.method == "GET":
        return _compose_page(mode, _form_from_alert(alert), Errors(), alert=alert, parent=alert.parent)
    try:
        draft = approval.draft_from_form(_posted_form(alert), parent=alert.parent)
        approval.save_draft(_user(), draft, alert)
    except AlertError as exc:
        db.session.rollback()
        alert = _alert(alert_id)
        return _compose_page(mode, request.form, Errors.of(exc), alert=alert, parent=alert.parent, status=400)
    return _saved(alert, "admin.msg.flash.edited")


def _posted_form(alert: Alert | None, parent: Alert | None = None) -> MultiDict:
    """The posted form; a cancellation's form has only its words, so what it cannot change
    (target, channels, level, exercise) comes from the message it withdraws."""
    form = MultiDict(request.form)
    source = parent if parent is not None else (alert.parent if alert is not None else None)
    kind = KIND_CANCEL if parent is not None else (alert.kind if alert is not None else KIND_ALERT)
    if kind == KIND_CANCEL and source is not None:
        fixed = _form_from_alert(alert if alert is not None else source, titles=False)
        for key in ("category", "level", "target", "areas", "channels", "exercise"):
            form.setlist(key, fixed.getlist(key))
        form["when"] = "now"
        form["expires_at"] = ""
    elif alert is not None and alert.parent_id is not None:
        form.setlist("exercise", ["1"] if alert.exercise else [])
    return form


def _follow_up(alert_id: int, kind: str):  # noqa: ANN202
    parent = _alert(alert_id)
    mode = "update" if kind == KIND_UPDATE else "cancel"
    if not approval.can_follow_up(parent):
        flash(t("error.parent_not_published"), "error")
        return _to_show(parent.id)
    if request.method == "GET":
        form = _form_from_alert(parent)
        form["when"], form["send_at"] = "now", ""
        if kind == KIND_CANCEL:
            for lang in LANGUAGES:
                form[f"text_{lang}"] = ""
            form["text_pl"] = translate("admin.msg.cancel_default_text", "pl")  # residents read it
        return _compose_page(mode, form, Errors(), parent=parent)
    try:
        form = _posted_form(None, parent) if kind == KIND_CANCEL else request.form
        draft = approval.draft_from_form(form, parent=parent)
        alert = approval.save_draft(_user(), draft, parent=parent, kind=kind)
    except AlertError as exc:
        db.session.rollback()
        return _compose_page(mode, request.form, Errors.of(exc), parent=_alert(alert_id), status=400)
    return _saved(alert, "admin.msg.flash.saved")


@bp.route("/messages/<int:alert_id>/update", methods=["GET", "POST"])
@login_required()
def follow_up_update(alert_id: int):  # noqa: ANN201
    return _follow_up(alert_id, KIND_UPDATE)


@bp.route("/messages/<int:alert_id>/cancel", methods=["GET", "POST"])
@login_required()
def follow_up_cancel(alert_id: int):  # noqa: ANN201
    return _follow_up(alert_id, KIND_CANCEL)


# --- the preview and what was sent ------------------------------------------------------------------

def _placeholders(alert: Alert) -> list[str]:
    found: list[str] = []
    for text in (*alert.titles.values(), *alert.texts.values()):
        found.extend(m for m in PLACEHOLDER.findall(text or "") if m not in found)
    return found


def _timeline(alert_id: int) -> list[tuple[str, float]]:
    """Deliveries handed to the provider per minute (wider steps for a long send)."""
    times = sorted(db.session.scalars(
        select(Delivery.sent_at).where(Delivery.alert_id == alert_id, Delivery.sent_at.is_not(None))).all())
    if not times:
        return []
    zone = _zone()
    first = times[0].astimezone(zone).replace(second=0, microsecond=0)
    span = (times[-1].astimezone(zone) - first).total_seconds() / 60
    step = max(1, math.ceil((span + 1) / 120))  # at most ~120 points
    counts: dict[int, int] = {}
    for value in times:
        index = int((value.astimezone(zone) - first).total_seconds() // 60) // step
        counts[index] = counts.get(index, 0) + 1
    return [(clock(first + timedelta(minutes=i * step)), counts.get(i, 0))
            for i in range(0, max(counts) + 1)]


def _failures(alert_id: int) -> list[dict[str, Any]]:
    """Failed deliveries per channel and error code, with one provider message as an example
    (the messages name the number, so they would not group)."""
    rows = db.session.execute(
        select(Delivery.channel, Delivery.error_code, func.count(), func.min(Delivery.error))
        .where(Delivery.alert_id == alert_id, Delivery.status.in_((FAILED, UNDELIVERED)))
        .group_by(Delivery.channel, Delivery.error_code)
        .order_by(func.count().desc()).limit(50)
    ).all()
    return [{"channel": c, "error_code": code, "count": n, "error": err} for c, code, n, err in rows]


def _unreported_segments(alert: Alert) -> tuple[int, int]:
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


def _cost(segments: int) -> Decimal:
    price = Decimal(str(current_app.config.get("SMS_PRICE_PER_SEGMENT", "0")))
    return (price * segments).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _sent_context(alert: Alert) -> dict[str, Any]:
    figures = delivery_figures(alert.id)
    unreported, estimated = _unreported_segments(alert) if "sms" in figures["by_channel"] else (0, 0)
    cost = _cost(figures["sms_segments"] + estimated)
    by_area = sorted(figures["by_area"].items(), key=lambda kv: _area_name(kv[0]))
    return {
        "figures": figures,
        "figures_by_area": by_area,
        "area_chart": bar_chart([(_area_name(code), row["total"]) for code, row in by_area],
                                title=t("admin.msg.sent.by_area_chart")) if by_area else None,
        "timeline_chart": column_chart(_timeline(alert.id), title=t("admin.msg.sent.timeline")),
        "failures": _failures(alert.id),
        "cost_so_far": cost,
        "segments_so_far": figures["sms_segments"] + estimated,
        "unreported": unreported,
        "currency": current_app.config.get("SMS_PRICE_CURRENCY", "PLN"),
        "calls": call_figures(alert.id),
        "call_order": CALL_ORDER,
        **_sent_sms(alert),
    }


def _counter(code: str, parent: Alert | None, kind: str) -> dict[str, str]:
    """What the live SMS counter under the `code` text needs (static/admin-messages.js): how
    that language's SMS starts (a follow-up is an exercise when its parent is; other messages
    say so with the exercise checkbox), its segment cap, and its texts in the page's language,
    the counted one as plural forms for the script to choose from as it counts."""
    prefix = translate("alert.prefix_exercise", code) + " " if parent is not None and parent.exercise else ""
    if kind in (KIND_UPDATE, KIND_CANCEL):
        prefix += translate(f"alert.prefix_{kind}", code) + " "
    name = _language_name(code)
    gsm_cap = current_app.config.get("SMS_MAX_SEGMENTS", 2)
    script_cap = current_app.config.get("SMS_MAX_SEGMENTS_UNICODE", 5)
    forms = {category: text.replace("{language}", name)
             for category, text in plural_forms("admin.msg.compose.counter", current_language()).items()}
    return {"prefix": prefix, "exercise_prefix": translate("alert.prefix_exercise", code) + " ",
            "forms": json.dumps(forms, ensure_ascii=False), "cap": gsm_cap, "script_cap": script_cap,
            "cut": t("admin.msg.compose.counter_cut", max=gsm_cap),
            "script_cut": t("admin.msg.compose.counter_cut", max=script_cap),
            "script": t("admin.msg.compose.counter_script", max=script_cap),
            "fallback": t("admin.msg.compose.counter_fallback", language=name)}


def _language_name(code: str) -> str:
    return t(f"admin.msg.lang.{code}") if code in LANGUAGES else code


def _sent_sms(alert: Alert) -> dict[str, Any]:
    """The SMS as they went out: each variant, the residents' languages that got it and how
    many; a language that got the Polish SMS is named as such."""
    if "sms" not in alert.channels:
        return {"sent_sms": [], "sent_sms_unknown": 0}
    variants, unknown = sent_variants(alert)
    shown = [{"language": v.language, "body": v.body, "count": v.count,
              # With several languages on one text, each says how many of its residents got it.
              "names": ([f"{_language_name(code)} ({number(n)})" for code, n in v.by_language.items()]
                        if len(v.by_language) > 1 else [_language_name(v.language)]),
              "fallback_names": [_language_name(code) for code in v.by_language if code != v.language]}
             for v in variants]
    return {"sent_sms": shown, "sent_sms_unknown": unknown}


def _show_page(alert: Alert, errors: Errors | None = None, reason: str = "",
               status: int = 200):  # noqa: ANN202
    user = _user()
    context: dict[str, Any] = {}
    pv = None
    if alert.status in (DRAFT, AWAITING, SCHEDULED):
        pv = build_preview(alert)
        rows = [(_area_name(code), sum(counts.values())) for code, counts in
                sorted(pv.by_area.items(), key=lambda kv: _area_name(kv[0]))]
        context["preview_chart"] = (bar_chart(rows, title=t("admin.msg.preview.by_area_chart"))
                                    if rows else None)
        # A resident of a targeted village who also chose another one counts there too: say so.
        by_area = sorted(pv.by_area.items(), key=lambda kv: _area_name(kv[0]))
        context["preview_by_area"] = [(code, counts, alert.areas is None or code in alert.areas)
                                      for code, counts in by_area]
        context["ucs2_chars"] = list(dict.fromkeys(
            ch for sms in pv.sms if not sms.unicode_script for ch in sms.non_gsm))
        context["sms_price"] = Decimal(str(current_app.config.get("SMS_PRICE_PER_SEGMENT", "0")))
    if alert.published_at is not None:
        context.update(_sent_context(alert))
    refusal = approval.can_approve(user, alert)
    people = _staff_emails({i for i in (alert.created_by, alert.approved_by, alert.meta.get("rejected_by"),
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
        category=CATEGORIES.get(alert.category), placeholders=_placeholders(alert),
        fingerprint=_fingerprint(alert), scheduled_later=scheduled_later, errors=errors or Errors(),
        reason=reason, editable=alert.status in EDITABLE, two_person=approval.two_person_needed(alert),
        chain_reach=_chain_reach(alert),
        can_follow_up=approval.can_follow_up(alert), **context), status


def _chain_reach(alert: Alert) -> str | None:
    """The real reach in words, when the chain makes it wider than the message's own areas."""
    reach = approval.reach_areas(alert)
    if alert.areas is None or reach == alert.areas:
        return None
    return t("alert.whole_gmina") if reach is None else ", ".join(_area_name(code) for code in reach)


@bp.get("/messages/<int:alert_id>")
@login_required()
def show(alert_id: int):  # noqa: ANN201
    return _show_page(_alert(alert_id))


def _seen() -> str:
    """The fingerprint the approver's page showed ("" when none was posted: refused)."""
    return request.form.get("fingerprint") or ""


def _refusal_message(exc: AlertError) -> str:
    # A message changed since the page was drawn: say so plainly, nothing was sent.
    return t("admin.msg.flash.changed") if exc.code == "version_changed" else _message(exc)


def _sent_message(counts: dict[str, int]) -> str:
    parts = ", ".join(f"{t('admin.msg.channel.' + c)}: {number(n)}" for c, n in counts.items())
    return t("admin.msg.flash.sent", counts=parts or "0")


def _act(alert_id: int, step: Callable[[StaffUser, Alert], Any], done: str):  # noqa: ANN202
    """Run one approval step; flash its refusal, or `done`; back to the message."""
    alert = _alert(alert_id)
    try:
        step(_user(), alert)
    except AlertError as exc:
        db.session.rollback()
        flash(_message(exc), "error")
    else:
        flash(t(done), "ok")
    return _to_show(alert_id)


@bp.post("/messages/<int:alert_id>/submit")
@login_required()
def submit(alert_id: int):  # noqa: ANN201
    return _act(alert_id, approval.submit, "admin.msg.flash.submitted")


@bp.post("/messages/<int:alert_id>/approve")
@login_required()
def approve(alert_id: int):  # noqa: ANN201
    alert = _alert(alert_id)
    night = request.form.get("quiet_reason")  # the "send now despite the quiet hours" form
    try:
        counts = approval.approve(_user(), alert, seen=_seen(), quiet_reason=night)
    except AlertError as exc:
        db.session.rollback()
        if exc.field == "quiet_reason":
            return _show_page(_alert(alert_id), Errors.of(exc), reason=night or "", status=400)
        flash(_refusal_message(exc), "error")
        return _to_show(alert_id)
    if counts is None:
        flash(t("admin.msg.flash.scheduled", when=local_time(alert.send_at)), "ok")
    elif (held := quiet.held_until(alert, utcnow())) is not None:
        flash(t("admin.quiet.flash", count=number(sum(counts.values())), when=local_time(held)), "warning")
    else:
        flash(_sent_message(counts), "ok")
    return _to_show(alert_id)


@bp.post("/messages/<int:alert_id>/break-glass")
@login_required()
def break_glass(alert_id: int):  # noqa: ANN201
    alert = _alert(alert_id)
    reason = request.form.get("reason", "")
    try:
        counts = approval.break_glass(_user(), alert, reason, seen=_seen())
    except AlertError as exc:
        db.session.rollback()
        if exc.field == "reason":
            return _show_page(_alert(alert_id), Errors.of(exc), reason=reason, status=400)
        flash(_refusal_message(exc), "error")
        return _to_show(alert_id)
    flash(_sent_message(counts), "ok")
    return _to_show(alert_id)


@bp.post("/messages/<int:alert_id>/reject")
@login_required()
def reject(alert_id: int):  # noqa: ANN201
    reason = request.form.get("reason")
    return _act(alert_id, lambda user, alert: approval.reject(user, alert, reason), "admin.msg.flash.rejected")


@bp.post("/messages/<int:alert_id>/unschedule")
@login_required()
def unschedule(alert_id: int):  # noqa: ANN201
    return _act(alert_id, approval.unschedule, "admin.msg.flash.unscheduled")


@bp.post("/messages/<int:alert_id>/delete")
@login_required()
def delete(alert_id: int):  # noqa: ANN201
    alert = _alert(alert_id)
    try:
        approval.delete_draft(_user(), alert)
    except AlertError as exc:
        db.session.rollback()
        flash(_message(exc), "error")
        return _to_show(alert_id)
    flash(t("admin.drafts.deleted"), "ok")
    return redirect(url_for("admin.messages"))


# --- lists ------------------------------------------------------------------------------------------

def _urgency(alert: Alert) -> tuple[Any, ...]:
    """Feed alerts first, then emergencies and higher levels, then the oldest."""
    return (alert.source == "manual", alert.category != "emergency", -(alert.level or 0), alert.created_at)


@bp.get("/queue")
@login_required()
def queue():  # noqa: ANN201
    waiting = sorted(db.session.scalars(select(Alert).where(Alert.status == AWAITING)).all(), key=_urgency)
    user = _user()
    rows = [(a, approval.can_approve(user, a)) for a in waiting]
    return render_template("admin/messages/queue.html", rows=rows)


@bp.get("/messages")
@login_required()
def messages():  # noqa: ANN201
    status = request.args.get("status", "")
    page = max(1, request.args.get("page", 1, type=int) or 1)
    query = select(Alert)
    if status in STATUSES:
        query = query.where(Alert.status == status)
    else:
        status = ""
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    alerts = db.session.scalars(
        query.order_by(Alert.created_at.desc(), Alert.id.desc()).offset((page - 1) * PER_PAGE).limit(PER_PAGE)
    ).all()
    counts = dict(db.session.execute(select(Alert.status, func.count()).group_by(Alert.status)).all())
    return render_template("admin/messages/list.html", alerts=alerts, status=status, page=page,
                           pages=max(1, math.ceil(total / PER_PAGE)), total=total, counts=counts)
