"""The two-person rule under attack: real parallel requests to a live server.

The attack from issue 9: an editor saves while an approver approves. Before the fix the
approver approved version A and version B went out to everyone. Now either the approval
wins (the edit is refused, residents get A) or the edit wins (the approval is refused as
stale, nothing goes out): residents only ever get exactly what was approved.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

import requests
from sqlalchemy import func, select

from alerts import approval
from alerts import publish as lifecycle
from alerts.dispatcher import Dispatcher
from alerts.models import Alert, AlertVersion, Delivery
from db import db, utcnow
from population import seed
from staff import audit
from staff.audit import AuditEvent
from staff.models import StaffUser

PASSWORD = "correct horse battery staple"
WARSAW = ZoneInfo("Europe/Warsaw")
ROUNDS = 12
RESIDENTS = 3


def make_staff(role: str, email: str) -> StaffUser:
    user = StaffUser(email=email, role=role)
    user.set_password(PASSWORD)
    db.session.add(user)
    db.session.commit()
    return user


class Staff:
    """A staff member's browser, as plain HTTP: the real login form, CSRF tokens and all."""

    def __init__(self, base: str, email: str) -> None:
        self.base, self.http = base, requests.Session()
        token = self.token("/admin/login")
        response = self.http.post(f"{base}/admin/login", data={"email": email, "password": PASSWORD,
                                                               "csrf_token": token},
                                  allow_redirects=False, timeout=30)
        assert response.status_code in (302, 303), response.text[:500]

    def get(self, path: str) -> str:
        response = self.http.get(self.base + path, timeout=30)
        assert response.status_code == 200, (path, response.status_code)
        return response.text

    def token(self, path: str) -> str:
        return re.search(r'name="csrf_token" value="([^"]+)"', self.get(path)).group(1)

    def post(self, path: str, data: dict, token: str) -> requests.Response:
        return self.http.post(self.base + path, data={**data, "csrf_token": token}, allow_redirects=False,
                              timeout=60)


def draft(title: str, text: str, areas: list[str] | None = None) -> lifecycle.Draft:
    now = utcnow()
    return lifecycle.Draft(category="weather", level=2, titles={"pl": title}, texts={"pl": text}, areas=areas,
                           channels=["sms"], starts_at=now, expires_at=now + timedelta(hours=6))


def edit_form(title: str, text: str) -> dict:
    expires = (utcnow() + timedelta(hours=6)).astimezone(WARSAW).strftime("%Y-%m-%dT%H:%M")
    return {"category": "weather", "level": "2", "title_pl": title, "text_pl": text, "target": "all",
            "channels": "sms", "when": "now", "expires_at": expires}


def drain(app) -> None:  # noqa: ANN001
    app.config.update({"SMS_RATE_PER_SECOND": 0})
    dispatcher = Dispatcher(app)
    while dispatcher.run_once():
        pass
    dispatcher.close()


