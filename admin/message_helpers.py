"""What the staff message pages share: the message templates, the form errors, and small
helpers (the gmina, its clock, the signed-in staff member, an alert or 404, area names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import abort, current_app, redirect, url_for
from sqlalchemy import select

from alerts.models import AWAITING, CANCELLED, DRAFT, EXPIRED, PUBLISHED, REJECTED, SCHEDULED, UPDATED, Alert
from alerts.publish import AlertError, fingerprint
from rollcall.models import SOURCE as ROLLCALL
from db import db
from i18n import current_language, t
from staff.auth import current_staff
from staff.models import StaffUser

STATUSES = (DRAFT, AWAITING, SCHEDULED, PUBLISHED, UPDATED, CANCELLED, EXPIRED, REJECTED)
EDITABLE = (DRAFT, AWAITING)
LEVELS = (1, 2, 3)
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


def offered_templates() -> list[MessageTemplate]:
    offered = municipality().categories
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
        message = error_text(exc)
        if exc.field:
            errors.fields[exc.field] = message
        else:
            errors.general.append(message)
        return errors


def error_text(exc: AlertError) -> str:
    return t(f"error.{exc.code}", **exc.params)


def municipality():  # noqa: ANN202
    return current_app.extensions["municipality"]


def zone() -> ZoneInfo:
    return ZoneInfo(municipality().timezone)


def current_user() -> StaffUser:
    user = current_staff()
    assert user is not None  # login_required ran first
    return user


def get_alert(alert_id: int) -> Alert:
    """The alert (or 404). A roll-call's question is followed, re-sent and closed on the
    roll-call's page, never edited or withdrawn as a message: every message view goes there."""
    alert = db.session.get(Alert, alert_id)
    if alert is None:
        abort(404)
    if alert.source == ROLLCALL:
        abort(redirect(url_for("admin_rollcall.show", roll_call_id=(alert.meta or {}).get("roll_call")), code=303))
    return alert


def to_show(alert_id: int, anchor: str | None = None):  # noqa: ANN202
    return redirect(url_for("admin.show", alert_id=alert_id, _anchor=anchor), code=303)


def local_input(value: datetime | None) -> str:
    """An aware datetime as a datetime-local value in the gmina's time."""
    return value.astimezone(zone()).strftime("%Y-%m-%dT%H:%M") if value else ""


def area_name(code: str) -> str:
    area = municipality().area(code)
    return area.name if area else code


def areas_text(alert: Alert) -> str:
    if alert.areas is None:
        return t("alert.whole_gmina")
    return ", ".join(area_name(code) for code in alert.areas)


def shown_fingerprint(alert: Alert) -> str:
    """What the approver sees: posted back with the approval, which is refused unless it is
    still the message's current version (alerts/approval.py)."""
    return fingerprint(alert)


def staff_emails(ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(db.session.execute(select(StaffUser.id, StaffUser.email).where(StaffUser.id.in_(ids))).all())


def validity_defaults() -> str:
    """'Ostrzeżenia meteorologiczne 24 h, Komunikaty urzędowe 7 dni, ...' for the compose hint."""
    m = municipality()
    lang = current_language()
    parts = []
    for category in m.offered_categories():
        hours = int(m.validity(category.code).total_seconds() // 3600)
        span = t("validity.days", days=hours // 24) if hours % 24 == 0 and hours >= 48 else t("validity.hours", hours=hours)
        parts.append(f"{category.name(lang)} {span}")
    return ", ".join(parts)
