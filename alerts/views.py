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
    # Only what went out: a draft or an unapproved feed alert that later expired stays private.
    if alert is None or alert.status in NOT_PUBLIC or alert.published_at is None:
        abort(404)
    newer = db.session.scalar(select(Alert).where(Alert.parent_id == alert.id, Alert.status.not_in(NOT_PUBLIC), Alert.published_at.is_not(None)).order_by(Alert.id.desc()).limit(1))
    return render_template("alerts/alert.html", alert=alert, newer=newer, category=CATEGORIES[alert.category])


@bp.get("/cap/<int:alert_id>.xml")
def cap_document(alert_id: int):  # noqa: ANN201
    """The CAP 1.2 document of one published message version (alerts/cap.py)."""
    from flask import Response

    from alerts import cap

    alert = db.session.get(Alert, alert_id)
    if alert is None or alert.status in NOT_PUBLIC or alert.published_at is None:
        abort(404)
    response = Response(cap.document(alert), content_type=cap.CONTENT_TYPE)
    # A version never changes once published (its updates are new documents): cacheable.
    response.cache_control.public = True
    response.cache_control.max_age = 300
    return response