def at_once(*calls):  # noqa: ANN002, ANN201
    """Run the calls in parallel threads released together; return their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def actions(alert_id: int) -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.target == f"alert:{alert_id}")
                                   .order_by(AuditEvent.id)))


def test_residents_get_exactly_the_approved_version_when_an_edit_races_the_approval(live_server, app, twilio):
    seed(RESIDENTS, categories={"weather": 1}, areas=["KOZY"])
    editor = make_staff("editor", "ed@kozy.pl")
    make_staff("approver", "boss@kozy.pl")
    ed, boss = Staff(live_server, "ed@kozy.pl"), Staff(live_server, "boss@kozy.pl")
    outcomes = Counter()
    for round_no in range(ROUNDS):
        title, a_text, b_text = f"Wichura {round_no}", f"Wersja A {round_no}.", f"Wersja B {round_no}."
        alert = approval.save_draft(editor, draft(title, a_text))
        approval.submit(editor, alert)
        alert_id = alert.id
        # The approver looks at version A; the editor has the edit form open.
        shown = boss.get(f"/admin/messages/{alert_id}")
        seen = re.search(r'name="fingerprint" value="([0-9a-f]+)"', shown).group(1)
        boss_token = re.search(r'name="csrf_token" value="([^"]+)"', shown).group(1)
        ed_token = ed.token(f"/admin/messages/{alert_id}/edit")

        at_once(lambda: ed.post(f"/admin/messages/{alert_id}/edit", edit_form(title, b_text), ed_token),
                lambda: boss.post(f"/admin/messages/{alert_id}/approve", {"fingerprint": seen}, boss_token))

        drain(app)
        db.session.expire_all()
        alert = db.session.get(Alert, alert_id)
        bodies = [m["Body"] for m in twilio.messages if title in m["Body"]]
        assert not any(b_text in body for body in bodies), f"round {round_no}: version B went out: {bodies}"
        log = actions(alert_id)
        if alert.status == "published":
            outcomes["approval first"] += 1
            # Everyone got A, the approved version; the edit came too late and changed nothing.
            assert len(bodies) == RESIDENTS and all(a_text in body for body in bodies), bodies
            version = db.session.scalar(select(AlertVersion).where(AlertVersion.alert_id == alert_id))
            assert version.fingerprint == seen and version.texts == {"pl": a_text}
            assert alert.texts == {"pl": a_text}
            assert log == ["draft_created", "submitted", "approved", "sent"], log
        else:
            outcomes["edit first"] += 1
            # The edit made version B: the approval of A was refused as stale, nothing went out.
            assert alert.status == "awaiting" and alert.texts == {"pl": b_text}
            assert bodies == []
            assert db.session.scalar(select(func.count()).select_from(Delivery)
                                     .where(Delivery.alert_id == alert_id)) == 0
            assert log == ["draft_created", "submitted", "draft_edited", "approval_refused"], log
    print("outcomes:", dict(outcomes))
    assert sum(outcomes.values()) == ROUNDS
    assert audit.verify().ok


def test_parallel_approvals_of_one_version_send_it_once(live_server, app, twilio):
    seed(RESIDENTS, categories={"weather": 1}, areas=["KOZY"])
    editor = make_staff("editor", "ed@kozy.pl")
    approvers = [make_staff("approver", f"boss{i}@kozy.pl") for i in range(6)]
    alert = approval.save_draft(editor, draft("Burza", "Jedna wersja."))
    approval.submit(editor, alert)
    sessions = [Staff(live_server, a.email) for a in approvers]
    pages = [s.get(f"/admin/messages/{alert.id}") for s in sessions]
    seen = [re.search(r'name="fingerprint" value="([0-9a-f]+)"', p).group(1) for p in pages]
    tokens = [re.search(r'name="csrf_token" value="([^"]+)"', p).group(1) for p in pages]
    responses = at_once(*[
        (lambda i=i: sessions[i].post(f"/admin/messages/{alert.id}/approve", {"fingerprint": seen[i]}, tokens[i]))
        for i in range(len(sessions))])
    assert all(r.status_code == 303 for r in responses)
    drain(app)
    assert len(twilio.messages) == RESIDENTS
    log = actions(alert.id)
    assert log.count("approved") == 1 and log.count("sent") == 1
    assert log.count("approval_refused") == len(sessions) - 1
    assert db.session.scalar(select(func.count()).select_from(AlertVersion)) == 1
    assert audit.verify().ok


def test_an_edit_after_submission_is_a_new_version_that_needs_a_fresh_approval(app, twilio):
    seed(RESIDENTS, categories={"weather": 1}, areas=["KOZY"])
    editor, boss = make_staff("editor", "ed@kozy.pl"), make_staff("approver", "boss@kozy.pl")
    alert = approval.save_draft(editor, draft("Mróz", "Wersja A."))
    approval.submit(editor, alert)
    seen = lifecycle.fingerprint(alert)
    approval.save_draft(editor, draft("Mróz", "Wersja B."), alert)
    assert alert.version == 2 and lifecycle.fingerprint(alert) != seen
    try:
        approval.approve(boss, alert, seen=seen)
    except lifecycle.AlertError as exc:
        assert exc.code == "version_changed"
    else:
        raise AssertionError("an approval of the previous version was accepted")
    assert approval.approve(boss, alert, seen=lifecycle.fingerprint(alert)) == {"sms": RESIDENTS}
    drain(app)
    assert {m["Body"] for m in twilio.messages} == {"Gmina Kozy: Mroz. Wersja B."}


def test_what_is_sent_is_rendered_from_the_approved_version_not_the_row(app, twilio):
    """Even a change to the alert row behind the application's back (a feed rewriting a
    scheduled warning, a stray UPDATE) does not reach residents: they get the frozen copy."""
    seed(RESIDENTS, categories={"weather": 1}, areas=["KOZY"])
    editor, boss = make_staff("editor", "ed@kozy.pl"), make_staff("approver", "boss@kozy.pl")
    alert = approval.save_draft(editor, draft("Upał", "Zatwierdzona treść."))
    approval.submit(editor, alert)
    approval.approve(boss, alert, seen=lifecycle.fingerprint(alert))
    db.session.execute(Alert.__table__.update().where(Alert.id == alert.id)
                       .values(texts={"pl": "Podmieniona treść."}))
    db.session.commit()
    drain(app)
    assert {m["Body"] for m in twilio.messages} == {"Gmina Kozy: Upal. Zatwierdzona tresc."}


def test_a_scheduled_message_changed_after_its_approval_goes_back_to_the_queue(app, twilio):
    seed(RESIDENTS, categories={"weather": 1}, areas=["KOZY"])
    editor, boss = make_staff("editor", "ed@kozy.pl"), make_staff("approver", "boss@kozy.pl")
    d = draft("Wichura", "Zatwierdzona na jutro.")
    d.send_at = utcnow() + timedelta(hours=1)
    alert = approval.save_draft(editor, d)
    approval.submit(editor, alert)
    assert approval.approve(boss, alert, seen=lifecycle.fingerprint(alert)) is None  # scheduled
    # A new version made behind the approval (as a feed's rewrite of a waiting warning does).
    db.session.execute(Alert.__table__.update().where(Alert.id == alert.id)
                       .values(texts={"pl": "Niezatwierdzona."}, version=Alert.version + 1))
    db.session.commit()
    assert lifecycle.publish_due(utcnow() + timedelta(hours=2)) == 0
    drain(app)
    assert twilio.messages == []
    db.session.expire_all()
    assert db.session.get(Alert, alert.id).status == "awaiting"


def test_postgresql_refuses_to_change_an_approved_version(app, twilio):
    import pytest
    from sqlalchemy.exc import DBAPIError

    if db.engine.dialect.name != "postgresql":
        pytest.skip("the trigger is PostgreSQL's")
    editor, boss = make_staff("editor", "ed@kozy.pl"), make_staff("approver", "boss@kozy.pl")
    alert = approval.save_draft(editor, draft("Upał", "Zatwierdzona treść."))
    approval.submit(editor, alert)
    approval.approve(boss, alert, seen=lifecycle.fingerprint(alert))
    for statement in (AlertVersion.__table__.update().values(texts={"pl": "Podmieniona."}),
                      AlertVersion.__table__.delete()):
        with pytest.raises(DBAPIError) as refused:
            with db.engine.begin() as conn:
                conn.execute(statement)
        assert "immutable" in str(refused.value)


def test_a_message_sent_back_to_the_queue_is_judged_again_not_a_500(app, twilio):
    """A scheduled correction whose chain moved on goes back to the queue as a new version,
    so a second approval freezes a copy of its own and is refused for the real reason (the
    same version twice would break the frozen copy's unique key: an IntegrityError, a 500)."""
    seed(RESIDENTS, categories={"weather": 1}, areas=["KOZY"])
    editor, boss = make_staff("editor", "ed@kozy.pl"), make_staff("approver", "boss@kozy.pl")
    original = approval.save_draft(editor, draft("Wichura", "Jutro silny wiatr."))
    approval.submit(editor, original)
    approval.approve(boss, original, seen=lifecycle.fingerprint(original))
    correction = draft("Wichura", "Jutro silny wiatr od 16:00.")
    correction.send_at = utcnow() + timedelta(hours=1)
    update = approval.save_draft(editor, correction, parent=original)
    approval.submit(editor, update)
    assert approval.approve(boss, update, seen=lifecycle.fingerprint(update)) is None  # scheduled
    # Meanwhile the original is withdrawn: the scheduled correction's chain has moved on.
    cancel = approval.save_draft(editor, draft("Odwołanie", "Komunikat nieaktualny."), parent=original,
                                 kind="cancel")
    approval.submit(editor, cancel)
    approval.approve(boss, cancel, seen=lifecycle.fingerprint(cancel))
    assert lifecycle.publish_due(utcnow() + timedelta(hours=2)) == 0
    db.session.expire_all()
    returned = db.session.get(Alert, update.id)
    assert returned.status == "awaiting"
    try:
        approval.approve(boss, returned, now=utcnow() + timedelta(hours=2), seen=lifecycle.fingerprint(returned))
    except lifecycle.AlertError as exc:
        assert exc.code == "parent_not_published"
    else:
        raise AssertionError("a correction of a withdrawn message was sent")
