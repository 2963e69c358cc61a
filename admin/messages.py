"""Staff messages: the routes of the dashboard, writing and editing (admin/compose_page.py),
the message page with its approval steps (admin/message_page.py), the queue and the list.

Views are thin: they read the form, call the domain (``alerts.approval``, which checks every
rule and writes the audit log; ``alerts.preview``; ``alerts.figures``), then flash and
redirect (POST/redirect/GET), or re-render the same form with the message next to the field
and everything typed kept. Nothing here decides who may do what: buttons are only shown
when the domain would allow them, and a POST asks the domain again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from admin import add_error_pages, feed_status
from admin.compose_page import compose_page, form_from_alert, new_form, posted_form
from admin.message_helpers import (EDITABLE, STATUSES, Errors, area_name, areas_text, current_user, error_text,
                                   get_alert, to_show, validity_defaults, zone)
from admin.message_page import show_page, sms_cost, unreported_segments
from alerts import approval, quiet
from alerts.feeds import health_report
from alerts.figures import BUCKET_ORDER, delivery_figures
from alerts.models import AWAITING, CHANNELS, KIND_CANCEL, KIND_UPDATE, PUBLISHED, SCHEDULED, Alert
from alerts.publish import AlertError
from rollcall.models import SOURCE as ROLLCALL
from db import db, utcnow
from i18n import local_time, money, number, t, translate
from municipality import CATEGORIES, LANGUAGES
from staff.auth import login_required
from staff.models import StaffUser

bp = Blueprint("admin", __name__, url_prefix="/admin")
add_error_pages(bp)

PER_PAGE = 50


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {
        "number": number,
        "money": money,
        "area_name": area_name,
        "areas_text": areas_text,
        "categories": CATEGORIES,
        "statuses": STATUSES,
        "channels": CHANNELS,
        "buckets": BUCKET_ORDER,
        "source_name": feed_status.source_name,
        "validity_defaults": validity_defaults,
    }



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
                            Alert.source != ROLLCALL,
                            (Alert.expires_at.is_(None)) | (Alert.expires_at > now))
        .order_by(Alert.published_at.desc())
    ).all()
    scheduled = db.session.scalars(
        select(Alert).where(Alert.status == SCHEDULED, Alert.source != ROLLCALL).order_by(Alert.send_at)).all()
    awaiting = db.session.scalar(select(func.count()).select_from(Alert).where(Alert.status == AWAITING)) or 0
    midnight = now.astimezone(zone()).replace(hour=0, minute=0, second=0, microsecond=0)
    sent_today = db.session.scalars(
        select(Alert).where(Alert.published_at.is_not(None), Alert.published_at >= midnight)
        .order_by(Alert.published_at.desc())
    ).all()
    # Exercises go to the staff test group only: they stay out of the statistics.
    today = [(a, delivery_figures(a.id)) for a in sent_today if not a.exercise]
    exercises_today = sum(1 for a in sent_today if a.exercise)
    totals = {key: sum(f["total"][key] for _, f in today) for key in ("total", *BUCKET_ORDER)}
    # Segments the provider reported, plus an estimate for those it has not reported yet.
    segments = sum(f["sms_segments"] + (unreported_segments(a)[1] if "sms" in f["by_channel"] else 0)
                   for a, f in today)
    feed_status, feeds = _feed_rows()
    from rollcall import tally
    from rollcall.models import RollCall

    # An open roll-call comes first: who needs help is the most urgent thing on the page.
    roll_calls = [(rc, tally.counts(rc)[1]) for rc in db.session.scalars(
        select(RollCall).where(RollCall.closed_at.is_(None)).order_by(RollCall.started_at.desc()))]
    return render_template(
        "admin/dashboard.html", active=active, scheduled=scheduled, awaiting=awaiting, today=today, roll_calls=roll_calls,
        totals=totals, segments=segments, cost=sms_cost(segments),
        currency=current_app.config.get("SMS_PRICE_CURRENCY", "PLN"), exercises_today=exercises_today,
        feed_status=feed_status, feeds=feeds)


# --- writing: new, edit, update, cancel -------------------------------------------------------------

def _saved(alert: Alert, message_key: str):  # noqa: ANN202
    flash(t(message_key), "ok")
    return to_show(alert.id)


@bp.route("/messages/new", methods=["GET", "POST"])
@login_required()
def compose():  # noqa: ANN201
    if request.method == "GET":
        return compose_page("new", new_form(), Errors())
    try:
        draft = approval.draft_from_form(request.form)
        alert = approval.save_draft(current_user(), draft)
    except AlertError as exc:
        db.session.rollback()
        return compose_page("new", request.form, Errors.of(exc), status=400)
    return _saved(alert, "admin.msg.flash.saved")


@bp.route("/messages/<int:alert_id>/edit", methods=["GET", "POST"])
@login_required()
def edit(alert_id: int):  # noqa: ANN201
    alert = get_alert(alert_id)
    if alert.status not in EDITABLE:
        flash(t("error.not_editable"), "error")
        return to_show(alert.id)
    mode = "cancel" if alert.kind == KIND_CANCEL else "edit"
    if request.method == "GET":
        return compose_page(mode, form_from_alert(alert), Errors(), alert=alert, parent=alert.parent)
    try:
        draft = approval.draft_from_form(posted_form(alert), parent=alert.parent)
        approval.save_draft(current_user(), draft, alert)
    except AlertError as exc:
        db.session.rollback()
        alert = get_alert(alert_id)
        return compose_page(mode, request.form, Errors.of(exc), alert=alert, parent=alert.parent, status=400)
    return _saved(alert, "admin.msg.flash.edited")


def _follow_up(alert_id: int, kind: str):  # noqa: ANN202
    parent = get_alert(alert_id)
    mode = "update" if kind == KIND_UPDATE else "cancel"
    if not approval.can_follow_up(parent):
        flash(t("error.parent_not_published"), "error")
        return to_show(parent.id)
    if request.method == "GET":
        form = form_from_alert(parent)
        form["when"], form["send_at"] = "now", ""
        if kind == KIND_CANCEL:
            for lang in LANGUAGES:
                form[f"text_{lang}"] = ""
            form["text_pl"] = translate("admin.msg.cancel_default_text", "pl")  # residents read it
        return compose_page(mode, form, Errors(), parent=parent)
    try:
        form = posted_form(None, parent) if kind == KIND_CANCEL else request.form
        draft = approval.draft_from_form(form, parent=parent)
        alert = approval.save_draft(current_user(), draft, parent=parent, kind=kind)
    except AlertError as exc:
        db.session.rollback()
        return compose_page(mode, request.form, Errors.of(exc), parent=get_alert(alert_id), status=400)
    return _saved(alert, "admin.msg.flash.saved")


@bp.route("/messages/<int:alert_id>/update", methods=["GET", "POST"])
@login_required()
def follow_up_update(alert_id: int):  # noqa: ANN201
    return _follow_up(alert_id, KIND_UPDATE)


@bp.route("/messages/<int:alert_id>/cancel", methods=["GET", "POST"])
@login_required()
def follow_up_cancel(alert_id: int):  # noqa: ANN201
    return _follow_up(alert_id, KIND_CANCEL)


# --- the message page and the steps of its approval ------------------------------------------------

@bp.get("/messages/<int:alert_id>")
@login_required()
def show(alert_id: int):  # noqa: ANN201
    return show_page(get_alert(alert_id))


def _seen() -> str:
    """The fingerprint the approver's page showed ("" when none was posted: refused)."""
    return request.form.get("fingerprint") or ""


