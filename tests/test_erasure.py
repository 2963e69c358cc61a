"""Erasure leaves nothing behind: not in our tables, not in SQLite's files, not at Twilio
(subscribers/erasure.py); unconfirmed sign-ups go after 24 hours."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from flask import current_app
from sqlalchemy import event, func, make_url, select, update

import scheduler
from alerts import publish as lifecycle
from db import db, utcnow
from providers.sms import SmsMessage
from staff.audit import AuditEvent
from subscribers import erasure
from subscribers.erasure import ProviderDeletion
from subscribers.inbound_guard import HintReply
from subscribers.models import PENDING, ConsentEvent, InboundSms, Subscriber, Verification
from subscribers.ratelimit import number_key
from subscribers.service import Origin, keyword_signup
from tests.conftest import last_code, send_queued_sms
from tests.test_admin_auth import admin_app, make_staff, sign_in, text_of  # noqa: F401
from tests.test_delivery import alert, drain
from tests.test_inbound_sms import text_us
from tests.test_public_pages import PHONE, page, subscribe_and_verify, subscribe_form, text


def finish(twilio, status="delivered", except_=()):
    """Let Twilio finish every message (only finished ones can be deleted)."""
    for message in twilio.messages:
        if message["sid"] not in except_:
            twilio.set_status(message["sid"], status)


def at_twilio(twilio, phone=PHONE):
    return [m["sid"] for m in twilio.messages if phone in (m["To"], m["From"])]


def pending_deletions():
    db.session.expire_all()
    return list(db.session.scalars(select(ProviderDeletion.provider_ref)))


def make_due():
    db.session.execute(update(ProviderDeletion).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def send_sms(phone, body="Ostrzezenie"):
    return current_app.extensions["sms"].send(SmsMessage(to=phone, body=body)).provider_ref


# --- at the provider --------------------------------------------------------------------------

def test_erasing_from_the_residents_page_deletes_their_sms_at_twilio_and_says_what_is_left(app, client, twilio):
    token = subscribe_and_verify(client, twilio)  # a code and a confirmation with the link
    send_queued_sms()
    resident = db.session.scalar(select(Subscriber).where(Subscriber.phone == PHONE))
    a = alert(title="Wichura")
    lifecycle.publish(a)
    drain(app)
    [warning] = [m["sid"] for m in twilio.messages if m["To"] == PHONE and "Burze" in m["Body"]]
    inbound = twilio.receive(PHONE, "Dziekuje za info")  # what they texted us, kept by Twilio too
    text_us(client, twilio, "Dziekuje za info", sid=inbound)
    assert len(at_twilio(twilio)) == 4
    finish(twilio, except_={warning})  # the alert is still on its way to the handset

    response = client.post(f"/m/{token}/erase", data={"confirm": "yes"})
    assert response.status_code == 302 and response.headers["Location"] == "/erased"
    shown = page(client.get("/erased"))

    assert at_twilio(twilio) == [warning]
    assert len(twilio.deleted) == 3 and inbound in twilio.deleted
    assert pending_deletions() == [warning]
    assert text("page.erased.provider_deleted", n=3) in shown.text
    assert text("page.erased.provider_pending", n=1, days=erasure.PROVIDER_DELETION_GIVE_UP.days) in shown.text
    assert db.session.get(Subscriber, resident.id) is None
    # Shown once: the counts are not kept in the browser.
    assert text("page.erased.provider_title") not in page(client.get("/erased")).text

    # The scheduler's job asks again once the message is final, and then nothing is left.
    twilio.set_status(warning, "delivered")
    make_due()
    assert "1 deleted" in scheduler.privacy()
    assert at_twilio(twilio) == [] and pending_deletions() == []


def test_a_message_twilio_has_not_finished_is_asked_again_later_not_hammered(app, twilio):
    keyword_signup(PHONE, None, Origin("sms"))
    sid = send_sms(PHONE)  # queued: Twilio answers 20009 to a DELETE
    outcome = erasure.erase(db.session.scalar(select(Subscriber)))
    assert (outcome.deleted, outcome.in_flight, outcome.failed) == (0, 1, 0)
    assert erasure.retry_provider_deletions() == (0, 0, 0, 0)  # not due yet
    make_due()
    assert erasure.retry_provider_deletions() == (0, 1, 0, 0)
    [row] = db.session.scalars(select(ProviderDeletion)).all()
    assert (row.provider_ref, row.attempts) == (sid, 2)


def test_a_twilio_outage_stops_after_one_failure_and_housekeeping_finishes_the_job(app, runner, twilio):
    keyword_signup(PHONE, None, Origin("sms"))
    sids = {send_sms(PHONE, f"Ostrzezenie {n}") for n in range(3)}
    finish(twilio)
    twilio.fail_deletes(503)
    before = twilio.request_count

    result = runner.invoke(args=["subscribers", "erase", PHONE, "--yes"])

    assert result.exit_code == 0, result.output
    assert ("at the SMS provider: 0 deleted, 0 still in flight, 3 failed (retried automatically)"
            in result.output)
    assert twilio.request_count - before == 2  # the listing, then one DELETE: no point in more
    assert set(pending_deletions()) == sids
    twilio.fail_deletes(0)
    make_due()
    assert erasure.retry_provider_deletions() == (3, 0, 0, 0)
    assert at_twilio(twilio) == [] and pending_deletions() == []


def test_when_twilio_cannot_list_the_numbers_messages_the_resident_and_staff_are_told(app, client, runner,
                                                                                      twilio):
    token = subscribe_and_verify(client, twilio)
    send_queued_sms()
    finish(twilio)
    twilio.fail_lists(503)
    assert client.post(f"/m/{token}/erase", data={"confirm": "yes"}).status_code == 302
    assert text("page.erased.provider_not_listed") in page(client.get("/erased")).text
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0  # erased all the same
    assert len(at_twilio(twilio)) == 2  # the code and the confirmation: we never knew their SIDs

    keyword_signup(PHONE, None, Origin("sms"))
    result = runner.invoke(args=["subscribers", "erase", PHONE, "--yes"])
    assert result.exit_code == 0
    assert "the provider could not list the messages sent to the number" in result.output
    assert "Delete the messages to this number in the provider's console" in result.output


def test_a_resident_with_many_messages_is_erased_at_once_and_the_scheduler_deletes_the_rest(make_app, twilio):
    make_app(ERASURE_PROVIDER_SECONDS=0)  # the page request's time for the provider is up at once
    keyword_signup(PHONE, None, Origin("sms"))
    sids = {send_sms(PHONE, f"Ostrzezenie {n}") for n in range(3)}
    finish(twilio)
    outcome = erasure.erase(db.session.scalar(select(Subscriber)))
    assert (outcome.deleted, outcome.queued, outcome.pending) == (0, 3, 3)
    assert "3 queued" in outcome.summary()
    assert set(pending_deletions()) == sids and twilio.deleted == []
    assert "3 deleted" in scheduler.privacy()  # due at once: no waiting like for a refusal
    assert at_twilio(twilio) == []


def test_messages_nobody_could_delete_for_two_weeks_are_given_up_with_a_warning(app, twilio, caplog):
    keyword_signup(PHONE, None, Origin("sms"))
    send_sms(PHONE)
    erasure.erase(db.session.scalar(select(Subscriber)))
    later = utcnow() + erasure.PROVIDER_DELETION_GIVE_UP + timedelta(hours=1)
    assert erasure.retry_provider_deletions(now=later) == (0, 0, 0, 1)
    assert pending_deletions() == []
    assert "delete them in the provider's console" in caplog.text


def test_the_staff_screen_shows_what_was_deleted_at_twilio(admin_app, twilio):  # noqa: F811
    app = admin_app()
    keyword_signup(PHONE, None, Origin("sms"))
    resident = db.session.scalar(select(Subscriber))
    send_sms(PHONE)
    in_flight = send_sms(PHONE)
    finish(twilio, except_={in_flight})
    make_staff("admin@gmina.pl", "admin")
    admin = app.test_client()
    assert sign_in(admin, "admin@gmina.pl").status_code == 302

    done = admin.post(f"/admin/subscribers/{resident.id}/erase", data={"confirm": "yes"}, follow_redirects=True)

    shown = text_of(done)
    assert text("admin_people.flash.erased_provider", deleted=1, in_flight=1, failed=0, queued=0) in shown
    assert at_twilio(twilio) == [in_flight]
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "subscriber_erased")) == 1


# --- in the database files --------------------------------------------------------------------

def holds(path: Path, needle: str) -> bool:
    """Whether the file's bytes contain `needle`, read by another process: closing a file
    descriptor of the database in this process would drop every POSIX lock SQLite holds on
    it here ("How to corrupt an SQLite database", 2.2)."""
    if not path.exists():
        return False
    found = subprocess.run([sys.executable, "-c", "import sys; sys.exit(0 if sys.argv[2].encode() in "
                            "open(sys.argv[1], 'rb').read() else 1)", str(path), needle], timeout=60)
    return found.returncode == 0


UNIQUE_PHONE = "+48519283746"  # used by no other test, so no earlier test left it in a free page


@pytest.fixture
def sqlite_keeping_deleted_bytes(app, database_url):
    """SQLite as most builds ship it: deleted rows stay in free pages (Debian's build zeroes
    them by default, which would hide a missing secure_delete)."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's files; PostgreSQL's are not readable by the app's users")

    def keep_bytes(dbapi_connection, _record):  # noqa: ANN001
        dbapi_connection.execute("PRAGMA secure_delete=OFF")

    db.session.remove()
    db.engine.dispose()
    event.listen(db.engine, "connect", keep_bytes)
    yield
    db.session.remove()
    event.remove(db.engine, "connect", keep_bytes)
    db.engine.dispose()


