"""Residents' privacy under attack (issue 9): old links after erasure, the lost-link oracles,
numbers left in counters, IPv6 clients walking their /64.

Each test does what the attacker did, against the real app (the Flask test client, or a
live server reached by `requests`), and shows it no longer gets through.
"""

from __future__ import annotations

import re
import statistics
import time

import requests
from sqlalchemy import func, select, text

from db import db
from subscribers.links import make_manage_token
from subscribers.models import ACTIVE, RateBucket, SmsOutbox, Subscriber, Verification
from tests.conftest import last_code, send_queued_sms, sent_sms
from tests.parallel import serve  # noqa: F401 - a fixture

RESIDENT = "+48501234567"
STRANGER = "+48601234567"


def sign_up(client, twilio, phone: str) -> str:
    """Sign up and confirm through the API; returns the manage token."""
    body = {"phone": phone, "categories": ["weather"], "consent": True, "language": "pl"}
    assert client.post("/api/v1/subscriptions", json=body).status_code == 202
    response = client.post("/api/v1/subscriptions/verify", json={"phone": phone, "code": last_code(twilio, phone)})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["manage_url"].rsplit("/", 1)[1]


def resident(phone: str = RESIDENT) -> Subscriber:
    subscriber = Subscriber(phone=phone, status=ACTIVE, language="pl")
    db.session.add(subscriber)
    db.session.commit()
    return subscriber


# --- an old manage link after erasure -------------------------------------------------------

def test_an_erased_residents_old_link_opens_nothing_not_even_the_next_sign_up(client, twilio):
    old_token = sign_up(client, twilio, RESIDENT)
    old_id = int(old_token.split(".")[0])
    # The attacker erases themselves, keeping their link...
    assert client.post(f"/m/{old_token}/erase", data={"confirm": "yes"}).status_code == 302
    assert db.session.get(Subscriber, old_id) is None
    # ...and the next resident signs up (on SQLite the freed id used to be handed out again).
    new_token = sign_up(client, twilio, "+48691234567")
    new_id = int(new_token.split(".")[0])
    assert new_id > old_id
    for path in (f"/m/{old_token}", f"/m/{old_token}/data.json", f"/api/v1/subscriptions/{old_token}"):
        assert client.get(path).status_code == 404, path
    # Nor does the old MAC on the new id, nor the old id's shape of link.
    mac = old_token.split(".")[1]
    assert client.get(f"/m/{new_id}.{mac}").status_code == 404
    assert client.post(f"/m/{old_token}/erase", data={"confirm": "yes"}).status_code == 404
    assert db.session.get(Subscriber, new_id) is not None


def test_erasure_kills_every_link_by_destroying_the_residents_secret(client, twilio):
    token = sign_up(client, twilio, RESIDENT)
    subscriber = db.session.scalar(select(Subscriber))
    # What erasure does first (subscribers/erasure.py): even a row left behind opens nothing.
    subscriber.link_secret = None
    db.session.commit()
    assert client.get(f"/m/{token}").status_code == 404
    assert client.get(f"/api/v1/subscriptions/{token}").status_code == 404


def test_ids_are_never_handed_out_twice(app):
    first = resident("+48501230001")
    second = resident("+48501230002")
    db.session.delete(second)  # the newest row: SQLite without AUTOINCREMENT reuses its id
    db.session.commit()
    third = resident("+48501230003")
    assert third.id > second.id > first.id
    if db.engine.dialect.name == "sqlite":
        sql = db.session.execute(text("SELECT sql FROM sqlite_master WHERE name = 'subscriber'")).scalar()
        assert "AUTOINCREMENT" in sql


def test_a_manage_link_stays_short_enough_for_an_sms(app):
    subscriber = resident()
    assert len(make_manage_token(subscriber)) <= 30


# --- the lost-link flow answers a resident and a stranger alike -----------------------------

def answers(client, url: str, phone: str, n: int, **extra) -> list[tuple[int, dict, str | None]]:
    out = []
    for _ in range(n):
        response = client.post(url, json={"phone": phone, **extra})
        body = dict(response.get_json())
        out.append((response.status_code, body, response.headers.get("Retry-After")))
    return out


