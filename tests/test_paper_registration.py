"""Staff register a resident from a signed paper form: the ledger says "paper" with the
form's reference, the resident is told once, a landline gets calls only, and a number that
left after the form was signed is refused."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from db import db, utcnow
from staff.audit import AuditEvent
from subscribers import call_choice
from subscribers.models import ConsentEvent, Subscriber, SubscriberCategory
from tests.conftest import send_queued_sms
from tests.test_admin_messages import make_staff, signed_in
from tests.test_public_pages import page, message
from tests.test_voice_signup import LANDLINE, LANDLINE_TYPED

MOBILE = "+48501234567"


def paper_form(**overrides):  # noqa: ANN003, ANN201
    form = {"phone": "501 234 567", "reference": "KZ/2026/0042", "signed_on": date.today().isoformat(),
            "categories": ["weather", "official"], "level_weather": "2", "language": "pl", "contact": "sms",
            "areas": ["KOZY"]}
    form.update(overrides)
    return form


@pytest.fixture
def office(make_app):  # noqa: ANN001, ANN201
    app = make_app(VOICE_BACKEND="twilio", TWILIO_VOICE_FROM="+48338100200")
    return signed_in(app, make_staff("editor"))


def resident(phone: str) -> Subscriber:
    db.session.expire_all()
    return db.session.scalar(select(Subscriber).where(Subscriber.phone == phone))


def test_a_paper_form_registers_the_resident_with_source_paper_and_one_sms(office, twilio):
    response = office.post("/admin/subscribers/new", data=paper_form())
    assert response.status_code == 302, page(response).errors
    r = resident(MOBILE)
    assert (r.status, r.voice) == ("active", False)
    event = db.session.scalar(select(ConsentEvent).where(ConsentEvent.subscriber_id == r.id))
    assert (event.action, event.source, event.reference) == ("subscribe", "paper", "KZ/2026/0042")
    assert "entered by staff" in event.detail and event.consent_version
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "subscriber_registered_on_paper"))
    assert audit.target == f"subscriber:{r.id}"
    send_queued_sms()
    [sms] = twilio.messages
    assert sms["To"] == MOBILE and "formularz KZ/2026/0042" in sms["Body"] and "/m/" in sms["Body"]
    # The resident's page in the admin shows where the consent came from.
    html = office.get(response.headers["Location"]).get_data(as_text=True)
    assert "formularz papierowy" in html and "KZ/2026/0042" in html


def test_a_landline_on_paper_gets_calls_only_and_hears_it_was_registered(office, twilio):
    response = office.post("/admin/subscribers/new", data=paper_form(phone=LANDLINE_TYPED))
    assert response.status_code == 302, page(response).errors
    r = resident(LANDLINE)
    assert (r.voice, r.voice_only) == (True, True)
    calls = dict(db.session.execute(select(SubscriberCategory.category, SubscriberCategory.call_level)
                                    .where(SubscriberCategory.subscriber_id == r.id)).all())
    assert calls["weather"] == 2
    send_queued_sms()
    assert twilio.messages == []
    heard = twilio.ring(twilio.calls[-1]["sid"], "human").text
    assert "zapisała ten numer do powiadomień telefonicznych na podstawie formularza numer KZ/2026/0042" in heard
    assert "naciśnij 9" in heard


def test_the_form_says_what_is_missing_and_keeps_what_was_typed(office, twilio):
    response = office.post("/admin/subscribers/new", data=paper_form(reference=" ", signed_on="",
                                                                     phone="12ab"))
    assert response.status_code == 400
    p = page(response)
    assert p.errors == {"phone": message("phone_invalid"), "reference": message("reference_missing"),
                        "signed_on": message("signed_on_missing")}
    assert p.value("phone") == "12ab"
    future = (date.today() + timedelta(days=2)).isoformat()
    response = office.post("/admin/subscribers/new", data=paper_form(signed_on=future))
    assert page(response).errors["signed_on"] == message("signed_on_invalid", days=366)
    assert db.session.scalar(select(Subscriber)) is None and twilio.messages == []


def test_a_number_that_left_after_the_form_was_signed_is_refused_and_a_newer_form_counts(office, twilio):
    assert office.post("/admin/subscribers/new", data=paper_form()).status_code == 302
    r = resident(MOBILE)
    r.status, r.opted_out_at = "opted_out", utcnow()
    db.session.commit()
    old = (date.today() - timedelta(days=3)).isoformat()
    response = office.post("/admin/subscribers/new", data=paper_form(signed_on=old, reference="KZ/2026/0050"))
    assert response.status_code == 400 and "signed_on" in page(response).errors
    assert resident(MOBILE).status == "opted_out"
    # A form signed today (after leaving) is the newer wish: recorded, and the resident is back.
    response = office.post("/admin/subscribers/new", data=paper_form(reference="KZ/2026/0051"))
    assert response.status_code == 302
    assert resident(MOBILE).status == "active"
    refs = db.session.scalars(select(ConsentEvent.reference).where(ConsentEvent.source == "paper")).all()
    assert refs == ["KZ/2026/0042", "KZ/2026/0051"]


def test_paper_registration_needs_a_signed_in_staff_member(make_app):
    client = make_app().test_client()
    response = client.post("/admin/subscribers/new", data=paper_form())
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]
    assert db.session.scalar(select(Subscriber)) is None


def test_a_paper_form_older_than_a_9_in_a_call_does_not_bring_calls_back(office, twilio):
    from subscribers import service

    form = paper_form(contact="sms_voice", calls=["weather"])
    assert office.post("/admin/subscribers/new", data=form).status_code == 302
    call_choice.stop_calls(resident(MOBILE), service.Origin("voice"), detail="pressed 9")
    db.session.commit()
    old = (date.today() - timedelta(days=30)).isoformat()
    response = office.post("/admin/subscribers/new", data={**form, "signed_on": old, "reference": "KZ/OLD/1"})
    assert response.status_code == 400
    assert page(response).errors["signed_on"] == message("changed_since", day=date.today().isoformat())
    assert resident(MOBILE).voice is False


def test_a_paper_form_older_than_the_resident_s_own_change_online_is_refused(office):
    old = (date.today() - timedelta(days=10)).isoformat()
    assert office.post("/admin/subscribers/new", data=paper_form(signed_on=old, reference="KZ/1")).status_code == 302
    # The resident changes their choices on the web: no more official messages.
    from subscribers import service as svc

    r = resident(MOBILE)
    svc.update_preferences(r, svc.Preferences(categories={"weather": 2}, areas=("KOZY",), language="pl"),
                           svc.Origin("web"))
    response = office.post("/admin/subscribers/new", data=paper_form(signed_on=old, reference="KZ/2"))
    assert response.status_code == 400 and "signed_on" in page(response).errors
    assert resident(MOBILE).category_levels() == {"weather": 2}


def test_an_approver_enters_the_closed_groups_of_a_paper_form_in_the_same_step(make_app, twilio):
    from subscribers.models import SubscriberGroup

    app = make_app(VOICE_BACKEND="twilio", TWILIO_VOICE_FROM="+48338100200")
    editor = signed_in(app, make_staff("editor"))
    response = editor.post("/admin/subscribers/new", data=paper_form(closed_groups=["osp"]))
    assert response.status_code == 400
    assert message("closed_groups_approver") in response.get_data(as_text=True)
    assert db.session.scalar(select(Subscriber)) is None

    approver = signed_in(app, make_staff("approver"))
    assert "Grupy zamknięte" in approver.get("/admin/subscribers/new").get_data(as_text=True)
    response = approver.post("/admin/subscribers/new", data=paper_form(closed_groups=["osp"], groups=["rolnicy"]))
    assert response.status_code == 302, page(response).errors
    r = resident(MOBILE)
    assert dict(db.session.execute(select(SubscriberGroup.group, SubscriberGroup.source)
                                   .where(SubscriberGroup.subscriber_id == r.id)).all()) == {
        "osp": "staff", "rolnicy": "self"}
    added = db.session.scalar(select(ConsentEvent).where(ConsentEvent.action == "group_added"))
    assert (added.source, added.reference) == ("paper", "KZ/2026/0042") and "legal basis" in added.detail
    # An open group is not for staff to put people in.
    response = approver.post("/admin/subscribers/new", data=paper_form(phone="502 345 678",
                                                                       closed_groups=["rolnicy"]))
    assert response.status_code == 400 and page(response).errors["closed_groups"] == message("group_open")
