"""The public page of every published alert: the full text a shortened SMS links to."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from sqlalchemy import select

from alerts.models import AWAITING, DRAFT, REJECTED, SCHEDULED, Alert

NOT_PUBLIC = (DRAFT, AWAITING, SCHEDULED, REJECTED)
from db import db
from municipality import CATEGORIES

bp = Blueprint("alerts", __name__)


@bp.get("/alerts/<int:alert_id>")
def show(alert_id: int):  # noqa: ANN201
    alert = db.session.get(Alert, alert_id)
    if alert is None or alert.status in NOT_PUBLIC:
        abort(404)
    newer = db.session.scalar(select(Alert).where(Alert.parent_id == alert.id, Alert.status.not_in(NOT_PUBLIC)).order_by(Alert.id.desc()).limit(1))
    return render_template("alerts/alert.html", alert=alert, newer=newer, category=CATEGORIES[alert.category])
