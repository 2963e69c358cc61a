"""Delivery that outlives outages: retries while the alert is valid, STOP honoured mid-send,
reconciliation that tolerates a provider clock off ours, and claims that are leases.

Everything goes through the real twilio SDK to the fake Twilio on 127.0.0.1; the crash and
two-dispatcher drills run real `flask dispatch` processes.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from alerts import publish as lifecycle
from alerts.dispatcher import Dispatcher
from alerts.models import Alert, Delivery, DeliveryEvent
from db import db, utcnow
from population import phone_for, seed
from subscribers.models import Subscriber
from tests.test_crash_safety import dispatcher_env, finish, start_dispatcher, wait_until
from tests.test_delivery import alert, callback
from tests.test_inbound_sms import reply_of, text_us

UNSETTLED = ("pending", "sending", "uncertain")


def unsettled() -> int:
    db.session.rollback()  # a fresh snapshot: the dispatcher commits in its own session
    return db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status.in_(UNSETTLED)))


def run_until_settled(dispatcher: Dispatcher, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while unsettled():
        assert time.monotonic() < deadline, "deliveries still unsettled"
        if not dispatcher.run_once():
            time.sleep(0.05)


def bodies_to(twilio, body_start: str) -> Counter:
    return Counter(m["To"] for m in twilio.messages if m["Body"].startswith(body_start))


def test_a_provider_outage_during_a_send_delays_the_warning_but_loses_none_and_sends_nothing_late(app, twilio):
    seed(60, categories={"weather": 1}, areas=["KOZY"])
    lasting = alert(title="Burza", expires_in=timedelta(hours=2))
    lifecycle.publish(lasting)
    brief = alert(title="Wichura", expires_in=timedelta(seconds=2))
    lifecycle.publish(brief)
    app.config.update(SMS_RATE_PER_SECOND=0, DISPATCH_BATCH_SIZE=20, DISPATCH_RETRY_BASE_SECONDS=0.2,
                      DISPATCH_RETRY_MAX_SECONDS=0.5, DISPATCH_MAX_ATTEMPTS=3)
    dispatcher = Dispatcher(app)
    try:
        assert dispatcher.run_once() == 20  # the first batch goes out, then Twilio answers 500
        twilio.outage(3.0, status=500)
        outage_ends = utcnow() + timedelta(seconds=3)
        run_until_settled(dispatcher, 15)
    finally:
        dispatcher.close()

    burza = bodies_to(twilio, "Gmina Kozy: Burza")
    assert burza == Counter({phone_for(n): 1 for n in range(60)})
    assert sum(1 for m in twilio.messages if m["created_at"] >= outage_ends - timedelta(seconds=0.2)) >= 40
    # The short alert ended during the outage: nothing of it went out, late or otherwise.
    assert bodies_to(twilio, "Gmina Kozy: Wichura") == Counter()
    statuses = dict(db.session.execute(select(Delivery.alert_id, func.count()).where(Delivery.status == "sent")
                                       .group_by(Delivery.alert_id)).all())
    assert statuses == {lasting.id: 60}
    assert set(db.session.scalars(select(Delivery.status).where(Delivery.alert_id == brief.id))) == {"expired"}
    # Retried well past DISPATCH_MAX_ATTEMPTS, which no longer fails a transient error.
    assert db.session.scalar(select(func.max(Delivery.attempts)).where(Delivery.alert_id == lasting.id)) > 3


def test_a_429_is_retried_after_its_retry_after_and_does_not_count_as_an_attempt(app, twilio):
    seed(1, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    twilio.fail_next(5, status=429, retry_after=0.3)
    app.config.update(SMS_RATE_PER_SECOND=0, DISPATCH_RETRY_BASE_SECONDS=0.01, DISPATCH_MAX_ATTEMPTS=1)
    dispatcher = Dispatcher(app)
    try:
        assert dispatcher.run_once() == 1
        delivery = db.session.scalar(select(Delivery))
        assert delivery.status == "pending" and delivery.attempts == 0
        assert delivery.next_attempt_at - delivery.updated_at >= timedelta(seconds=0.29)  # Retry-After honoured
        run_until_settled(dispatcher, 10)
    finally:
        dispatcher.close()
    delivery = db.session.scalar(select(Delivery))
    assert delivery.status == "sent" and delivery.attempts == 1
    assert len(twilio.messages) == 1


def test_an_alert_without_an_end_is_not_sent_past_the_maximum_age(app, twilio):
    seed(2, categories={"weather": 1}, areas=["KOZY"])
    a = alert(expires_in=None)
    lifecycle.publish(a)
    db.session.execute(update(Alert).where(Alert.id == a.id).values(published_at=utcnow() - timedelta(hours=2)))
    db.session.commit()
    app.config.update(SMS_RATE_PER_SECOND=0, DISPATCH_MAX_AGE_HOURS=1)
    dispatcher = Dispatcher(app)
    try:
        assert dispatcher.run_once() == 2
    finally:
        dispatcher.close()
    assert twilio.messages == []
    assert set(db.session.scalars(select(Delivery.status))) == {"expired"}


def test_a_resident_who_replies_stop_during_a_long_send_gets_nothing_after_it(app, client, twilio):
    seed(1000, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    app.config.update(SMS_RATE_PER_SECOND=150, DISPATCH_BATCH_SIZE=200)
    dispatcher = Dispatcher(app)
    errors: list[BaseException] = []

    def send_all() -> None:
        try:
            while dispatcher.run_once():
                pass
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    sender = threading.Thread(target=send_all)
    sender.start()
    # 399 and 398 are in the batch already claimed (the first at its end), 700 and 999 not.
    leaving = [399, 398, 700, 999]
    confirmed = {}
    try:
        wait_until(lambda: len(twilio.messages) >= 201, 30, "the second batch under way")
        db.session.rollback()
        claimed = dict(db.session.execute(
            select(Subscriber.phone, Delivery.status).join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Subscriber.phone.in_([phone_for(n) for n in leaving]))).all())
        assert claimed[phone_for(399)] == claimed[phone_for(398)] == "sending", claimed
        for n in leaving:
            assert reply_of(text_us(client, twilio, "STOP", phone=phone_for(n))) is not None
            confirmed[phone_for(n)] = utcnow()  # the opt-out is committed: its response came back
    finally:
        sender.join(60)
        dispatcher.close()
    assert not errors and not sender.is_alive()
    # The check before each call reads residents at most DISPATCH_OPTOUT_CHECK_SECONDS (0.2 s)
    # old (alerts/optout.py): a message may leave that long after the opt-out was committed,
    # seconds before the confirmation SMS can reach the phone; none may leave later.
    grace = timedelta(seconds=app.config["DISPATCH_OPTOUT_CHECK_SECONDS"])
    late = [m for m in twilio.messages if m["To"] in confirmed and m["created_at"] >= confirmed[m["To"]] + grace]
    assert late == [], [(m["To"], m["created_at"], confirmed[m["To"]]) for m in late]
    # Claimed 1.3 s of sending before its turn, the first to leave got nothing at all.
    assert [m for m in twilio.messages if m["To"] == phone_for(399)] == []
    left_in_time = {p for p in confirmed if not any(m["To"] == p for m in twilio.messages)}
    assert phone_for(700) in left_in_time and phone_for(999) in left_in_time
    per_phone = Counter(m["To"] for m in twilio.messages)
    assert len(per_phone) == 1000 - len(left_in_time) and max(per_phone.values()) == 1
    db.session.rollback()
    skipped = db.session.scalars(select(Delivery.error).join(Subscriber).where(
        Subscriber.phone.in_(left_in_time))).all()
    assert skipped == ["resident left"] * len(left_in_time)


@pytest.mark.slow
def test_a_provider_clock_three_minutes_behind_and_a_kill_9_text_nobody_twice(app, twilio, tmp_path):
    seed(1500, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert(level=2))
    twilio.clock_offset(-180)
    twilio.delay(0.02)
    env = dispatcher_env(app, twilio, DISPATCH_CONCURRENCY="32", DISPATCH_BATCH_SIZE="200")
    first = start_dispatcher(env, log=tmp_path / "first.log")
    try:
        wait_until(lambda: (len(twilio.messages) >= 400 and 40 <= len(twilio.messages) % 200 <= 160)
                   or first.poll() is not None, 60, "a batch half sent")
    finally:
        first.send_signal(signal.SIGKILL)
        output = finish(first, tmp_path / "first.log", 10)
    assert first.returncode == -signal.SIGKILL, output
    twilio.delay(0)
    stuck = db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sending"))
    assert stuck > 0

    second = start_dispatcher({**env, "DISPATCH_STALE_SECONDS": "0"}, "--once", log=tmp_path / "second.log")
    output = finish(second, tmp_path / "second.log", 120)
    assert second.returncode == 0, output

    per_phone = Counter(m["To"] for m in twilio.messages)
    assert set(per_phone) == {phone_for(n) for n in range(1500)}
    assert max(per_phone.values()) == 1, [p for p, n in per_phone.items() if n > 1][:5]
    db.session.expire_all()
    found = db.session.scalar(select(func.count()).select_from(DeliveryEvent).where(
        DeliveryEvent.source == "reconcile", DeliveryEvent.status == "sent"))
    assert found > 0, "the messages the dead dispatcher handed over were found despite the skew"


@pytest.mark.slow
def test_two_dispatchers_against_a_slow_provider_never_take_a_live_batch_for_a_dead_one(app, twilio, tmp_path):
    seed(200, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert(level=2))
    twilio.delay(0.3)
    # A batch takes 40 / 4 * 0.3 = 3 s, longer than the 2 s stale threshold, and each
    # dispatcher looks for expired leases every 0.3 s.
    env = dispatcher_env(app, twilio, DISPATCH_CONCURRENCY="4", DISPATCH_BATCH_SIZE="40",
                         DISPATCH_STALE_SECONDS="2", DISPATCH_RECONCILE_SECONDS="0.3")
    workers = [start_dispatcher(env, log=tmp_path / f"w{i}.log") for i in range(2)]
    try:
        wait_until(lambda: unsettled() == 0 or any(w.poll() is not None for w in workers), 60, "all sent")
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        outputs = [finish(w, tmp_path / f"w{i}.log", 30) for i, w in enumerate(workers)]
    assert [w.returncode for w in workers] == [0, 0], outputs
    per_phone = Counter(m["To"] for m in twilio.messages)
    assert len(per_phone) == 200 and max(per_phone.values()) == 1, \
        [p for p, n in per_phone.items() if n > 1][:5]
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(DeliveryEvent).where(
        DeliveryEvent.source == "reconcile")) == 0, "a live batch was reconciled"
    assert len(set(db.session.scalars(select(Delivery.claimed_by)))) == 2


def test_segments_and_send_time_survive_a_callback_that_overtakes_the_record(app, client, twilio):
    seed(2, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    dispatcher = Dispatcher(app)
    now = utcnow()
    jobs = dispatcher.load(dispatcher.claim(now))
    dispatcher.prepare(jobs, now)
    outcomes = [dispatcher.send(job) for job in jobs]
    early = outcomes[0]
    assert callback(client, twilio, early.job.delivery_id, early.provider_ref, "delivered").status_code == 204
    db.session.expire_all()
    reported_at = db.session.get(Delivery, early.job.delivery_id).sent_at
    assert reported_at is not None
    time.sleep(0.05)
    dispatcher.record(outcomes, [], utcnow())
    dispatcher.close()
    db.session.expire_all()
    first = db.session.get(Delivery, early.job.delivery_id)
    assert first.status == "delivered" and first.provider_ref == early.provider_ref
    assert first.segments == 1 and first.sent_at == reported_at  # kept, and filled
    second = db.session.get(Delivery, outcomes[1].job.delivery_id)
    assert second.status == "sent" and second.segments == 1 and second.sent_at is not None


# --- the outage drill with one provider, a real dispatcher process -----------------------------

# Residents in the real-process drills (tests/test_failover.py uses it too). CI runs 2,000,
# which take about half a minute; DRILL_RESIDENTS=10000 runs the full size.
DRILL_RESIDENTS = int(os.environ.get("DRILL_RESIDENTS", "2000"))


@pytest.mark.slow
def test_a_twilio_outage_mid_send_without_a_second_provider_loses_nobody_and_sends_nothing_late(app, twilio,
                                                                                                  tmp_path):
    # Scaled: an 8 s outage stands for ten minutes, a warning that ends 4 s into it for one that
    # ends during the outage, the 2 h warning for one that outlasts it.
    n = DRILL_RESIDENTS
    seed(n, categories={"weather": 1}, areas=["KOZY"])
    lasting = alert(title="Burza", expires_in=timedelta(hours=2))
    assert lifecycle.publish(lasting) == {"sms": n}
    twilio.delay(0.01)
    env = dispatcher_env(app, twilio, SMS_RATE_PER_SECOND="400", DISPATCH_BATCH_SIZE="50",
                         DISPATCH_CONCURRENCY="8", DISPATCH_RETRY_BASE_SECONDS="0.2",
                         DISPATCH_RETRY_MAX_SECONDS="1")
    dispatcher = start_dispatcher(env, log=tmp_path / "dispatch.log")
    try:
        wait_until(lambda: len(twilio.messages) >= n // 5 or dispatcher.poll() is not None, 60,
                   "the send under way")
        twilio.outage(8.0)
        outage_ends = utcnow() + timedelta(seconds=8)
        brief = alert(title="Wichura", expires_in=timedelta(seconds=4))
        assert lifecycle.publish(brief) == {"sms": n}
        brief_ends = brief.expires_at
        in_outage = len(twilio.messages)
        wait_until(lambda: unsettled() == 0 or dispatcher.poll() is not None, 180, "every delivery settled")
    finally:
        dispatcher.terminate()
        log = finish(dispatcher, tmp_path / "dispatch.log", 60)
    everyone = Counter({phone_for(k): 1 for k in range(n)})
    assert bodies_to(twilio, "Gmina Kozy: Burza") == everyone, log[-3000:]
    assert len(twilio.messages) - in_outage >= (n - n // 5) * 0.5, "most of it went out after the outage"
    assert min(m["created_at"] for m in twilio.messages[in_outage:]) >= outage_ends - timedelta(seconds=0.5)
    late = [m for m in twilio.messages if m["Body"].startswith("Gmina Kozy: Wichura") and m["created_at"] > brief_ends]
    assert late == [], f"{len(late)} SMS of a warning that had ended"
    db.session.rollback()
    counts = dict(db.session.execute(select(Delivery.status, func.count()).where(Delivery.alert_id == lasting.id)
                                     .group_by(Delivery.status)).all())
    assert counts == {"sent": n}
    ended = set(db.session.scalars(select(Delivery.status).where(Delivery.alert_id == brief.id)))
    assert ended <= {"expired", "sent"} and "expired" in ended


@pytest.mark.slow
def test_stop_during_a_send_by_a_real_dispatcher_process_gets_nothing_after_the_confirmation(app, client, twilio,
                                                                                             tmp_path):
    # The production loop (`flask dispatch`: the sliding window) at 200 SMS/s; residents spread
    # over the rest of the send reply STOP while it runs, the first of them inside the rows the
    # window has already claimed (it holds 128 ahead of the calls).
    n = DRILL_RESIDENTS
    seed(n, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert(title="Burza"))
    env = dispatcher_env(app, twilio, SMS_RATE_PER_SECOND="200", DISPATCH_BATCH_SIZE="50", DISPATCH_CONCURRENCY="8")
    dispatcher = start_dispatcher(env, log=tmp_path / "dispatch.log")
    confirmed: dict[str, object] = {}
    try:
        wait_until(lambda: len(twilio.messages) >= n // 10 or dispatcher.poll() is not None, 60, "the send under way")
        sent = len(twilio.messages)
        leaving = [phone_for(k) for k in range(sent + 5, n, max(1, (n - sent) // 25))]
        for phone in leaving:
            assert reply_of(text_us(client, twilio, "STOP", phone=phone)) is not None
            confirmed[phone] = utcnow()  # committed: the confirmation is on its way to the phone
        wait_until(lambda: unsettled() == 0 or dispatcher.poll() is not None, 60 + n / 50, "the send finished")
    finally:
        dispatcher.terminate()
        log = finish(dispatcher, tmp_path / "dispatch.log", 60)
    grace = timedelta(seconds=app.config["DISPATCH_OPTOUT_CHECK_SECONDS"])
    late = [(m["To"], m["created_at"]) for m in twilio.messages
            if m["To"] in confirmed and m["created_at"] >= confirmed[m["To"]] + grace]
    assert late == [], (late, log[-2000:])
    got = Counter(m["To"] for m in twilio.messages)
    assert max(got.values()) == 1 and len(got) >= n - len(confirmed)
    stopped_in_time = [p for p in confirmed if p not in got]
    assert len(stopped_in_time) >= len(confirmed) - 3, "nearly all left before their turn came"