def test_after_an_erasure_the_sqlite_files_hold_no_trace_of_the_number(app, client, twilio, database_url,
                                                                        sqlite_keeping_deleted_bytes):
    keyword_signup(UNIQUE_PHONE, None, Origin("sms", ip="203.0.113.77"))
    text_us(client, twilio, "Czy jutro bedzie burza?", phone=UNIQUE_PHONE)
    text_us(client, twilio, "STOP", phone=UNIQUE_PHONE)
    files = [Path(make_url(database_url).database)]
    files.append(files[0].with_name(files[0].name + "-wal"))
    needle = UNIQUE_PHONE[3:]
    assert any(holds(f, needle) for f in files)

    erasure.erase(db.session.scalar(select(Subscriber).where(Subscriber.phone == UNIQUE_PHONE)))
    db.session.remove()

    for f in files:
        assert not holds(f, needle), f"{f.name} still holds the number"
        assert not holds(f, "203.0.113.77"), f"{f.name} still holds the IP"
    assert not files[1].exists() or files[1].stat().st_size == 0  # the WAL was truncated


def test_erasure_forgets_the_numbers_hint_window(client, twilio):
    keyword_signup(PHONE, None, Origin("sms"))
    text_us(client, twilio, "Dzien dobry")
    assert db.session.scalar(select(func.count()).select_from(HintReply)) == 1
    erasure.erase(db.session.scalar(select(Subscriber)))
    assert db.session.scalar(select(func.count()).select_from(HintReply)) == 0
    assert db.session.scalar(select(func.count()).select_from(InboundSms)) == 0