def alike(a: list, b: list) -> None:
    """The same answers, apart from the number itself (echoed back to the asker) and a
    Retry-After that may tick a second between the two runs."""
    assert len(a) == len(b)
    for (status_a, body_a, retry_a), (status_b, body_b, retry_b) in zip(a, b):
        assert status_a == status_b, (a, b)
        assert set(body_a) == set(body_b), (body_a, body_b)
        for key in body_a:
            if key == "phone":
                continue
            if key in ("retry_after", "message") and "retry_after" in body_a:
                continue
            assert body_a[key] == body_b[key], (key, body_a, body_b)
        assert (retry_a is None) == (retry_b is None)
        if retry_a:
            assert abs(int(retry_a) - int(retry_b)) <= 2
            assert abs(body_a["retry_after"] - body_b["retry_after"]) <= 2


def test_asking_for_a_lost_link_gives_the_same_status_sequence_for_a_resident_and_a_stranger(make_app, twilio):
    client = make_app(VERIFY_RESEND_BASE_SECONDS=0, RATE_LIMIT_CODES_PER_IP=100).test_client()
    resident()
    known = answers(client, "/api/v1/subscriptions/manage-code", RESIDENT, 5)
    unknown = answers(client, "/api/v1/subscriptions/manage-code", STRANGER, 5)
    # Used to be 202 x4 for a resident (the resend wait spared the limit) and 429 on the 4th
    # for a stranger. Now both take the number's limit (3 an hour) alike.
    assert [a[0] for a in known] == [202, 202, 202, 429, 429]
    alike(known, unknown)
    assert {m["To"] for m in sent_sms(twilio)} == {RESIDENT}  # only the resident is texted


def test_within_the_resend_wait_a_resident_and_a_stranger_get_the_same_answers(client, twilio):
    resident()
    known = answers(client, "/api/v1/subscriptions/manage-code", RESIDENT, 5)
    unknown = answers(client, "/api/v1/subscriptions/manage-code", STRANGER, 5)
    assert [a[0] for a in known] == [202] * 5
    alike(known, unknown)
    assert len(sent_sms(twilio)) == 1


def test_wrong_codes_count_down_the_same_for_a_resident_and_a_stranger(client, twilio):
    resident()
    for phone in (RESIDENT, STRANGER):
        assert client.post("/api/v1/subscriptions/manage-code", json={"phone": phone}).status_code == 202
    send_queued_sms()
    known = answers(client, "/api/v1/subscriptions/verify", RESIDENT, 7, code="000000")
    unknown = answers(client, "/api/v1/subscriptions/verify", STRANGER, 7, code="000000")
    errors = [(body["error"], body["message"]) for _, body, _ in known]
    assert [e for e, _ in errors] == ["code_invalid"] * 4 + ["code_locked"] * 3
    assert errors[0][1].endswith("Pozostałe próby: 4.")
    alike(known, unknown)


def test_a_resident_whose_number_twilio_refuses_still_looks_like_a_stranger(client, twilio):
    resident()
    twilio.fail_number(RESIDENT, 21614)  # the text to the resident cannot go out
    runs = []
    for phone in (RESIDENT, STRANGER):
        run = answers(client, "/api/v1/subscriptions/manage-code", phone, 2)
        send_queued_sms()  # the resident's text fails at Twilio; the stranger has none
        run += answers(client, "/api/v1/subscriptions/verify", phone, 6, code="123456")
        runs.append(run)
    # Error codes that only a resident could get (phone_unreachable, sms_unavailable) are gone.
    seen = {body.get("error") for _, body, _ in runs[0]}
    assert seen <= {None, "code_invalid", "code_locked"}
    alike(*runs)


def test_a_twilio_outage_looks_the_same_for_a_resident_and_a_stranger(client, twilio):
    resident()
    twilio.fail_next(10, status=500)
    known = answers(client, "/api/v1/subscriptions/manage-code", RESIDENT, 1)
    send_queued_sms()
    unknown = answers(client, "/api/v1/subscriptions/manage-code", STRANGER, 1)
    send_queued_sms()
    alike(known, unknown)
    assert known[0][0] == 202


def test_the_lost_link_page_shows_a_resident_and_a_stranger_the_same_pages(make_app, twilio):
    app = make_app(VERIFY_RESEND_BASE_SECONDS=0, RATE_LIMIT_CODES_PER_IP=100)
    resident()
    seen = []
    for phone in ("501 234 567", "601 234 567"):
        client = app.test_client()
        statuses = [client.post("/access", data={"phone": phone}).status_code for _ in range(5)]
        send_queued_sms()
        tries = []
        for _ in range(6):
            response = client.post("/verify", data={"code": "000000"})
            # What the page says about the code (the number itself is shown masked, so differs).
            said = re.findall(r'class="[^"]*error[^"]*"[^>]*>([^<]+)<', response.get_data(as_text=True))
            tries.append((response.status_code, said))
        seen.append((statuses, tries))
    assert seen[0] == seen[1]
    assert seen[0][0] == [302, 302, 302, 429, 429]
    assert [status for status, _ in seen[0][1]] == [400] * 6 and all(said for _, said in seen[0][1])


