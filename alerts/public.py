"""What the public sees of the messages, as data: the list behind GET /api/v1/alerts.

Only what went out (published, never a draft or an unapproved feed alert) and never an
exercise. "Active" is what is in force (alerts/in_force.py); otherwise the latest published.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import current_app
from sqlalchemy import select

from alerts import cap
from alerts.in_force import current, severity
from alerts.models import Alert
from rollcall.models import SOURCE as ROLLCALL
from db import db

LATEST = 50


def went_out() -> tuple:
    """The WHERE of every public list: published (never a draft or an unapproved feed alert),
    not an exercise, and to everyone (a message to a group, e.g. the OSP, is theirs; a
    roll-call's question is its members')."""
    return (Alert.published_at.is_not(None), Alert.exercise.is_(False), Alert.groups.is_(None),
            Alert.source != ROLLCALL)


def alerts(*, active: bool, category: str | None = None) -> list[Alert]:
    if active:
        found = current().in_force
        return [a for a in found if category is None or a.category == category]
    query = select(Alert).where(*went_out())
    if category is not None:
        query = query.where(Alert.category == category)
    return list(db.session.scalars(query.order_by(Alert.published_at.desc(), Alert.id.desc()).limit(LATEST)))


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).replace(microsecond=0).isoformat()


def as_json(found: list[Alert], lang: str) -> dict[str, Any]:
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    suffix = cap.lang_suffix(lang)
    return {"language": lang, "alerts": [{
        "id": a.id, "kind": a.kind, "status": a.status, "category": a.category, "level": a.level,
        "severity": severity(a), "title": a.title(lang), "text": a.text(lang),
        "language": lang if (a.texts.get(lang) or "").strip() else "pl",
        "areas": a.areas, "starts_at": _time(a.starts_at), "expires_at": _time(a.expires_at),
        "published_at": _time(a.published_at), "replaces": a.parent_id,
        "url": f"{base}/alerts/{a.id}{suffix}", "cap_url": cap.cap_url(a),
    } for a in found]}