# --- unconfirmed sign-ups -------------------------------------------------------------------

def backdate(subscriber_id, hours):
    then = utcnow() - timedelta(hours=hours)
    db.session.execute(update(Subscriber).where(Subscriber.id == subscriber_id).values(created_at=then))
    db.session.execute(update(Verification).where(Verification.subscriber_id == subscriber_id)
                       .values(created_at=then))
    db.session.commit()


def test_sign_ups_never_confirmed_are_deleted_after_24_hours_with_their_codes_at_twilio(app, client, runner,
                                                                                         twilio):
    assert client.post("/subscribe", data=subscribe_form()).status_code == 302
    last_code(twilio, PHONE)
    stale = db.session.scalar(select(Subscriber).where(Subscriber.phone == PHONE))
    backdate(stale.id, 25)
    # Also unconfirmed, but 23 hours old; and one whose latest code went out an hour ago.
    fresh = Subscriber(phone="+48601000001", status=PENDING, created_at=utcnow() - timedelta(hours=23))
    retyping = Subscriber(phone="+48601000002", status=PENDING, created_at=utcnow() - timedelta(hours=30))
    db.session.add_all([fresh, retyping])
    db.session.flush()
    db.session.add(Verification(subscriber_id=retyping.id, phone_key=number_key(retyping.phone),
                                purpose="subscribe", code_hash="x",
                                created_at=utcnow() - timedelta(hours=1), expires_at=utcnow()))
    # A resident who confirmed long ago is not touched.
    keyword_signup("+48601000003", None, Origin("sms"))
    db.session.execute(update(Subscriber).where(Subscriber.phone == "+48601000003")
                       .values(created_at=utcnow() - timedelta(days=90)))
    db.session.commit()
    finish(twilio)

    assert scheduler.privacy().startswith("purged 1 unconfirmed sign-ups; at the SMS provider 0 deleted")

    db.session.expire_all()
    phones = set(db.session.scalars(select(Subscriber.phone)))
    assert phones == {"+48601000001", "+48601000002", "+48601000003"}
    assert db.session.scalar(select(func.count()).select_from(ConsentEvent)
                             .where(ConsentEvent.phone == PHONE)) == 0
    assert at_twilio(twilio) == []  # the code SMS is gone at Twilio too
    result = runner.invoke(args=["subscribers", "purge-unconfirmed"])
    assert result.exit_code == 0 and "Deleted 0 unconfirmed sign-ups older than 24 hours." in result.output


