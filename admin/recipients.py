"""A message's recipients as a CSV: who got it, through which channel, and when.

For staff who must answer "did everyone in Kozy Dolne get the evacuation SMS?" in a
spreadsheet. Phone numbers are personal data: approvers and admins get them in full (as on
a resident's page), editors masked; every export is in the audit log. Cells that a
spreadsheet would run as a formula are made text (admin.people._csv_cell).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, abort, current_app
from sqlalchemy import select
from zoneinfo import ZoneInfo

from admin import add_error_pages
from admin.delivery_history import delivered_time, receipt_at
from admin.people import _csv_cell, shown_phone
from alerts.figures import BUCKETS
from alerts.models import Alert, Delivery
from db import db
from i18n import t
from staff import audit
from staff.auth import current_staff, login_required
from subscribers.models import Subscriber

bp = Blueprint("admin_recipients", __name__, url_prefix="/admin/messages")
add_error_pages(bp)


@bp.get("/<int:alert_id>/recipients.csv")
@login_required("editor")
def recipients_csv(alert_id: int) -> Response:
    alert = db.session.get(Alert, alert_id)
    if alert is None:
        abort(404)
    staff = current_staff()
    audit.record("recipients_exported", staff=staff, target=f"alert:{alert.id}",
                 full_numbers=staff.can("approver"))
    zone = ZoneInfo(current_app.extensions["municipality"].timezone)
    query = (select(Delivery, Subscriber.phone, Subscriber.language, receipt_at())
             .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
             .where(Delivery.alert_id == alert.id).order_by(Delivery.id))

    def local(value: Any) -> str:
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if value else ""

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        yield "\ufeff"  # so a spreadsheet reads Polish letters as UTF-8
        writer.writerow([t(f"recipients.col.{c}") for c in (
            "delivery", "phone", "language", "channel", "status", "queued", "sent", "delivered", "provider",
            "segments", "error")])
        for delivery, phone, language, receipt in db.session.execute(query.execution_options(yield_per=1000)):
            bucket = BUCKETS.get(delivery.status, delivery.status)
            delivered_at = delivered_time(delivery, receipt)
            writer.writerow([_csv_cell(v) for v in (
                delivery.id, shown_phone(phone, staff) if phone else t("recipients.erased"), language or "",
                delivery.channel, t(f"admin.msg.bucket.{bucket}"), local(delivery.created_at),
                local(delivery.sent_at), local(delivered_at), delivery.provider or "", delivery.segments or "",
                delivery.error or "")])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    filename = f"syrena-odbiorcy-{alert.id}.csv"
    return Response(rows(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
