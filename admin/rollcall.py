"""Staff pages of roll-calls (rollcall/ does the work): start one (approvers), follow its
tally live, record an answer heard by phone or at the door, re-send to those who have not
answered, export and print the lists for OSP and PSP, and close it (approvers).

Numbers are shown in full to approvers and admins, masked to editors (as on a resident's
page). Opening a roll-call's page, its export and its printout are views of personal data,
in the audit log; the page's own refresh (every few seconds while it is open) is not
recorded again.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from admin import add_error_pages
from admin.people import _csv_cell
from alerts.sms_text import count_segments
from db import db, utcnow
from i18n import local_time, t
from rollcall import service, tally
from rollcall.models import HOW, RollCall, RollCallMember
from rollcall.text import default_question, sms_body
from staff import audit
from staff.auth import current_staff, login_required
from subscribers.errors import SubscriptionError
from subscribers.models import Subscriber
from subscribers.phone import normalize_phone

bp = Blueprint("admin_rollcall", __name__, url_prefix="/admin/rollcalls")
add_error_pages(bp)


def _get(roll_call_id: int) -> RollCall:
    roll_call = db.session.get(RollCall, roll_call_id)
    if roll_call is None:
        abort(404)
    return roll_call


def _target(form: Any) -> tuple[list[str] | None, list[str] | None]:
    areas = sorted(set(form.getlist("areas"))) or None
    groups = sorted(set(form.getlist("groups"))) or None
    return areas, groups


def _resend_after(raw: str | None) -> int | None:
    try:
        value = int(raw or 0)
    except ValueError:
        raise service.RollCallError("resend_unknown") from None
    return value or None


def _list_page(values: dict[str, Any], preview: dict[str, Any] | None = None, error: str | None = None,
               status: int = 200) -> Any:
    roll_calls = db.session.scalars(select(RollCall).order_by(RollCall.started_at.desc()).limit(50)).all()
    body = render_template("admin/rollcall/list.html", roll_calls=roll_calls, values=values, preview=preview,
                           error=error, delays=service.RESEND_DELAYS[1:])
    return body, status


@bp.get("/")
@login_required("editor")
def index() -> Any:
    return _list_page({"question": default_question("pl"), "areas": [], "groups": [], "resend_after": ""})


@bp.post("/preview")
@login_required("approver")
def preview() -> Any:
    """How many residents the roll-call asks, the SMS as they get it, and its cost."""
    values = _values()
    try:
        areas, groups = _target(request.form)
        reach = service.reach(areas, groups)
    except service.RollCallError as exc:
        return _list_page(values, error=exc.code, status=400)
    question = " ".join(values["question"].split())
    if not question or len(question) > service.QUESTION_LIMIT:
        return _list_page(values, error="question_missing" if not question else "question_too_long", status=400)
    body = sms_body(question, "pl", 0, None)
    info = count_segments(body)
    return _list_page(values, preview={"reach": reach, "sms": body, "segments": info.segments,
                                       "cost": _cost(reach * info.segments)})


def _cost(segments: int) -> str:
    from admin.message_page import sms_cost
    from i18n import money

    return money(sms_cost(segments), current_app.config.get("SMS_PRICE_CURRENCY", "PLN"))


def _values() -> dict[str, Any]:
    return {"question": request.form.get("question", ""), "areas": request.form.getlist("areas"),
            "groups": request.form.getlist("groups"), "resend_after": request.form.get("resend_after", "")}


@bp.post("/")
@login_required("approver")
def start() -> Any:
    values = _values()
    try:
        areas, groups = _target(request.form)
        roll_call = service.start(current_staff(), values["question"], areas, groups,
                                  _resend_after(values["resend_after"]))
    except service.RollCallError as exc:
        db.session.rollback()
        return _list_page(values, error=exc.code, status=400)
    flash(t("admin.rollcall.started"), "success")
    return redirect(url_for("admin_rollcall.show", roll_call_id=roll_call.id), code=303)


def _context(roll_call: RollCall) -> dict[str, Any]:
    viewer = current_staff()
    per_area, total = tally.counts(roll_call)
    return {"roll_call": roll_call, "per_area": per_area, "total": total,
            "need_help": tally.need_help(roll_call, viewer), "late": tally.late(roll_call, viewer),
            "last_answer": tally.last_answer_at(roll_call), "list_limit": tally.LIST_LIMIT}


@bp.get("/<int:roll_call_id>")
@login_required("editor")
def show(roll_call_id: int) -> Any:
    roll_call = _get(roll_call_id)
    staff = current_staff()
    audit.record("rollcall_viewed", staff=staff, target=f"rollcall:{roll_call.id}",
                 full_numbers=staff.can("approver"))
    chosen = _chosen_member(roll_call, request.args.get("member"))
    return render_template("admin/rollcall/show.html", **_context(roll_call),
                           not_answered=tally.not_answered(roll_call, staff), how=HOW, chosen=chosen,
                           delays=service.RESEND_DELAYS, values={})


@bp.get("/<int:roll_call_id>/live")
@login_required("editor")
def live(roll_call_id: int) -> str:
    """The tally and the lists that change, for the open page to swap in (static/rollcall.js)."""
    return render_template("admin/rollcall/_live.html", **_context(_get(roll_call_id)))


def _chosen_member(roll_call: RollCall, raw: str | None) -> dict[str, Any] | None:
    if not (raw or "").isdigit() or len(raw) > 18:
        return None
    from admin.people import shown_phone

    found = db.session.execute(select(RollCallMember, Subscriber.phone)
                               .join(Subscriber, Subscriber.id == RollCallMember.subscriber_id)
                               .where(RollCallMember.id == int(raw), RollCallMember.roll_call_id == roll_call.id)).first()
    if found is None:
        return None
    return {"id": found[0].id, "phone": shown_phone(found[1]), "area": tally.area_name(found[0].area)}


def _member_from_form(roll_call: RollCall) -> RollCallMember:
    raw_member = request.form.get("member", "")
    if raw_member.isdigit() and len(raw_member) <= 18:
        member = db.session.scalar(select(RollCallMember).where(
            RollCallMember.id == int(raw_member), RollCallMember.roll_call_id == roll_call.id))
    else:
        try:
            phone = normalize_phone(request.form.get("phone", ""), current_app.config["ALLOWED_PHONE_REGIONS"],
                                    landline=True)
        except SubscriptionError:
            raise service.RollCallError("phone_invalid") from None
        member = db.session.scalar(select(RollCallMember).join(Subscriber, Subscriber.id == RollCallMember.subscriber_id)
                                   .where(RollCallMember.roll_call_id == roll_call.id, Subscriber.phone == phone))
    if member is None:
        raise service.RollCallError("not_a_member")
    return member


@bp.post("/<int:roll_call_id>/answers")
@login_required("editor")
def record(roll_call_id: int) -> Any:
    roll_call = _get(roll_call_id)
    try:
        member = _member_from_form(roll_call)
        recorded = service.record_on_behalf(current_staff(), member, request.form.get("answer", ""),
                                            request.form.get("how", ""), request.form.get("note"))
    except service.RollCallError as exc:
        db.session.rollback()
        flash(t(f"admin.rollcall.error.{exc.code}"), "error")
        return redirect(url_for("admin_rollcall.show", roll_call_id=roll_call.id, _anchor="record"), code=303)
    flash(t("admin.rollcall.recorded_late" if recorded.late else "admin.rollcall.recorded"), "success")
    return redirect(url_for("admin_rollcall.show", roll_call_id=roll_call.id), code=303)


@bp.post("/<int:roll_call_id>/resend")
@login_required("approver")
def resend(roll_call_id: int) -> Any:
    roll_call = _get(roll_call_id)
    try:
        after = int(request.form.get("after", "0"))
        service.resend(current_staff(), roll_call, after)
    except (ValueError, service.RollCallError) as exc:
        db.session.rollback()
        code = getattr(exc, "code", "resend_unknown")
        flash(t(f"admin.rollcall.error.{code}"), "error")
        return redirect(url_for("admin_rollcall.show", roll_call_id=roll_call.id), code=303)
    flash(t("admin.rollcall.resent_now" if after == 0 else "admin.rollcall.resent_later", minutes=after), "success")
    return redirect(url_for("admin_rollcall.show", roll_call_id=roll_call.id), code=303)


@bp.post("/<int:roll_call_id>/close")
@login_required("approver")
def close(roll_call_id: int) -> Any:
    roll_call = _get(roll_call_id)
    if service.close(current_staff(), roll_call):
        flash(t("admin.rollcall.closed_now"), "success")
    else:
        flash(t("admin.rollcall.error.closed"), "error")
    return redirect(url_for("admin_rollcall.show", roll_call_id=roll_call.id), code=303)


def _audited_everyone(roll_call_id: int, action: str) -> tuple[RollCall, list[dict[str, Any]]]:
    roll_call = _get(roll_call_id)
    staff = current_staff()
    audit.record(action, staff=staff, target=f"rollcall:{roll_call.id}", full_numbers=staff.can("approver"))
    return roll_call, tally.everyone(roll_call, staff)


@bp.get("/<int:roll_call_id>/export.csv")
@login_required("editor")
def export(roll_call_id: int) -> Response:
    roll_call, rows = _audited_everyone(roll_call_id, "rollcall_exported")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([t("admin.rollcall.col.state"), t("admin.rollcall.col.phone"), t("admin.rollcall.col.area"),
                     t("admin.rollcall.col.time"), t("admin.rollcall.col.via"), t("admin.rollcall.col.text")])
    for row in rows:
        writer.writerow([_csv_cell(x) for x in (
            _state(row), row["phone"], row["area"], local_time(row["at"]) if row["at"] else "",
            t(f"admin.rollcall.via.{row['via']}") if row["via"] else "", row["text"])])
    name = f"sprawdzenie-{roll_call.id}.csv"
    # A BOM, so a spreadsheet opens Polish letters right.
    return Response("\ufeff" + out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _state(row: dict[str, Any]) -> str:
    if row["answer"]:
        return t(f"admin.rollcall.answer.{row['answer']}")
    return t("admin.rollcall.answer.none" if row["reached"] else "admin.rollcall.answer.undeliverable")


@bp.get("/<int:roll_call_id>/print")
@login_required("editor")
def printout(roll_call_id: int) -> str:
    roll_call, rows = _audited_everyone(roll_call_id, "rollcall_printed")
    per_area, total = tally.counts(roll_call)
    return render_template("admin/rollcall/print.html", roll_call=roll_call, rows=rows, per_area=per_area,
                           total=total, state=_state, now=utcnow())
