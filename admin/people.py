"""People in the admin: residents (counts, search, one resident's page and the GDPR actions)
and the audit log; the staff accounts screen is admin/accounts.py, on this blueprint.

Phone numbers are shown masked to editors and in full to approvers and admins; a resident's
page shown with the full number is written to the audit log, like every action here.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from flask import (Blueprint, Response, abort, current_app, flash, redirect, render_template, request,
                   stream_with_context, url_for)
from markupsafe import Markup, escape
from sqlalchemy import Select, distinct, func, select
from werkzeug.wrappers import Response as BaseResponse

from admin.charts import bar_chart, line_chart
from admin import add_error_pages, audit_view, delivery_history
from alerts.models import Delivery
from db import db, utcnow
from i18n import current_language, day_month, t
from municipality import CATEGORIES
from staff import audit
from staff.audit import AuditEvent
from staff.auth import current_staff, login_required
from staff.models import StaffUser
from subscribers import call_choice, erasure, service
from subscribers.errors import SubscriptionError
from subscribers.models import (ACTIVE, DEACTIVATED, OPTED_OUT, PENDING, ConsentEvent, PushSubscription,
                                Subscriber, SubscriberArea, SubscriberCategory)
from subscribers.phone import mask_phone, normalize_phone

bp = Blueprint("admin_people", __name__, url_prefix="/admin")

STATUSES = (ACTIVE, PENDING, OPTED_OUT, DEACTIVATED)
GROWTH_DAYS = 90
AUDIT_PAGE_SIZE = 50
LIST_LIMIT = 50
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


add_error_pages(bp)


def _staff() -> StaffUser:
    user = current_staff()
    assert user is not None  # login_required ran first
    return user


def shown_phone(phone: str | None, viewer: StaffUser | None = None) -> str:
    """The number as this staff member may see it: in full from approver up, masked below."""
    if not phone:
        return ""
    viewer = viewer or current_staff()
    return phone if viewer is not None and viewer.can("approver") else mask_phone(phone)


@bp.app_template_global("admin_phone")
def _admin_phone(phone: str | None) -> str:
    return shown_phone(phone)


def _origin() -> service.Origin:
    return service.Origin("staff", request.remote_addr, request.headers.get("User-Agent"))


def _get_subscriber(subscriber_id: int) -> Subscriber:
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None:
        abort(404)
    return subscriber


def label(prefix: str, code: str | None) -> str:
    """A translated label for a code, or the code itself when there is none (other modules'
    audit actions, statuses added later)."""
    if not code:
        return ""
    key = f"{prefix}.{code}"
    try:
        text = t(key)
    except KeyError:
        return code
    return code if text == key else text


@bp.app_template_global("breakable_email")
def breakable_email(email: str | None) -> Markup:
    """An e-mail address that may wrap before "@" and after dots on a narrow phone screen."""
    if not email:
        return Markup("")
    return escape(email).replace("@", Markup("<wbr>@")).replace(".", Markup(".<wbr>"))


@bp.app_template_global("admin_label")
def _admin_label(prefix: str, code: str | None) -> str:
    return label(prefix, code)


# --- residents: overview ------------------------------------------------------------------

def _count_rows(query: Select) -> dict[str, int]:
    return {key: count for key, count in db.session.execute(query).all()}


def resident_counts() -> dict[str, Any]:
    """Active residents per area, per category and per channel, and everyone per status."""
    m = current_app.extensions["municipality"]
    lang = current_language()
    active = Subscriber.status == ACTIVE
    by_status = _count_rows(select(Subscriber.status, func.count()).group_by(Subscriber.status))
    by_area = _count_rows(select(SubscriberArea.area, func.count())
                          .join(Subscriber, Subscriber.id == SubscriberArea.subscriber_id)
                          .where(active).group_by(SubscriberArea.area))
    by_category = _count_rows(select(SubscriberCategory.category, func.count())
                              .join(Subscriber, Subscriber.id == SubscriberCategory.subscriber_id)
                              .where(active).group_by(SubscriberCategory.category))
    sms = db.session.scalar(select(func.count()).select_from(Subscriber)
                            .where(active, Subscriber.phone.is_not(None), Subscriber.voice_only.is_(False))) or 0
    voice = db.session.scalar(select(func.count()).select_from(Subscriber)
                              .where(active, Subscriber.phone.is_not(None), Subscriber.voice.is_(True))) or 0
    push = db.session.scalar(select(func.count(distinct(PushSubscription.subscriber_id)))
                             .join(Subscriber, Subscriber.id == PushSubscription.subscriber_id)
                             .where(active)) or 0
    areas = [(a.name, by_area.pop(a.code, 0)) for a in m.areas]
    areas += sorted(by_area.items())  # codes no longer in the profile, still on residents
    categories = [(CATEGORIES[c].name(lang), by_category.pop(c, 0)) for c in m.categories]
    categories += [(CATEGORIES[c].name(lang) if c in CATEGORIES else c, n)
                   for c, n in sorted(by_category.items())]
    channels = [(t("admin_people.channel.sms"), sms), (t("admin_people.channel.push"), push)]
    channels_short = [(t("admin_people.channel.sms"), sms), (t("admin_people.channel.push_short"), push)]
    if voice or current_app.extensions.get("voice") is not None:
        channels.append((t("admin_people.channel.voice"), voice))
        channels_short.append((t("admin_people.channel.voice"), voice))
    return {"by_status": [(s, by_status.get(s, 0)) for s in STATUSES],
            "total": sum(by_status.values()), "active": by_status.get(ACTIVE, 0),
            "areas": areas, "categories": categories, "channels": channels,
            "channels_short": channels_short}


def _hour_bucket() -> Any:
    if db.engine.dialect.name == "postgresql":
        return func.date_trunc("hour", Subscriber.verified_at)
    return func.strftime("%Y-%m-%d %H:00:00", Subscriber.verified_at)


def verified_per_day(days: int = GROWTH_DAYS) -> list[tuple[date, int]]:
    """Residents verified per day (the gmina's calendar days), the last `days` days, zeros included.

    The database counts per UTC hour (a few thousand rows at most, whatever the population);
    hours are then put on local days, so a day means midnight to midnight in the gmina."""
    zone = ZoneInfo(current_app.extensions["municipality"].timezone)
    today = utcnow().astimezone(zone).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time(0), tzinfo=zone).astimezone(timezone.utc)
    bucket = _hour_bucket()
    rows = db.session.execute(select(bucket, func.count()).where(Subscriber.verified_at >= since)
                              .group_by(bucket)).all()
    per_day = {first + timedelta(days=i): 0 for i in range(days)}
    for hour, count in rows:
        if isinstance(hour, str):
            hour = datetime.strptime(hour, "%Y-%m-%d %H:%M:%S")
        local_day = hour.replace(tzinfo=timezone.utc).astimezone(zone).date()
        if local_day in per_day:
            per_day[local_day] += count
    return sorted(per_day.items())


@bp.get("/subscribers")
@login_required("editor")
def subscribers() -> Any:
    user = _staff()
    counts = resident_counts()
    growth = verified_per_day()
    charts = {
        "areas": bar_chart(counts["areas"], title=t("admin_people.subscribers.per_area")),
        "categories": bar_chart(counts["categories"], title=t("admin_people.subscribers.per_category")),
        "channels": bar_chart(counts["channels_short"], title=t("admin_people.subscribers.per_channel")),
        "growth": line_chart([(day_month(d), n) for d, n in growth],
                             title=t("admin_people.subscribers.growth", days=GROWTH_DAYS)),
    }

    query = (request.args.get("phone") or "").strip()
    search_error = None
    found: Subscriber | None = None
    if query:
        try:
            phone = normalize_phone(query, current_app.config["ALLOWED_PHONE_REGIONS"])
        except SubscriptionError as exc:
            search_error = t(f"error.{exc.code}", **exc.params)
        else:
            found = db.session.scalar(select(Subscriber).where(Subscriber.phone == phone))
            audit.record("subscriber_search", staff=user, target=f"subscriber:{found.id}" if found else None,
                         found=found is not None)

    deactivated = db.session.scalars(select(Subscriber).where(Subscriber.status == DEACTIVATED)
                                     .order_by(Subscriber.id.desc()).limit(LIST_LIMIT)).all()
    test_group = db.session.scalars(select(Subscriber).where(Subscriber.test_group.is_(True))
                                    .order_by(Subscriber.id).limit(LIST_LIMIT)).all()
    status = 400 if search_error else 200
    return render_template("admin/people/subscribers.html", counts=counts, charts=charts,
                           growth_total=sum(n for _, n in growth), growth_days=GROWTH_DAYS,
                           query=query, search_error=search_error, searched=bool(query) and not search_error,
                           found=found, deactivated=deactivated, test_group=test_group), status


# --- residents: one resident --------------------------------------------------------------

def _render_subscriber(subscriber: Subscriber, errors: dict[str, str] | None = None,
                       status: int = 200) -> Any:
    user = _staff()
    full = user.can("approver") and bool(subscriber.phone)
    if full:
        audit.record("subscriber_viewed", staff=user, target=f"subscriber:{subscriber.id}")
    m = current_app.extensions["municipality"]
    events = db.session.scalars(select(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber.id)
                                .order_by(ConsentEvent.id.desc())).all()
    push_count = db.session.scalar(select(func.count()).select_from(PushSubscription)
                                   .where(PushSubscription.subscriber_id == subscriber.id)) or 0
    levels = subscriber.category_levels()
    history, history_total = delivery_history.history(subscriber.id)
    lang = current_language()
    choices = [(CATEGORIES[c].name(lang) if c in CATEGORIES else c,
                levels[c] if c in CATEGORIES and CATEGORIES[c].hazard else None) for c in sorted(
                    levels, key=lambda c: m.categories.index(c) if c in m.categories else 99)]
    areas = [(m.area(a).name if m.area(a) else a) for a in subscriber.area_codes()]
    body = render_template("admin/people/subscriber.html", subscriber=subscriber, events=events,
                           phone=shown_phone(subscriber.phone, user), full_phone=full, choices=choices,
                           areas=areas, history=history, history_total=history_total, push_count=push_count,
                           errors=errors or {}, calls=call_choice.calls_detail(service.current_preferences(subscriber).calls)
                           .removeprefix("calls: "))
    return (body, status) if status != 200 else body


@bp.get("/subscribers/<int:subscriber_id>")
@login_required("editor")
def subscriber(subscriber_id: int) -> Any:
    return _render_subscriber(_get_subscriber(subscriber_id))


@bp.post("/subscribers/<int:subscriber_id>/opt-out")
@login_required("approver")  # stopping a resident's messages is more than writing drafts
def opt_out(subscriber_id: int) -> Any:
    """Stop every message to a resident who asked the office (by phone, letter, in person)."""
    subscriber = _get_subscriber(subscriber_id)
    reason = " ".join((request.form.get("reason") or "").split())[:200]
    if not reason:
        return _render_subscriber(subscriber, {"reason": t("admin_people.subscriber.reason_required")}, 400)
    # The reason (free text about a person) goes only into the consent ledger, which the
    # resident's erasure deletes; the append-only audit log keeps that there was one.
    audit.record("subscriber_opted_out", staff=_staff(), target=f"subscriber:{subscriber.id}", commit=False,
                 reason_given=True)
    if service.opt_out(subscriber, _origin(), detail=reason):  # commits the ledger and the audit row
        flash(t("admin_people.flash.opted_out"), "info")
    else:
        db.session.rollback()
        flash(t("admin_people.flash.already_out"), "info")
    return redirect(url_for("admin_people.subscriber", subscriber_id=subscriber.id))


@bp.post("/subscribers/<int:subscriber_id>/export")
@login_required("approver")
def export(subscriber_id: int) -> Response:
    """The resident's data as JSON (GDPR access request made at the office). Approver and up:
    the file holds the full number."""
    subscriber = _get_subscriber(subscriber_id)
    data = service.export_data(subscriber)
    audit.record("subscriber_exported", staff=_staff(), target=f"subscriber:{subscriber.id}")
    response = Response(json.dumps(data, ensure_ascii=False, indent=2), mimetype="application/json")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="syrena-mieszkaniec-{subscriber.id}.json"')
    return response


@bp.post("/subscribers/<int:subscriber_id>/erase")
@login_required("admin")
def erase(subscriber_id: int) -> Any:
    """Delete a resident and everything tied to them (GDPR erasure). Admins only."""
    subscriber = _get_subscriber(subscriber_id)
    if request.form.get("confirm") != "yes":
        errors = {"confirm": t("admin_people.subscriber.erase_confirm_required")}
        return _render_subscriber(subscriber, errors, 400)
    # One commit for both: the erasure and the audit row (which names no number).
    audit.record("subscriber_erased", staff=_staff(), target=f"subscriber:{subscriber.id}", commit=False)
    outcome = erasure.erase(subscriber)
    flash(t("admin_people.flash.erased"), "info")
    flash(t("admin_people.flash.erased_provider", deleted=outcome.deleted, in_flight=outcome.in_flight,
            failed=outcome.failed, queued=outcome.queued), "warning" if outcome.pending else "info")
    if not outcome.listed:
        flash(t("admin_people.flash.erased_not_listed"), "warning")
    return redirect(url_for("admin_people.subscribers"))


@bp.post("/subscribers/<int:subscriber_id>/test-group")
@login_required("approver")
def test_group(subscriber_id: int) -> BaseResponse:
    """Add or remove a staff phone from the group that receives exercise messages."""
    subscriber = _get_subscriber(subscriber_id)
    member = request.form.get("member") == "1"
    if subscriber.test_group != member:
        subscriber.test_group = member
        audit.record("test_group_changed", staff=_staff(), target=f"subscriber:{subscriber.id}",
                     commit=False, member=member)
        db.session.commit()
    flash(t("admin_people.flash.test_group_on" if member else "admin_people.flash.test_group_off"), "info")
    return redirect(url_for("admin_people.subscriber", subscriber_id=subscriber.id))


# --- audit log ----------------------------------------------------------------------------

def _audit_filters() -> dict[str, Any]:
    return {"action": (request.args.get("action") or "").strip(),
            "staff": (request.args.get("staff") or "").strip(),
            "flagged": request.args.get("flagged") == "1"}


def _audit_query(filters: dict[str, Any]) -> Select:
    query = select(AuditEvent)
    if filters["action"]:
        query = query.where(AuditEvent.action == filters["action"])
    if filters["staff"]:
        query = query.where(AuditEvent.staff_email == filters["staff"])
    if filters["flagged"]:
        query = query.where(AuditEvent.flagged.is_(True))
    return query


@bp.app_context_processor
def _audit_helpers() -> dict[str, Any]:
    return {"audit_subject": audit_view.subject, "audit_details": audit_view.details,
            "audit_action": audit_view.action}


@bp.get("/audit")
@login_required("admin")
def audit_log() -> str:
    filters = _audit_filters()
    query = _audit_query(filters)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, math.ceil(total / AUDIT_PAGE_SIZE))
    page = min(max(1, request.args.get("page", 1, type=int) or 1), pages)
    events = db.session.scalars(query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
                                .offset((page - 1) * AUDIT_PAGE_SIZE).limit(AUDIT_PAGE_SIZE)).all()
    actions = db.session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)).all()
    emails = db.session.scalars(select(AuditEvent.staff_email).distinct()
                                .where(AuditEvent.staff_email.is_not(None))
                                .order_by(AuditEvent.staff_email)).all()
    link_args = {k: v for k, v in (("action", filters["action"]), ("staff", filters["staff"]),
                                   ("flagged", "1" if filters["flagged"] else "")) if v}
    return render_template("admin/people/audit.html", events=events, filters=filters, actions=actions,
                           emails=emails, page=page, pages=pages, total=total, link_args=link_args)


def _csv_cell(value: Any) -> str:
    """A cell a spreadsheet will not run: text starting with = + - @ (or a tab or CR) is
    prefixed with an apostrophe (CSV formula injection; e-mails typed at the login form land here)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@bp.get("/audit.csv")
@login_required("admin")
def audit_export() -> Response:
    filters = _audit_filters()
    audit.record("audit_exported", staff=_staff(), action_filter=filters["action"] or None,
                 staff_filter=filters["staff"] or None, flagged_only=filters["flagged"])
    zone = ZoneInfo(current_app.extensions["municipality"].timezone)
    query = _audit_query(filters).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        yield "\ufeff"  # so a spreadsheet reads Polish letters as UTF-8
        writer.writerow(["id", "at_utc", "at_local", "staff", "action", "target", "flagged", "ip",
                         "user_agent", "detail"])
        for event in db.session.scalars(query.execution_options(yield_per=500)):
            writer.writerow([_csv_cell(v) for v in (
                event.id, event.at.isoformat(), event.at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                event.staff_email or event.actor, event.action, event.target, "yes" if event.flagged else "no", event.ip,
                event.user_agent, json.dumps(event.detail or {}, ensure_ascii=False, sort_keys=True))])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        if buffer.getvalue():
            yield buffer.getvalue()

    stamp = utcnow().astimezone(zone).strftime("%Y%m%d-%H%M")
    response = Response(stream_with_context(rows()), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="syrena-dziennik-{stamp}.csv"'
    return response


# The staff accounts screen lives in admin/accounts.py, on this blueprint.
from admin import accounts  # noqa: E402,F401