def test_a_code_confirmed_just_before_the_purge_keeps_the_resident(app, client, twilio):
    assert client.post("/subscribe", data=subscribe_form()).status_code == 302
    resident = db.session.scalar(select(Subscriber).where(Subscriber.phone == PHONE))
    code = last_code(twilio, PHONE)
    backdate(resident.id, 25)
    cutoff = utcnow() - erasure.UNCONFIRMED_SIGNUP_TTL
    db.session.execute(update(Verification).values(expires_at=utcnow() + timedelta(minutes=5)))
    db.session.commit()
    # The purge picked the row, then the resident typed the code before its DELETE ran.
    picked = db.session.get(Subscriber, resident.id)
    assert client.post("/verify", data={"code": code}).status_code == 302
    assert erasure._erase(picked, unconfirmed_before=cutoff) is None
    db.session.expire_all()
    assert db.session.get(Subscriber, resident.id).status == "active"


def test_a_double_click_on_erase_erases_once_and_answers_every_click(live_server, twilio):
    import re
    import threading

    import requests

    keyword_signup(PHONE, None, Origin("sms"))
    send_sms(PHONE)
    finish(twilio)
    from subscribers.links import manage_url
    url = manage_url(db.session.scalar(select(Subscriber)))
    browser = requests.Session()
    browser.trust_env = False
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(url, timeout=30).text).group(1)
    barrier = threading.Barrier(5)
    codes: list[int] = []

    def click() -> None:
        barrier.wait()
        codes.append(browser.post(f"{url}/erase", data={"confirm": "yes", "csrf_token": csrf},
                                  allow_redirects=False, timeout=60).status_code)

    threads = [threading.Thread(target=click) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Each click is told it worked, or (arriving after the erasure) that the link is dead;
    # none gets a 500, and the provider is asked once per message.
    assert set(codes) <= {302, 404} and 302 in codes, codes
    assert count_rows(Subscriber) == 0 and at_twilio(twilio) == [] and len(twilio.deleted) == 1


def count_rows(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def test_the_privacy_page_says_what_erasure_and_the_purge_do(client):
    shown = page(client.get("/privacy")).text
    assert text("page.privacy.retention_unconfirmed") in shown
    assert text("page.privacy.retention_provider") in shown


def test_erasure_also_drops_the_numbers_codes_and_any_text_still_queued_to_it(client, twilio):
    from subscribers.models import SmsOutbox

    subscribe_and_verify(client, twilio)
    # A lost-link code asked for just before leaving: its row and its queued SMS are pending.
    assert client.post("/access", data={"phone": "501 234 567"}).status_code == 302
    assert db.session.scalar(select(func.count()).select_from(SmsOutbox)) >= 1
    erasure.erase(db.session.scalar(select(Subscriber)))
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Verification)
                             .where(Verification.phone_key == number_key(PHONE))) == 0
    assert db.session.scalar(select(func.count()).select_from(SmsOutbox)) == 0


def test_erasure_forgets_provider_error_texts_that_could_quote_the_number(app, client, twilio):
    from alerts.models import Delivery, DeliveryEvent

    subscribe_and_verify(client, twilio)
    twilio.fail_number(PHONE, 21211)  # "The 'To' number +48... is not a valid phone number"
    lifecycle.publish(alert(title="Wichura"))
    drain(app)
    resident = db.session.scalar(select(Subscriber).where(Subscriber.phone == PHONE))
    erasure.erase(resident)
    db.session.expire_all()
    assert db.session.scalars(select(Delivery.error)).all() == [None]
    assert [d for d in db.session.scalars(select(DeliveryEvent.detail)) if d] == []
    # The anonymous count keeps what went wrong, as a code.
    assert db.session.scalars(select(Delivery.error_code)).all() == ["21211"]