def _refusal_message(exc: AlertError) -> str:
    # A message changed since the page was drawn: say so plainly, nothing was sent.
    return t("admin.msg.flash.changed") if exc.code == "version_changed" else error_text(exc)


def _sent_message(counts: dict[str, int]) -> str:
    parts = ", ".join(f"{t('admin.msg.channel.' + c)}: {number(n)}" for c, n in counts.items())
    return t("admin.msg.flash.sent", counts=parts or "0")


def _act(alert_id: int, step: Callable[[StaffUser, Alert], Any], done: str):  # noqa: ANN202
    """Run one approval step; flash its refusal, or `done`; back to the message."""
    alert = get_alert(alert_id)
    try:
        step(current_user(), alert)
    except AlertError as exc:
        db.session.rollback()
        flash(error_text(exc), "error")
    else:
        flash(t(done), "ok")
    return to_show(alert_id)


@bp.post("/messages/<int:alert_id>/submit")
@login_required()
def submit(alert_id: int):  # noqa: ANN201
    return _act(alert_id, approval.submit, "admin.msg.flash.submitted")


@bp.post("/messages/<int:alert_id>/approve")
@login_required()
def approve(alert_id: int):  # noqa: ANN201
    alert = get_alert(alert_id)
    night = request.form.get("quiet_reason")  # the "send now despite the quiet hours" form
    try:
        counts = approval.approve(current_user(), alert, seen=_seen(), quiet_reason=night)
    except AlertError as exc:
        db.session.rollback()
        if exc.field == "quiet_reason":
            return show_page(get_alert(alert_id), Errors.of(exc), reason=night or "", status=400)
        flash(_refusal_message(exc), "error")
        return to_show(alert_id)
    if counts is None:
        flash(t("admin.msg.flash.scheduled", when=local_time(alert.send_at)), "ok")
    elif (held := quiet.held_until(alert, utcnow())) is not None:
        flash(t("admin.quiet.flash", count=number(sum(counts.values())), when=local_time(held)), "warning")
    else:
        flash(_sent_message(counts), "ok")
    return to_show(alert_id)


