"""Quiet hours as staff see them: the page, the button, the flash and the message page say
when a routine message will go out, and an approver may send one at night on purpose, with a
reason the audit log keeps (alerts/quiet.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from alerts.dispatcher import Dispatcher
from alerts.models import Delivery
from db import db
from population import seed
from staff.audit import AuditEvent
from tests.test_admin_messages import compose, fingerprint, make_staff, page, signed_in

ZONE = ZoneInfo("Europe/Warsaw")


def quiet_now() -> tuple[str, str]:
    """A QUIET_HOURS setting that holds now, and when it ends (HH:MM, Warsaw time)."""
    now = datetime.now(ZONE)
    start, end = now - timedelta(hours=1), now + timedelta(hours=2)
    return f"{start:%H:%M}-{end:%H:%M}", f"{end:%H:%M}"


@pytest.fixture
def night(make_app):  # noqa: ANN001, ANN201
    setting, ends = quiet_now()
    app = make_app(QUIET_HOURS=setting, SMS_RATE_PER_SECOND=0)
    seed(5, categories={"official": 1, "weather": 1}, areas=["KOZY"])
    return app, ends


def sent_now(app) -> int:  # noqa: ANN001
    dispatcher = Dispatcher(app)
    try:
        return dispatcher.run_once()
    finally:
        dispatcher.close()


def official(app):  # noqa: ANN001, ANN201
    """An office notice to the whole gmina, written and submitted by an editor (a second
    person approves it)."""
    editor = signed_in(app, make_staff("editor"))
    message = compose(editor, category="official", level="", title_pl="Zebranie wiejskie",
                      text_pl="Zapraszamy w piątek o 18:00 do świetlicy.")
    editor.post(f"/admin/messages/{message.id}/submit")
    return message


def test_a_routine_message_in_the_quiet_hours_says_when_it_will_go_out_everywhere(night):
    app, ends = night
    message = official(app)
    approver = signed_in(app, make_staff("approver"))
    html = page(approver, f"/admin/messages/{message.id}")
    assert 'id="quiet-hours"' in html and f"wyjdzie dopiero o" in html and f"{ends}.</p>" in html
    assert f"Zatwierdź – wyjdzie o" in html and "Zatwierdź i WYŚLIJ TERAZ" not in html
    response = approver.post(f"/admin/messages/{message.id}/approve",
                             data={"fingerprint": fingerprint(approver, message)}, follow_redirects=True)
    after = response.get_data(as_text=True)
    assert "Trwa cisza nocna: 5 wiadomości czeka i wyjdzie o" in after, after[:3000]
    assert "Czeka na koniec ciszy nocnej: 5 wiadomości wyjdzie o" in after
    assert sent_now(app) == 0, "held by the quiet hours"


def test_a_warning_is_not_held_and_says_nothing_about_quiet_hours(night):
    app, _ = night
    approver = signed_in(app, make_staff("approver"))
    storm = compose(approver, category="weather", level="2", areas=["KOZY"], target="areas")
    assert 'id="quiet-hours"' not in page(approver, f"/admin/messages/{storm.id}")


def test_an_urgent_routine_message_goes_out_at_night_with_a_reason_in_the_audit_log(night):
    app, _ = night
    message = official(app)
    approver = signed_in(app, make_staff("approver"))
    short = approver.post(f"/admin/messages/{message.id}/approve",
                          data={"fingerprint": fingerprint(approver, message), "quiet_reason": "pilne"})
    assert short.status_code == 400 and "Podaj powód wysyłki w ciszy nocnej" in short.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0, "nothing sent"
    done = approver.post(f"/admin/messages/{message.id}/approve",
                         data={"fingerprint": fingerprint(approver, message),
                               "quiet_reason": "Awaria wodociągu, woda wraca o 6:00"}, follow_redirects=True)
    assert "wysłany w ciszy nocnej: Awaria wodociągu" in done.get_data(as_text=True)
    assert sent_now(app) == 5
    [row] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "quiet_hours_override")).all()
    assert row.flagged and row.detail == {"reason": "Awaria wodociągu, woda wraca o 6:00"}