def test_a_lost_link_request_takes_as_long_for_a_resident_as_for_a_stranger(serve, twilio):
    base = serve(RATE_LIMIT_CODES_PER_IP=1000, RATE_LIMIT_CODES_PER_PREFIX=1000)
    twilio.delay(0.3)  # a real provider takes this long; a request must never wait for it
    residents = [f"+4850123{n:04d}" for n in range(10)]
    strangers = [f"+4860123{n:04d}" for n in range(10)]
    for phone in residents:
        resident(phone)
    timings: dict[str, list[float]] = {"resident": [], "stranger": []}
    with requests.Session() as http:
        http.post(f"{base}/api/v1/subscriptions/manage-code", json={"phone": "+48701230000"}, timeout=10)  # warm up
        for known, unknown in zip(residents, strangers):
            for kind, phone in (("resident", known), ("stranger", unknown)):
                started = time.perf_counter()
                response = http.post(f"{base}/api/v1/subscriptions/manage-code", json={"phone": phone}, timeout=10)
                timings[kind].append(time.perf_counter() - started)
                assert response.status_code == 202
    known_ms, unknown_ms = (statistics.median(timings[k]) * 1000 for k in ("resident", "stranger"))
    # Was 297 ms against 15 ms. Now neither waits for the provider.
    assert known_ms < 240, timings
    assert abs(known_ms - unknown_ms) < 50, (known_ms, unknown_ms)
    twilio.delay(0)
    assert db.session.scalar(select(func.count()).select_from(SmsOutbox)) == len(residents)


# --- what is kept about a number ------------------------------------------------------------

def test_counters_and_codes_never_hold_the_number(client, twilio):
    token = sign_up(client, twilio, RESIDENT)
    client.post("/api/v1/subscriptions/manage-code", json={"phone": STRANGER})
    client.post(f"/m/{token}/erase", data={"confirm": "yes"})
    digits = ("501234567", "601234567", "5012", "6012")
    for key in db.session.scalars(select(RateBucket.key)):
        assert not any(d in key for d in digits), key
    for row in db.session.execute(select(Verification.phone_key, Verification.payload)):
        assert not any(d in str(row) for d in digits), row
    assert db.session.scalar(select(func.count()).select_from(SmsOutbox)) == 0  # sent texts are gone


def test_ipv6_clients_are_limited_per_64_network(make_app, twilio):
    client = make_app(RATE_LIMIT_CODES_PER_IP=1, RATE_LIMIT_CODES_PER_PREFIX=100).test_client()

    def ask(phone: str, ip: str) -> int:
        return client.post("/api/v1/subscriptions/manage-code", json={"phone": phone},
                           environ_base={"REMOTE_ADDR": ip}).status_code

    assert ask("+48501230001", "2001:db8:1:2::1") == 202
    # The next address in the same /64 (one home, one phone network) is the same client.
    assert ask("+48501230002", "2001:db8:1:2:ffff:ffff:ffff:fffe") == 429
    assert ask("+48501230003", "2001:db8:1:3::1") == 202  # another network
    assert ask("+48501230004", "::ffff:192.0.2.7") == 202
    assert ask("+48501230005", "192.0.2.7") == 429  # the same IPv4 client, mapped or not


def test_the_scheduler_sends_queued_codes_every_second(make_app, twilio):
    import scheduler

    app = make_app()
    client = app.test_client()
    resident()
    job = next(j for j in scheduler.jobs(app) if j.id == "sms_outbox")
    assert job.seconds <= 1
    assert client.post("/api/v1/subscriptions/manage-code", json={"phone": RESIDENT}).status_code == 202
    assert twilio.messages == []  # the request only queued it
    assert job.func() == "sent 1 queued texts to residents"
    assert [m["To"] for m in twilio.messages] == [RESIDENT]


def test_a_number_that_once_replied_stop_is_told_like_any_unreachable_number(client, twilio):
    """Twilio's 21610 means the number once texted STOP to the gmina: a former resident.
    A distinct answer would tell whoever types a stranger's number exactly that."""
    from subscribers.outbox import _error_code
    from providers.sms import ProviderError

    opted_out = ProviderError("blocked", permanent=True, code=21610, reason="opted_out")
    invalid = ProviderError("invalid", permanent=True, code=21211, reason="invalid_number")
    assert _error_code(opted_out) == _error_code(invalid) == "phone_unreachable"
