"""The approval rules and the preview, below the screens: two persons, break glass,
exercise, scheduling, and a preview that equals what is sent."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from alerts import approval
from alerts.dispatcher import Dispatcher
from alerts.preview import preview
from alerts.publish import AlertError, publish_due
from alerts.sms_text import count_segments
from db import db, utcnow
from population import phone_for, seed
from staff.audit import AuditEvent
from staff.models import StaffUser
from subscribers.models import Subscriber


WARSAW = ZoneInfo("Europe/Warsaw")


def person(email: str, role: str) -> StaffUser:
    user = StaffUser(email=email, role=role)
    user.set_password("a-long-enough-password")
    db.session.add(user)
    db.session.commit()
    return user


def form(**fields) -> MultiDict:  # noqa: ANN003
    base = {"category": "official", "title_pl": "Zebranie wiejskie", "text_pl": "Zapraszamy w piątek o 18:00.",
            "target": "all", "channels": "sms", "when": "now"}
    base.update(fields)
    return MultiDict([(k, v) for k, value in base.items() for v in (value if isinstance(value, list) else [value])])


@pytest.mark.parametrize(("category", "hours"), [("official", 168), ("weather", 24), ("hydro", 48)])
def test_a_message_without_an_end_is_in_force_for_its_categorys_default(app, category, hours):
    editor = person("e@kozy.pl", "editor")
    before = utcnow()
    level = "2" if category != "official" else ""  # office notices carry no warning level
    draft = approval.save_draft(editor, approval.draft_from_form(form(category=category, level=level)))
    assert before + timedelta(hours=hours) <= draft.expires_at <= utcnow() + timedelta(hours=hours)
    later = utcnow() + timedelta(days=1)
    at = later.astimezone(ZoneInfo("Europe/Warsaw")).strftime("%Y-%m-%dT%H:%M")
    scheduled = approval.draft_from_form(form(category=category, level=level, when="later", send_at=at))
    assert scheduled.expires_at - scheduled.send_at == timedelta(hours=hours), "from the send time"
    given = approval.draft_from_form(form(category=category, level=level, expires_at=at))
    assert given.expires_at == scheduled.send_at, "an end staff give is kept"


def drain(app) -> None:  # noqa: ANN001
    app.config["SMS_RATE_PER_SECOND"] = 0
    dispatcher = Dispatcher(app)
    while dispatcher.run_once():
        pass
    dispatcher.close()


def actions() -> list[str]:
    return db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()


def test_a_message_to_the_whole_gmina_needs_a_second_person(app, twilio):
    seed(3, categories={"official": 1}, areas=["KOZY"])
    editor, boss, deputy = person("e@kozy.pl", "editor"), person("w@kozy.pl", "approver"), person("z@kozy.pl", "approver")
    alert = approval.save_draft(editor, approval.draft_from_form(form()))
    assert approval.can_approve(editor, alert) == "not_allowed"
    approval.submit(editor, alert)
    assert approval.approve(boss, alert) == {"sms": 3}
    drain(app)
    assert len(twilio.messages) == 3
    assert actions() == ["draft_created", "submitted", "approved", "sent"]

    own = approval.save_draft(boss, approval.draft_from_form(form(title_pl="Druga sprawa")))
    assert approval.can_approve(boss, own) == "needs_second_person"
    approval.submit(boss, own)
    assert approval.can_approve(boss, own) == "self_approval"
    with pytest.raises(AlertError) as refused:
        approval.approve(boss, own)
    assert refused.value.code == "self_approval"
    assert actions()[-1] == "approval_refused"
    assert approval.approve(deputy, own) == {"sms": 3}


def test_editing_someone_elses_message_makes_you_an_author(app, twilio):
    editor, boss = person("e@kozy.pl", "editor"), person("w@kozy.pl", "approver")
    alert = approval.save_draft(editor, approval.draft_from_form(form()))
    approval.submit(editor, alert)
    approval.save_draft(boss, approval.draft_from_form(form(text_pl="Poprawiona treść.")), alert)
    assert approval.can_approve(boss, alert) == "self_approval"


def test_an_approver_may_send_alone_to_chosen_areas(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    seed(2, categories={"official": 1}, areas=["CZA"])
    boss = person("w@porabka.pl", "approver")
    alert = approval.save_draft(boss, approval.draft_from_form(form(target="chosen", areas=["CZA"])))
    assert approval.can_approve(boss, alert) is None
    assert approval.approve(boss, alert) == {"sms": 2}
    drain(app)


def test_break_glass_sends_an_emergency_at_once_with_a_reason_and_is_flagged(app, twilio):
    seed(2, categories={"events": 1}, areas=["KOZY"])
    boss = person("w@kozy.pl", "approver")
    alert = approval.save_draft(boss, approval.draft_from_form(
        form(category="emergency", title_pl="Skażenie wody", text_pl="Nie pij wody z kranu.")))
    with pytest.raises(AlertError) as refused:
        approval.break_glass(boss, alert, "pilne")
    assert refused.value.code == "break_glass_reason"
    assert approval.break_glass(boss, alert, "Nikt inny nie odbiera telefonu o 3 w nocy") == {"sms": 2}
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "break_glass"))
    assert event.flagged and event.detail["reason"].startswith("Nikt inny")
    assert alert.break_glass and alert.approved_by == boss.id
    official = approval.save_draft(boss, approval.draft_from_form(form()))
    with pytest.raises(AlertError) as refused:
        approval.break_glass(boss, official, "Bardzo pilna sprawa urzędowa")
    assert refused.value.code == "break_glass_emergency_only"


def test_an_exercise_reaches_only_the_test_group_with_the_prefix_and_no_second_person(app, twilio):
    ids = seed(5, categories={"official": 1}, areas=["KOZY"])
    for sid in ids[:2]:
        db.session.get(Subscriber, sid).test_group = True
    db.session.commit()
    boss = person("w@kozy.pl", "approver")
    alert = approval.save_draft(boss, approval.draft_from_form(form(exercise="on", category="emergency",
                                                                    title_pl="Ewakuacja", text_pl="Test.")))
    assert approval.can_approve(boss, alert) is None
    assert preview(alert).reach == {"sms": 2}
    assert "exercise" in preview(alert).warnings
    approval.approve(boss, alert)
    drain(app)
    assert sorted(m["To"] for m in twilio.messages) == [phone_for(0), phone_for(1)]
    assert twilio.messages[0]["Body"] == "Gmina Kozy: CWICZENIA: Ewakuacja. Test."


def test_a_scheduled_message_leaves_at_its_time(app, twilio):
    seed(2, categories={"official": 1}, areas=["KOZY"])
    editor, boss = person("e@kozy.pl", "editor"), person("w@kozy.pl", "approver")
    later = (utcnow() + timedelta(hours=2)).astimezone(WARSAW)
    alert = approval.save_draft(editor, approval.draft_from_form(form(when="later", send_at=later.strftime("%Y-%m-%dT%H:%M"))))
    approval.submit(editor, alert)
    assert approval.approve(boss, alert) is None
    assert alert.status == "scheduled"
    assert publish_due(utcnow()) == 0
    drain(app)
    assert twilio.messages == []
    alert.send_at = utcnow() - timedelta(seconds=1)  # two hours later
    db.session.commit()
    assert publish_due(utcnow()) == 1
    drain(app)
    assert len(twilio.messages) == 2


@pytest.mark.parametrize(("fields", "code", "field"), [
    ({"text_pl": "  "}, "text_missing", "text_pl"),
    ({"title_pl": ""}, "title_missing", "title_pl"),
    ({"target": "chosen"}, "areas_missing", "areas"),
    ({"when": "later", "send_at": "2020-01-01T10:00"}, "send_at_in_past", "send_at"),
    ({"when": "later", "send_at": ""}, "send_at_missing", "send_at"),
    ({"when": "later", "send_at": "jutro"}, "datetime_invalid", "send_at"),
    ({"expires_at": "2020-01-01T10:00"}, "expires_before_start", "expires_at"),
    ({"text_pl": "x" * 1501}, "text_too_long", "text_pl"),
    ({"category": "weather"}, "level_invalid", "level"),
    ({"channels": []}, "channels_missing", "channels"),
])
def test_bad_input_is_refused_with_a_stable_code_and_field(app, fields, code, field):
    editor = person("e@kozy.pl", "editor")
    with pytest.raises(AlertError) as refused:
        approval.save_draft(editor, approval.draft_from_form(form(**fields)))
    assert (refused.value.code, refused.value.field) == (code, field)


def test_an_expiry_before_the_start_is_refused(app):
    editor = person("e@kozy.pl", "editor")
    soon = (utcnow() + timedelta(hours=3)).astimezone(WARSAW)
    with pytest.raises(AlertError) as refused:
        approval.save_draft(editor, approval.draft_from_form(form(
            when="later", send_at=soon.strftime("%Y-%m-%dT%H:%M"),
            expires_at=(soon - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))))
    assert refused.value.code in ("expires_before_start", "send_after_expiry")


def test_the_preview_equals_what_is_sent(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    seed(4, categories={"utilities": 1}, areas=["CZA"], start=0, language="pl")
    seed(2, categories={"utilities": 1}, areas=["CZA", "KOB"], start=10, language="en")
    seed(3, categories={"utilities": 1}, areas=["BUJ"], start=20)  # not targeted
    boss = person("w@porabka.pl", "approver")
    long_text = ("Z powodu awarii sieci wodociągowej przy ulicy Rzecznej w Czańcu i Kobiernicach nie będzie "
                 "wody od godziny 8:00 do 18:00. Beczkowozy staną przy szkole, przy kościele i przy remizie. "
                 "Prosimy o zrobienie zapasu wody pitnej i o wyrozumiałość. Przepraszamy za utrudnienia. "
                 "Informacje o postępie prac podamy na stronie gminy i w kolejnym komunikacie.")
    alert = approval.save_draft(boss, approval.draft_from_form(form(
        category="utilities", target="chosen", areas=["CZA", "KOB"], title_pl="Brak wody", text_pl=long_text,
        title_en="No water", text_en="No water 8:00-18:00 in Czaniec and Kobiernice.")))
    shown = preview(alert)
    assert shown.reach == {"sms": 6}
    assert shown.by_area == {"CZA": {"sms": 6}, "KOB": {"sms": 2}}
    assert "shortened" in shown.warnings
    approval.approve(boss, alert)
    drain(app)
    assert len(twilio.messages) == shown.reach["sms"]
    sent_segments = sum(count_segments(m["Body"]).segments for m in twilio.messages)
    assert sent_segments == shown.sms_segments
    bodies = Counter(m["Body"] for m in twilio.messages)
    assert bodies == Counter({p.body: p.recipients for p in shown.sms if p.recipients})
    assert shown.cost == (shown.sms_segments * Decimal("0.16")).quantize(Decimal("0.01"))


def test_the_preview_warns_about_polish_letters_kept(app):
    boss = person("w@kozy.pl", "approver")
    alert = approval.save_draft(boss, approval.draft_from_form(form(keep_diacritics="on")))
    shown = preview(alert)
    assert "ucs2" in shown.warnings
    assert shown.sms[0].encoding == "UCS-2" and "ą" in shown.sms[0].non_gsm


def test_a_correction_goes_to_exactly_those_who_got_the_original(app, twilio):
    seed(3, categories={"official": 1}, areas=["KOZY"])
    editor, boss = person("e@kozy.pl", "editor"), person("w@kozy.pl", "approver")
    original = approval.save_draft(editor, approval.draft_from_form(form()))
    approval.submit(editor, original)
    approval.approve(boss, original)
    drain(app)
    seed(2, categories={"official": 1}, areas=["KOZY"], start=50)  # joined afterwards
    twilio.reset()
    cancel = approval.save_draft(editor, approval.draft_from_form(form(title_pl="Zebranie wiejskie",
                                                                       text_pl="Zebranie odwołane."),
                                                                  parent=original), parent=original, kind="cancel")
    assert preview(cancel).reach == {"sms": 3}
    approval.submit(editor, cancel)
    approval.approve(boss, cancel)
    drain(app)
    assert sorted(m["To"] for m in twilio.messages) == [phone_for(n) for n in range(3)]


def test_two_cancellations_of_one_message_send_only_the_first(app, twilio):
    seed(2, categories={"official": 1}, areas=["KOZY"])
    editor, boss = person("e@kozy.pl", "editor"), person("w@kozy.pl", "approver")
    original = approval.save_draft(editor, approval.draft_from_form(form()))
    approval.submit(editor, original)
    approval.approve(boss, original)
    drafts = []
    for _ in range(2):  # two staff members, each writing a cancellation
        cancel = approval.save_draft(editor, approval.draft_from_form(form(text_pl="Odwołane."), parent=original),
                                     parent=original, kind="cancel")
        approval.submit(editor, cancel)
        drafts.append(cancel)
    approval.approve(boss, drafts[0])
    with pytest.raises(AlertError) as refused:
        approval.approve(boss, drafts[1])
    assert refused.value.code == "parent_not_published"
    assert not approval.can_follow_up(original)


def test_the_right_password_without_a_code_counts_towards_the_throttle(make_app):
    import pyotp

    from staff.auth import LoginError, authenticate

    app = make_app(STAFF_LOCKOUT_ATTEMPTS=3)
    boss = person("w@kozy.pl", "approver")
    boss.totp_secret = pyotp.random_base32()
    db.session.commit()
    codes = []
    with app.test_request_context("/admin/login", environ_base={"REMOTE_ADDR": "10.0.0.1"}):
        for _ in range(4):
            with pytest.raises(LoginError) as refused:
                authenticate("w@kozy.pl", "a-long-enough-password", None)
            codes.append(refused.value.code)
    assert codes == ["totp_required"] * 3 + ["rate_limited"]
    assert db.session.scalar(select(AuditEvent.flagged).where(AuditEvent.action == "login_throttled"))
