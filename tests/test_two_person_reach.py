"""The two-person rule judges a message's real reach: its areas plus everyone its chain
(the original, earlier updates, the automatic IMGW warning it updates) will send to.

The attack from issue 9: a lone approver "updates" a whole-gmina message aimed at one
village; the update goes to everyone who got the original, i.e. all four villages, and
nobody else looked at it.
"""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from alerts import approval
from alerts import publish as lifecycle
from alerts.models import Alert, Delivery
from db import db, utcnow
from population import seed
from staff.audit import AuditEvent
from staff.models import StaffUser

PASSWORD = "correct horse battery staple"
VILLAGES = ["BUJ", "CZA", "KOB", "POR"]


def person(email: str, role: str) -> StaffUser:
    user = StaffUser(email=email, role=role)
    user.set_password(PASSWORD)
    db.session.add(user)
    db.session.commit()
    return user


def signed_in(app, user: StaffUser):  # noqa: ANN001, ANN201
    client = app.test_client()
    response = client.post("/admin/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code in (302, 303)
    return client


def draft(areas: list[str] | None, text: str = "Silny wiatr.") -> lifecycle.Draft:
    now = utcnow()
    return lifecycle.Draft(category="weather", level=2, titles={"pl": "Wichura"}, texts={"pl": text},
                           areas=areas, channels=["sms"], starts_at=now, expires_at=now + timedelta(hours=6))


def one_resident_per_village() -> None:
    for n, village in enumerate(VILLAGES):
        seed(1, categories={"weather": 1}, areas=[village], start=n)


def published(source: str = "manual", areas: list[str] | None = None) -> Alert:
    d = draft(areas)
    d.source = source
    if source != "manual":
        d.external_id = "imgw-123"
    alert = lifecycle.create_alert(d)
    lifecycle.publish(alert)
    # The original went out to everyone it targets.
    db.session.execute(Delivery.__table__.update().values(status="delivered"))
    db.session.commit()
    return alert


def fingerprint(client, alert_id: int) -> str:  # noqa: ANN001
    html = client.get(f"/admin/messages/{alert_id}").get_data(as_text=True)
    match = re.search(r'name="fingerprint" value="([0-9a-f]+)"', html)
    return match.group(1) if match else ""


def test_an_update_aimed_at_one_village_of_a_whole_gmina_message_needs_a_second_person(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    one_resident_per_village()
    boss = person("wojt@porabka.pl", "approver")
    original = published(areas=None)
    update = approval.save_draft(boss, draft(["CZA"], "Tylko Czaniec?"), parent=original, kind="update")
    assert update.areas == ["CZA"]
    assert approval.reach_areas(update) is None  # it really reaches the whole gmina
    assert approval.two_person_needed(update)
    assert approval.can_approve(boss, update) == "needs_second_person"

    client = signed_in(app, boss)
    response = client.post(f"/admin/messages/{update.id}/approve", data={"fingerprint": fingerprint(client, update.id)})
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Alert, update.id).status == "draft"
    assert db.session.scalar(select(Delivery.id).where(Delivery.alert_id == update.id)) is None
    assert db.session.scalar(select(AuditEvent.detail).where(AuditEvent.action == "approval_refused")) == {
        "reason": "needs_second_person"}

    # With a second person it goes, and to the whole gmina, as the preview said.
    deputy = person("zastepca@porabka.pl", "approver")
    approval.submit(boss, update)
    assert approval.can_approve(deputy, update) is None
    assert approval.approve(deputy, update, seen=lifecycle.fingerprint(update)) == {"sms": 4}


def test_an_update_on_top_of_an_automatic_imgw_warning_needs_a_second_person(make_app, twilio):
    make_app(SYRENA_MUNICIPALITY="porabka")
    one_resident_per_village()
    boss = person("wojt@porabka.pl", "approver")
    warning = published(source="imgw-meteo", areas=None)
    update = approval.save_draft(boss, draft(["BUJ"], "Dotyczy Bujakowa."), parent=warning, kind="update")
    assert approval.two_person_needed(update)
    assert approval.can_approve(boss, update) == "needs_second_person"
    cancel = approval.save_draft(boss, draft(None, "Odwołane."), parent=warning, kind="cancel")
    assert approval.can_approve(boss, cancel) == "needs_second_person"


def test_every_earlier_message_of_the_chain_counts_and_villages_add_up(make_app, twilio):
    make_app(SYRENA_MUNICIPALITY="porabka")
    one_resident_per_village()
    boss = person("wojt@porabka.pl", "approver")
    first = published(areas=["BUJ", "CZA"])
    second = approval.save_draft(boss, draft(["KOB"]), parent=first, kind="update")
    assert approval.reach_areas(second) == ["BUJ", "CZA", "KOB"]
    assert approval.can_approve(boss, second) is None  # three of four villages: an approver alone
    approval.approve(boss, second, seen=lifecycle.fingerprint(second))
    db.session.execute(Delivery.__table__.update().values(status="delivered"))
    db.session.commit()
    third = approval.save_draft(boss, draft(["POR"]), parent=second, kind="update")
    # BUJ + CZA (first) + KOB (second) + POR: every village, the whole gmina.
    assert approval.reach_areas(third) is None
    assert approval.can_approve(boss, third) == "needs_second_person"


def test_a_message_to_some_villages_without_a_chain_stays_an_approvers_own_decision(make_app, twilio):
    make_app(SYRENA_MUNICIPALITY="porabka")
    boss = person("wojt@porabka.pl", "approver")
    alert = approval.save_draft(boss, draft(["CZA"]))
    assert approval.reach_areas(alert) == ["CZA"] and not approval.two_person_needed(alert)


def test_the_preview_page_says_the_update_reaches_the_whole_gmina(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    boss = person("wojt@porabka.pl", "approver")
    original = published(areas=None)
    update = approval.save_draft(boss, draft(["CZA"], "Tylko Czaniec?"), parent=original, kind="update")
    html = signed_in(app, boss).get(f"/admin/messages/{update.id}").get_data(as_text=True)
    notice = re.search(r'<p class="notice notice-warning" id="chain-reach">(.*?)</p>', html, re.S)
    assert notice and "cała gmina" in notice.group(1).lower()
