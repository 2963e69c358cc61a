"""People in the admin (admin/people.py): resident counts and charts, search with masked
numbers, one resident's page and its GDPR actions, the staff test group, staff accounts, and
the audit log with its CSV export."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

import population
from admin.people import verified_per_day
from db import db, utcnow
from staff.audit import AuditEvent
from staff.models import StaffUser
from subscribers.models import (ACTIVE, DEACTIVATED, OPTED_OUT, ConsentEvent, PushSubscription, Subscriber)
from tests.test_admin_auth import (admin_app, audit_actions, make_staff,  # noqa: F401
                                   sign_in, text_of)

PHONE = population.phone_for(7)  # +48500000007


def client_as(app: Flask, role: str, email: str | None = None) -> FlaskClient:
    email = email or f"{role}@gmina.pl"
    if db.session.scalar(select(StaffUser).where(StaffUser.email == email)) is None:
        make_staff(email, role)
    client = app.test_client()
    assert sign_in(client, email).status_code == 302
    return client


def seed_one(phone_n: int = 7, **kwargs) -> Subscriber:  # noqa: ANN003
    [sid] = population.seed(1, categories={"weather": 2, "official": 1}, areas=kwargs.pop("areas", ["KOZY"]),
                            start=phone_n, **kwargs)
    return db.session.get(Subscriber, sid)


@pytest.fixture
def app(admin_app: Callable[..., Flask]) -> Flask:  # noqa: F811
    return admin_app()


# --- counts and charts --------------------------------------------------------------------

def test_counts_and_charts_with_a_seeded_population(admin_app: Callable[..., Flask]) -> None:  # noqa: F811
    app = admin_app(SYRENA_MUNICIPALITY="porabka")
    population.seed(30, categories={"weather": 1, "official": 1}, areas=["BUJ"])
    population.seed(20, categories={"weather": 2}, areas=["CZA", "POR"], start=100)
    population.seed(5, categories={"weather": 1}, areas=["BUJ"], start=200, status=OPTED_OUT)
    population.seed(2, categories={"weather": 1}, areas=["BUJ"], start=300, status=DEACTIVATED)
    # Ten residents verified twelve days ago; one active resident also has push.
    first_ids = db.session.scalars(select(Subscriber.id).order_by(Subscriber.id).limit(10)).all()
    db.session.execute(update(Subscriber).where(Subscriber.id.in_(first_ids))
                       .values(verified_at=utcnow() - timedelta(days=12)))
    db.session.add(PushSubscription(subscriber_id=first_ids[0], endpoint="https://fcm.googleapis.com/x/1",
                                    p256dh="k", auth="a"))
    db.session.commit()

    page = client_as(app, "editor").get("/admin/subscribers")
    html = text_of(page)
    assert page.status_code == 200
    rows = dict(re.findall(r'<tr><th scope="row">([^<]+)</th><td class="num">(\d+)</td></tr>', html))
    assert rows["Bujaków"] == "30" and rows["Czaniec"] == "20" and rows["Porąbka"] == "20"
    assert rows["Kobiernice"] == "0"
    assert rows["Ostrzeżenia meteorologiczne"] == "50" and rows["Komunikaty urzędowe"] == "30"
    assert rows["SMS"] == "50" and rows["Powiadomienia w aplikacji"] == "1"
    assert html.count('<svg class="chart"') == 4
    assert "polyline" in html  # the growth line
    assert "Razem w ostatnich 90 dniach: 57." in html

    growth = verified_per_day()
    assert len(growth) == 90
    assert growth[-1][1] == 47 and growth[-13][1] == 10
    assert sum(n for _, n in growth) == 57


def test_counts_with_nobody_yet(app: Flask) -> None:
    page = client_as(app, "editor").get("/admin/subscribers")
    assert page.status_code == 200
    assert "Razem w ostatnich 90 dniach: 0." in text_of(page)


# --- search and the resident page ---------------------------------------------------------

def test_search_masks_the_number_for_an_editor_and_shows_it_to_an_approver(app: Flask) -> None:
    resident = seed_one()
    editor, approver = client_as(app, "editor"), client_as(app, "approver")

    html = text_of(editor.get("/admin/subscribers", query_string={"phone": "500 000 007"}))
    assert "+48 500 *** 007" in html and PHONE not in html
    assert f"/admin/subscribers/{resident.id}" in html
    page = text_of(editor.get(f"/admin/subscribers/{resident.id}"))
    assert "+48 500 *** 007" in page and PHONE not in page
    assert "subscriber_viewed" not in audit_actions()  # nothing was disclosed

    html = text_of(approver.get("/admin/subscribers", query_string={"phone": "+48 500-000-007"}))
    assert PHONE in html
    page = text_of(approver.get(f"/admin/subscribers/{resident.id}"))
    assert PHONE in page
    viewed = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "subscriber_viewed")).all()
    assert [(e.staff_email, e.target) for e in viewed] == [("approver@gmina.pl", f"subscriber:{resident.id}")]
    assert audit_actions(action="subscriber_search") == ["subscriber_search", "subscriber_search"]

    missing = text_of(approver.get("/admin/subscribers", query_string={"phone": "501 234 567"}))
    assert "Nie ma mieszkańca z tym numerem." in missing
    bad = approver.get("/admin/subscribers", query_string={"phone": "12"})
    assert bad.status_code == 400 and "To nie jest poprawny numer telefonu" in text_of(bad)
    assert approver.get("/admin/subscribers/999999").status_code == 404


def test_resident_page_shows_status_choices_consent_and_deliveries(app: Flask) -> None:
    resident = seed_one()
    db.session.add(ConsentEvent(subscriber_id=resident.id, action="subscribe", phone=PHONE, source="web",
                                consent_version="2026-01", ip="198.51.100.7"))
    db.session.commit()
    html = text_of(client_as(app, "editor").get(f"/admin/subscribers/{resident.id}"))
    assert "aktywni" in html
    assert "Ostrzeżenia meteorologiczne – pomarańczowe i czerwone" in html
    assert "Komunikaty urzędowe" in html
    assert "zapis" in html and "2026-01" in html
    assert "198.51.100.7" not in html  # an editor sees no IP addresses
    assert re.search(r"Wysłane wiadomości</dt><dd>0<", html)
    # An editor has no export, erase or test-group buttons.
    assert "/export" not in html and "/erase" not in html and "/test-group" not in html


def test_resident_page_says_which_messages_reached_them_and_when(app: Flask, twilio) -> None:  # noqa: ANN001
    from alerts import publish as lifecycle
    from alerts.models import Delivery
    from tests.test_delivery import alert, callback, drain

    resident = seed_one(0)  # phone_for(0), the number the callback helper reports
    evacuation = alert(category="weather", title="Ewakuacja: Kozy Dolne")
    later = alert(category="weather", title="Burza")
    lifecycle.publish(evacuation)
    drain(app)
    delivery = db.session.scalar(select(Delivery).where(Delivery.alert_id == evacuation.id))
    assert callback(app.test_client(), twilio, delivery.id, delivery.provider_ref, "delivered").status_code == 204
    lifecycle.publish(later)  # queued, not yet sent
    html = text_of(client_as(app, "editor").get(f"/admin/subscribers/{resident.id}"))
    section = html[html.index('id="history"'):]
    section = section[:section.index("</section>")]
    assert "Wiadomości do tej osoby" in section and "Ostatnie 2 z 2." in section
    assert section.index("Burza") < section.index("Ewakuacja: Kozy Dolne"), "newest first"
    assert f'href="/admin/messages/{evacuation.id}"' in section
    rows = section.split("<tr")[2:]
    assert "w kolejce" in rows[0] and "wysłany:" not in rows[0]
    assert "doręczone" in rows[1] and "wysłany:" in rows[1] and "doręczony:" in rows[1] and "twilio" in rows[1]
    assert re.search(r'Wysłane wiadomości</dt><dd><a href="#history">2</a>', html)


def test_a_messages_recipients_download_as_csv_with_statuses_and_times(app: Flask, twilio) -> None:  # noqa: ANN001
    from alerts import publish as lifecycle
    from alerts.models import Delivery
    from tests.test_delivery import alert, callback, drain

    seed_one(0)
    seed_one(1)
    message = alert(category="weather", title="Ewakuacja")
    lifecycle.publish(message)
    drain(app)
    first = db.session.scalar(select(Delivery).where(Delivery.alert_id == message.id).order_by(Delivery.id))
    assert callback(app.test_client(), twilio, first.id, first.provider_ref, "delivered").status_code == 204

    response = client_as(app, "approver").get(f"/admin/messages/{message.id}/recipients.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:5] == ["nr wysyłki", "telefon", "język", "kanał", "stan"]
    # "+48..." would be a formula to a spreadsheet: the apostrophe keeps the number as text.
    by_phone = {r[1].removeprefix("'"): r for r in rows[1:]}
    assert [r[1][:1] for r in rows[1:]] == ["'", "'"]
    assert set(by_phone) == {population.phone_for(0), population.phone_for(1)}
    delivered = by_phone[population.phone_for(0)]
    assert delivered[4] == "doręczone" and delivered[6] and delivered[7] and delivered[8] == "twilio"
    assert by_phone[population.phone_for(1)][4] == "wysłane (bez potwierdzenia)"
    assert "Pobierz listę odbiorców (CSV)" in text_of(client_as(app, "approver").get(f"/admin/messages/{message.id}"))

    masked = client_as(app, "editor").get(f"/admin/messages/{message.id}/recipients.csv").get_data(as_text=True)
    assert population.phone_for(0) not in masked and "***" in masked
    exports = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "recipients_exported")
                                 .order_by(AuditEvent.id)).all()
    assert [(e.target, e.detail) for e in exports] == [(f"alert:{message.id}", {"full_numbers": True}),
                                                       (f"alert:{message.id}", {"full_numbers": False})]
    assert client_as(app, "approver").get("/admin/messages/99999/recipients.csv").status_code == 404


def test_manual_opt_out_writes_the_consent_ledger_and_the_audit_log(app: Flask) -> None:
    resident = seed_one()
    assert client_as(app, "editor").post(f"/admin/subscribers/{resident.id}/opt-out",
                                         data={"reason": "prosi o wypisanie"}).status_code == 403
    editor = client_as(app, "approver")  # stopping someone's messages takes an approver
    refused = editor.post(f"/admin/subscribers/{resident.id}/opt-out", data={"reason": "  "})
    assert refused.status_code == 400 and "Podaj powód wypisania." in text_of(refused)
    db.session.refresh(resident)
    assert resident.status == ACTIVE

    done = editor.post(f"/admin/subscribers/{resident.id}/opt-out",
                       data={"reason": "Telefon do urzędu 12.03, prosi o wypisanie"},
                       headers={"User-Agent": "desk-browser"})
    assert done.status_code == 302
    db.session.expire_all()
    assert db.session.get(Subscriber, resident.id).status == OPTED_OUT
    [event] = db.session.scalars(select(ConsentEvent).where(ConsentEvent.subscriber_id == resident.id)).all()
    assert (event.action, event.source, event.detail, event.user_agent) == (
        "opt_out", "staff", "Telefon do urzędu 12.03, prosi o wypisanie", "desk-browser")
    [row] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "subscriber_opted_out")).all()
    assert row.staff_email == "approver@gmina.pl" and row.target == f"subscriber:{resident.id}"
    # The free text about a person lives in the ledger (erased with them), not the audit log.
    assert row.detail == {"reason_given": True}
    assert "Mieszkaniec został wypisany." in text_of(editor.get(f"/admin/subscribers/{resident.id}"))

    # Twice: nothing more is written.
    editor.post(f"/admin/subscribers/{resident.id}/opt-out", data={"reason": "again"})
    assert len(db.session.scalars(select(ConsentEvent)).all()) == 1
    assert audit_actions(action="subscriber_opted_out") == ["subscriber_opted_out"]


def test_export_gives_the_residents_data_as_json(app: Flask) -> None:
    resident = seed_one()
    assert client_as(app, "editor").post(f"/admin/subscribers/{resident.id}/export").status_code == 403
    response = client_as(app, "approver").post(f"/admin/subscribers/{resident.id}/export")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    data = json.loads(response.get_data(as_text=True))
    assert data["subscriber"]["phone"] == PHONE
    assert data["subscriber"]["categories"] == {"weather": 2, "official": 1}
    assert "consent_history" in data and "messages_to_you" in data
    assert audit_actions(action="subscriber_exported") == ["subscriber_exported"]


def test_erase_is_for_admins_only_and_needs_the_confirmation(app: Flask) -> None:
    resident = seed_one()
    db.session.add(ConsentEvent(subscriber_id=resident.id, action="subscribe", phone=PHONE, source="web"))
    db.session.commit()
    url = f"/admin/subscribers/{resident.id}/erase"
    assert client_as(app, "editor").post(url, data={"confirm": "yes"}).status_code == 403
    assert client_as(app, "approver").post(url, data={"confirm": "yes"}).status_code == 403
    admin = client_as(app, "admin")
    page = text_of(admin.get(f"/admin/subscribers/{resident.id}"))
    assert url in page
    unconfirmed = admin.post(url, data={})
    assert unconfirmed.status_code == 400 and "Zaznacz potwierdzenie" in text_of(unconfirmed)
    assert db.session.get(Subscriber, resident.id) is not None

    done = admin.post(url, data={"confirm": "yes"})
    assert done.status_code == 302 and done.headers["Location"] == "/admin/subscribers"
    db.session.expire_all()
    assert db.session.get(Subscriber, resident.id) is None
    assert db.session.scalars(select(ConsentEvent)).all() == []
    [row] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "subscriber_erased")).all()
    assert row.target == f"subscriber:{resident.id}" and row.staff_email == "admin@gmina.pl"
    assert PHONE not in json.dumps(row.detail)
    assert admin.get(f"/admin/subscribers/{resident.id}").status_code == 404


def test_staff_test_group_toggle(app: Flask) -> None:
    resident = seed_one()
    url = f"/admin/subscribers/{resident.id}/test-group"
    assert client_as(app, "editor").post(url, data={"member": "1"}).status_code == 403
    approver = client_as(app, "approver")
    assert approver.post(url, data={"member": "1"}).status_code == 302
    db.session.refresh(resident)
    assert resident.test_group is True
    listing = text_of(approver.get("/admin/subscribers"))
    assert f"/admin/subscribers/{resident.id}" in listing  # listed in the test group
    assert approver.post(url, data={"member": "0"}).status_code == 302
    db.session.refresh(resident)
    assert resident.test_group is False
    rows = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "test_group_changed")
                              .order_by(AuditEvent.id)).all()
    assert [r.detail for r in rows] == [{"member": True}, {"member": False}]


# --- staff accounts -----------------------------------------------------------------------

def test_accounts_are_for_admins_only(app: Flask) -> None:
    for role in ("editor", "approver"):
        client = client_as(app, role)
        assert client.get("/admin/accounts").status_code == 403
        create = {"action": "create", "email": "x@gmina.pl", "role": "admin", "password": "x" * 20}
        assert client.post("/admin/accounts", data=create).status_code == 403
        assert client.get("/admin/audit").status_code == 403
        assert client.get("/admin/audit.csv").status_code == 403
    assert db.session.scalar(select(StaffUser).where(StaffUser.email == "x@gmina.pl")) is None


def test_admin_creates_and_manages_accounts(app: Flask) -> None:
    admin = client_as(app, "admin")
    listing = text_of(admin.get("/admin/accounts"))
    assert "admin@gmina.pl" in listing and "Nowe konto" in listing

    def create(**data: str):  # noqa: ANN202
        return admin.post("/admin/accounts", data={"action": "create", **data})

    assert "co najmniej 12 znaków" in text_of(create(email="new@gmina.pl", role="editor", password="short"))
    assert "Podaj poprawny adres e-mail." in text_of(create(email="not-an-email", role="editor",
                                                             password="x" * 12))
    assert create(email="new@gmina.pl", role="boss", password="x" * 12).status_code == 400
    assert create(email="Admin@Gmina.pl", role="editor", password="x" * 12).status_code == 400  # taken
    assert create(email=" New@Gmina.pl ", role="approver", password="temporary-pass-1").status_code == 302
    new = db.session.scalar(select(StaffUser).where(StaffUser.email == "new@gmina.pl"))
    assert new is not None and new.role == "approver" and new.active and new.must_change_password
    # The admin chose that password: the first sign-in asks for a new one before anything else.
    first = sign_in(app.test_client(), "new@gmina.pl", "temporary-pass-1")
    assert first.status_code == 302 and first.headers["Location"].startswith("/admin/account/new-password")

    def act(action: str, **data: str):  # noqa: ANN202
        return admin.post("/admin/accounts", data={"action": action, "account_id": new.id, **data})

    assert act("role", role="editor").status_code == 302
    assert act("disable").status_code == 302
    db.session.refresh(new)
    assert (new.role, new.active) == ("editor", False)
    assert act("enable").status_code == 302
    their_browser = app.test_client()
    assert sign_in(their_browser, "new@gmina.pl", "temporary-pass-1").status_code == 302
    new.totp_secret = "JBSWY3DPEHPK3PXP"
    db.session.commit()
    listing = text_of(admin.get("/admin/accounts"))
    assert "Wyloguj ze wszystkich urządzeń" in listing and "Wyłącz weryfikację dwuetapową" in listing
    assert act("sign_out").status_code == 302
    assert their_browser.get("/admin/account/new-password").status_code == 302  # signed out
    assert act("reset_totp").status_code == 302
    db.session.refresh(new)
    assert new.active and new.totp_secret is None

    rows = db.session.scalars(select(AuditEvent).where(AuditEvent.target == f"staff:{new.id}")
                              .where(AuditEvent.staff_email == "admin@gmina.pl")
                              .order_by(AuditEvent.id)).all()
    assert [r.action for r in rows] == ["account_created", "account_role_changed", "account_disabled",
                                        "account_enabled", "account_signed_out", "account_totp_reset"]
    assert rows[1].detail == {"email": "new@gmina.pl", "old": "approver", "new": "editor"}
    assert [r.flagged for r in rows] == [False] * 5 + [True]
    assert admin.post("/admin/accounts", data={"action": "explode", "account_id": new.id}).status_code == 400
    assert admin.post("/admin/accounts", data={"action": "disable", "account_id": 99999}).status_code == 404


def test_the_last_admin_cannot_lock_themselves_out(app: Flask) -> None:
    admin = client_as(app, "admin")
    me = db.session.scalar(select(StaffUser).where(StaffUser.email == "admin@gmina.pl"))
    for data in ({"action": "disable"}, {"action": "role", "role": "approver"},
                 {"action": "role", "role": "editor"}):
        refused = admin.post("/admin/accounts", data={**data, "account_id": me.id})
        assert refused.status_code == 400
        assert "ostatnie aktywne konto administratora" in text_of(refused)
    db.session.refresh(me)
    assert (me.role, me.active) == ("admin", True)
    # A disabled admin does not count.
    make_staff("old-admin@gmina.pl", "admin", active=False)
    assert admin.post("/admin/accounts", data={"action": "disable", "account_id": me.id}).status_code == 400

    # With a second active admin, stepping down is fine.
    make_staff("other@gmina.pl", "admin")
    assert admin.post("/admin/accounts", data={"action": "role", "role": "approver",
                                               "account_id": me.id}).status_code == 302
    db.session.refresh(me)
    assert me.role == "approver"
    assert admin.get("/admin/accounts").status_code == 403  # no longer an admin


# --- audit log ----------------------------------------------------------------------------

def test_audit_log_filters_pages_and_highlights_flagged_rows(
        admin_app: Callable[..., Flask]) -> None:  # noqa: F811
    app = admin_app(STAFF_LOCKOUT_ATTEMPTS=2)
    make_staff("ed@gmina.pl", "editor")
    for _ in range(2):
        # -> login_failed; login_throttled (flagged: the free tries are used up), login_failed
        sign_in(app.test_client(), "ed@gmina.pl", "wrong password!")
    admin = client_as(app, "admin")
    from staff import audit

    with app.test_request_context():
        for n in range(60):
            audit.record("filler", commit=False, n=n)
        db.session.commit()

    page = text_of(admin.get("/admin/audit"))
    assert "Zdarzeń: 64" in page and "Strona 1 z 2" in page
    assert page.index("n: 59") < page.index("n: 58")  # newest first
    assert 'class="flag flagged"' not in page  # the throttling is on page 2
    page2 = text_of(admin.get("/admin/audit?page=2"))
    assert 'class="flag flagged"' in page2 and "n: 0" in page2

    flagged = text_of(admin.get("/admin/audit?flagged=1"))
    assert "Zdarzeń: 1" in flagged
    assert re.search(r'<tr class="flag flagged">\s*<td>[^<]+<br><span class="muted"[^>]*>127.0.0.1</span>'
                     r'</td>\s*<td>ed<wbr>@gmina\.<wbr>pl</td>', flagged)
    by_action = text_of(admin.get("/admin/audit?action=login_failed"))
    assert "Zdarzeń: 2" in by_action and "nieudane logowanie" in by_action
    by_staff = text_of(admin.get("/admin/audit", query_string={"staff": "admin@gmina.pl"}))
    assert "Zdarzeń: 1" in by_staff and "logowanie" in by_staff
    assert 'href="/admin/audit.csv?staff=admin@gmina.pl"' in by_staff


def test_audit_log_reads_in_words_with_links_and_local_times(app: Flask) -> None:
    from staff import audit

    with app.test_request_context():
        audit.record("sent", actor="cli:kasia", target="alert:12", commit=False, queued={"sms": 120, "push": 3},
                     break_glass=True, via="cli")
        audit.record("approval_refused", actor="cli:kasia", target="alert:12", commit=False, reason="self_approval")
        audit.record("rejected", actor="cli:kasia", target="alert:12", commit=False, reason="Zła godzina")
        audit.record("scheduled", actor="cli:kasia", target="subscriber:7", commit=False,
                     send_at="2026-07-15 10:00:00+00:00")
        db.session.commit()
    admin = client_as(app, "admin")
    page = text_of(admin.get("/admin/audit"))
    assert '<a href="/admin/messages/12">Komunikat nr 12</a>' in page
    assert '<a href="/admin/subscribers/7">Mieszkaniec nr 7</a>' in page
    assert "wysłano do: SMS 120, powiadomienia 3" in page and "tryb awaryjny: tak" in page
    assert "<td>wysłanie<br>" in page and "<td>odmowa zatwierdzenia<br>" in page
    assert "przez: wiersz poleceń" in page
    assert "powód: nie można zatwierdzić własnego komunikatu" in page
    assert "powód: Zła godzina" in page  # a person's own words, as written
    assert "godzina wysyłki: 15 lip 2026, 12:00" in page  # Warsaw summer time, not UTC
    assert "{'sms'" not in page and "queued=" not in page and "self_approval" not in page.split("<option")[0]
    english = text_of(admin.get("/admin/audit?lang=en"))
    assert "sent to: SMS 120, notifications 3" in english and "Message no. 12" in english


def _recorded() -> tuple[set[str], set[str]]:
    """Every action and detail name the code passes to audit.record (read from the source)."""
    import ast
    from pathlib import Path

    actions: set[str] = set()
    keys: set[str] = set()
    root = Path(__file__).resolve().parents[1]
    for path in root.rglob("*.py"):
        if {".venv", "tests", "bench"} & set(path.relative_to(root).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "record"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "audit"):
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant):
                    actions.add(first.value)
                elif isinstance(first, ast.IfExp):
                    actions.update(c.value for c in (first.body, first.orelse) if isinstance(c, ast.Constant))
                keys.update(kw.arg for kw in node.keywords
                            if kw.arg and kw.arg not in ("staff", "actor", "target", "commit", "flagged"))
    return actions, keys


@pytest.mark.parametrize("lang", ["pl", "en"])
def test_every_audited_action_and_detail_has_a_name_in_words(app: Flask, lang: str) -> None:
    from admin import audit_view
    from subscribers.erasure import ErasureOutcome

    actions, keys = _recorded()
    assert {"sent", "approved", "login_failed", "sms_split_pinned"} <= actions and {"queued", "reason"} <= keys
    keys |= set(ErasureOutcome(0, 0, 0, 0, False).as_dict()) | {"detail_email"}  # passed as **kwargs
    with app.test_request_context(f"/admin/audit?lang={lang}"):
        # A name may equal its code ("approved" in English): what counts is that one exists.
        named = audit_view._phrase  # noqa: SLF001 - the lookup that never returns the key itself
        unnamed = sorted(a for a in actions
                         if not (named(f"audit_view.action.{a}", lang) or named(f"admin_people.action.{a}", lang)))
        assert unnamed == []
        assert sorted(k for k in keys if not named(f"audit_view.detail.{k}", lang)) == []


def test_audit_csv_export_is_filtered_safe_for_spreadsheets_and_audited(app: Flask) -> None:
    make_staff("ed@gmina.pl", "editor")
    # Whatever a stranger types or sends ends up in the log: here a formula as the User-Agent.
    app.test_client().post("/admin/login", data={"email": "=1+1@x.pl", "password": "whatever whatever"},
                           headers={"User-Agent": "=HYPERLINK(\"https://evil.example\")"})
    sign_in(app.test_client(), "ed@gmina.pl")
    admin = client_as(app, "admin")

    response = admin.get("/admin/audit.csv?action=login_failed")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="syrena-dziennik-')
    body = response.get_data(as_text=True)
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[0][:5] == ["id", "at_utc", "at_local", "staff", "action"]
    assert [r[4] for r in rows[1:]] == ["login_failed"]
    assert rows[1][8] == "'=HYPERLINK(\"https://evil.example\")"  # the apostrophe keeps it text
    assert json.loads(rows[1][9])["detail_email"] == "=1+1@x.pl"  # inside JSON: harmless

    body = admin.get("/admin/audit.csv").get_data(as_text=True)
    everything = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert [r[4] for r in everything[1:]] == ["audit_exported", "audit_exported", "login", "login",
                                                "login_failed"]
    for row in everything[1:]:
        assert all(not cell.startswith(("=", "+", "-", "@")) for cell in row)
    [exported, _] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "audit_exported")
                                       .order_by(AuditEvent.id)).all()
    assert exported.staff_email == "admin@gmina.pl"
    assert exported.detail == {"action_filter": "login_failed", "staff_filter": None, "flagged_only": False}


def test_every_people_page_renders_in_english(app: Flask) -> None:
    resident = seed_one()
    admin = client_as(app, "admin")
    expected = {"/admin/subscribers?lang=en": "Residents", f"/admin/subscribers/{resident.id}": "Resident no.",
                "/admin/accounts": "Staff accounts", "/admin/audit": "Audit log", "/admin/account": "My account",
                "/admin/account/totp": "Two-step verification"}
    for path, heading in expected.items():
        page = admin.get(path)
        assert page.status_code == 200, path
        assert f"<h1>{heading}" in text_of(page), path