@bp.post("/messages/<int:alert_id>/break-glass")
@login_required()
def break_glass(alert_id: int):  # noqa: ANN201
    alert = get_alert(alert_id)
    reason = request.form.get("reason", "")
    try:
        counts = approval.break_glass(current_user(), alert, reason, seen=_seen())
    except AlertError as exc:
        db.session.rollback()
        if exc.field == "reason":
            return show_page(get_alert(alert_id), Errors.of(exc), reason=reason, status=400)
        flash(_refusal_message(exc), "error")
        return to_show(alert_id)
    flash(_sent_message(counts), "ok")
    return to_show(alert_id)


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
    alert = get_alert(alert_id)
    try:
        approval.delete_draft(current_user(), alert)
    except AlertError as exc:
        db.session.rollback()
        flash(error_text(exc), "error")
        return to_show(alert_id)
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
    user = current_user()
    rows = [(a, approval.can_approve(user, a)) for a in waiting]
    return render_template("admin/messages/queue.html", rows=rows)


@bp.get("/messages")
@login_required()
def messages():  # noqa: ANN201
    status = request.args.get("status", "")
    page = max(1, request.args.get("page", 1, type=int) or 1)
    query = select(Alert).where(Alert.source != ROLLCALL)  # roll-calls have their own list
    if status in STATUSES:
        query = query.where(Alert.status == status)
    else:
        status = ""
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    alerts = db.session.scalars(
        query.order_by(Alert.created_at.desc(), Alert.id.desc()).offset((page - 1) * PER_PAGE).limit(PER_PAGE)
    ).all()
    counts = dict(db.session.execute(select(Alert.status, func.count()).where(Alert.source != ROLLCALL)
                                     .group_by(Alert.status)).all())
    return render_template("admin/messages/list.html", alerts=alerts, status=status, page=page,
                           pages=max(1, math.ceil(total / PER_PAGE)), total=total, counts=counts)
