"""Who did not confirm a call: the list a sołtys walks round with, on screen and as CSV.

Everyone a message called who has not pressed 1 (voicemail, no answer, busy, answered
without a key, still being called), by village, with the last outcome and the number of
calls. Numbers in full for approvers and admins, masked for editors (as on a resident's
page); every view and export is in the audit log.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request
from sqlalchemy import select

from admin import add_error_pages
from admin.message_helpers import get_alert
from admin.people import _csv_cell, shown_phone
from alerts.call_outcome import calls_made
from alerts.figures import CALL_ORDER, not_confirmed as not_confirmed_query
from alerts.models import Alert
from db import db
from i18n import t
from staff import audit
from staff.auth import current_staff, login_required
from subscribers.models import SubscriberArea

bp = Blueprint("admin_calls", __name__, url_prefix="/admin/messages")
add_error_pages(bp)


def _rows(alert: Alert, area: str | None) -> list[dict[str, Any]]:
    m = current_app.extensions["municipality"]
    found = db.session.execute(not_confirmed_query(alert.id)).all()
    areas: dict[int, list[str]] = {}
    ids = [sid for _d, _p, sid in found if sid is not None]
    if ids:
        for sid, code in db.session.execute(select(SubscriberArea.subscriber_id, SubscriberArea.area)
                                            .where(SubscriberArea.subscriber_id.in_(ids))):
            areas.setdefault(sid, []).append(code)
    staff = current_staff()
    made = calls_made([delivery.id for delivery, _p, _s in found])
    rows = []
    for delivery, phone, sid in found:
        codes = sorted(areas.get(sid, []))
        if alert.areas is not None:
            codes = [c for c in codes if c in alert.areas] or codes
        if area and area not in codes:
            continue
        rows.append({"phone": shown_phone(phone, staff) if phone else t("recipients.erased"),
                     "areas": ", ".join(m.area(c).name if m.area(c) else c for c in codes),
                     "outcome": delivery.outcome if delivery.outcome in CALL_ORDER else "calling",
                     "attempts": made.get(delivery.id, 0), "status": delivery.status})
    return rows


def _audited(alert_id: int, action: str) -> tuple[Alert, str | None]:
    """The alert (or 404) and the village asked for, with the look written to the audit log."""
    alert = get_alert(alert_id)
    staff = current_staff()
    audit.record(action, staff=staff, target=f"alert:{alert.id}", full_numbers=staff.can("approver"))
    return alert, request.args.get("area") or None


@bp.get("/<int:alert_id>/not-confirmed")
@login_required("editor")
def not_confirmed(alert_id: int) -> str:
    alert, area = _audited(alert_id, "calls_not_confirmed_viewed")
    return render_template("admin/messages/not_confirmed.html", alert=alert, rows=_rows(alert, area), area=area)


@bp.get("/<int:alert_id>/not-confirmed.csv")
@login_required("editor")
def not_confirmed_csv(alert_id: int) -> Response:
    alert, area = _audited(alert_id, "calls_not_confirmed_exported")
    rows = _rows(alert, area)

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        yield "\ufeff"  # so a spreadsheet reads Polish letters as UTF-8
        writer.writerow([t(f"admin.msg.calls.col.{c}") for c in ("phone", "areas", "outcome", "attempts")])
        for row in rows:
            writer.writerow([_csv_cell(v) for v in (row["phone"], row["areas"],
                                                    t(f"admin.msg.calls.outcome.{row['outcome']}"), row["attempts"])])
        yield buffer.getvalue()

    return Response(lines(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="syrena-bez-potwierdzenia-{alert.id}.csv"'})
