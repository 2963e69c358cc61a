"""Alerts reach every matching resident once: matching, fan-out, dispatch, receipts."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text
from twilio.request_validator import RequestValidator

from alerts import publish as lifecycle
from alerts.dispatcher import Dispatcher
from alerts.figures import delivery_figures
from alerts.models import Alert, Delivery, DeliveryEvent
from alerts.receipts import poll_statuses
from db import db, utcnow
from population import phone_for, seed
from subscribers.models import ConsentEvent, Subscriber


def alert(category="weather", level=2, areas=None, text="Burze z gradem. Zabezpiecz rzeczy na balkonie.",
          title="Burze 2. stopnia", expires_in=timedelta(hours=6), channels=("sms",), **kw) -> Alert:
    now = utcnow()
    draft = lifecycle.Draft(category=category, level=level, areas=areas, titles={"pl": title},
                            texts={"pl": text}, channels=list(channels), starts_at=now,
                            expires_at=now + expires_in if expires_in else None, **kw)
    return lifecycle.create_alert(draft)


def drain(app, **overrides) -> Dispatcher:
    app.config.update({"SMS_RATE_PER_SECOND": 0, **overrides})
    dispatcher = Dispatcher(app)
    while dispatcher.run_once():
        pass
    dispatcher.close()
    return dispatcher


def recipients(twilio) -> Counter:
    return Counter(m["To"] for m in twilio.messages)


def test_an_alert_reaches_exactly_the_matching_residents_once(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    wants_2 = seed(30, categories={"weather": 2}, areas=["CZA"], start=0)
    wants_3 = seed(10, categories={"weather": 3}, areas=["CZA"], start=100)        # level too low
    other_area = seed(10, categories={"weather": 1}, areas=["BUJ"], start=200)     # not targeted
    other_cat = seed(10, categories={"official": 1}, areas=["CZA"], start=300)     # did not choose weather
    left = seed(5, categories={"weather": 1}, areas=["KOB"], start=400, status="opted_out")
    pending = seed(5, categories={"weather": 1}, areas=["KOB"], start=500, status="pending")
    kob = seed(7, categories={"weather": 1}, areas=["KOB", "POR"], start=600)

    a = alert(level=2, areas=["CZA", "KOB"])
    assert lifecycle.publish(a) == {"sms": 37}
    drain(app)

    expected = {phone_for(n) for n in [*range(0, 30), *range(600, 607)]}
    assert recipients(twilio) == Counter({p: 1 for p in expected})
    assert len(wants_2) + len(kob) == 37 and wants_3 and other_area and other_cat and left and pending
    body = twilio.messages[0]["Body"]
    assert body == "Gmina Porabka: Burze 2. stopnia. Burze z gradem. Zabezpiecz rzeczy na balkonie."
    assert twilio.messages[0]["StatusCallback"].startswith("https://alerty.example.pl/webhooks/twilio/status?d=")
    assert 21000 < int(twilio.messages[0]["ValidityPeriod"]) <= 21600
    assert delivery_figures(a.id)["by_channel"]["sms"]["sent"] == 37


def test_emergency_reaches_everyone_active_in_the_areas_whatever_they_chose(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    seed(4, categories={"events": 1}, areas=["CZA"], start=0)
    seed(3, categories={"weather": 3}, areas=["POR"], start=10)
    seed(2, categories={"weather": 1}, areas=["BUJ"], start=20)
    seed(2, categories={"events": 1}, areas=["CZA"], start=30, status="opted_out")
    a = alert(category="emergency", level=None, areas=["CZA", "POR"], title="Ewakuacja",
              text="Opuść dom przy ul. Rzecznej.")
    assert lifecycle.publish(a) == {"sms": 7}


def test_publishing_or_fanning_out_twice_adds_nothing(app, twilio):
    from alerts import match, outbox

    seed(50, categories={"weather": 1}, areas=["KOZY"])
    a = alert()
    assert lifecycle.publish(a) == {"sms": 50}
    with pytest.raises(lifecycle.AlertError):
        lifecycle.publish(a)
    assert outbox.insert_deliveries(a, "sms", match.matching(a, "sms")) == 0
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 50
    drain(app)
    drain(app)
    assert len(twilio.messages) == 50


def test_a_long_polish_text_is_transliterated_and_cut_to_two_segments_with_the_link(app, twilio):
    seed(1, categories={"official": 1}, areas=["KOZY"])
    text = ("Informujemy, że w związku z awarią magistrali wodociągowej przy ulicy Krakowskiej "
            "woda nie będzie dostarczana od godziny 8:00 do 16:00. Beczkowozy staną przy szkole, "
            "przy kościele i przy ośrodku zdrowia. Prosimy o zrobienie zapasu wody pitnej. "
            "Przepraszamy za utrudnienia i dziękujemy za wyrozumiałość.")
    a = alert(category="official", level=None, title="Przerwa w dostawie wody", text=text)
    lifecycle.publish(a)
    drain(app)
    body = twilio.messages[0]["Body"]
    from alerts.sms_text import count_segments, is_gsm7
    assert is_gsm7(body) and count_segments(body).segments == 2
    assert body.startswith("Gmina Kozy: Przerwa w dostawie wody. Informujemy, ze w zwiazku z awaria")
    assert body.endswith(f"... https://alerty.example.pl/alerts/{a.id}")


def test_each_resident_reads_it_in_their_language(app, twilio):
    seed(1, categories={"weather": 1}, areas=["KOZY"], start=0, language="en")
    seed(1, categories={"weather": 1}, areas=["KOZY"], start=1, language="uk")
    seed(1, categories={"weather": 1}, areas=["KOZY"], start=2, language="pl")
    now = utcnow()
    a = lifecycle.create_alert(lifecycle.Draft(
        category="weather", level=2, titles={"pl": "Upał", "en": "Heat"},
        texts={"pl": "Pij dużo wody.", "en": "Drink plenty of water."}, channels=["sms"],
        starts_at=now, expires_at=now + timedelta(hours=3)))
    lifecycle.publish(a)
    drain(app)
    bodies = {m["To"]: m["Body"] for m in twilio.messages}
    assert bodies[phone_for(0)] == "Gmina Kozy: Heat. Drink plenty of water."
    # No Ukrainian text: exactly the Polish residents' SMS, in GSM-7 (not UCS-2 Polish, which
    # the segment cap would cut after about 90 characters).
    assert bodies[phone_for(1)] == "Gmina Kozy: Upal. Pij duzo wody."
    assert bodies[phone_for(2)] == "Gmina Kozy: Upal. Pij duzo wody."


def test_a_transient_error_is_retried_later_with_backoff(app, twilio):
    seed(1, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    twilio.fail_next(1, status=503)
    drain(app)
    delivery = db.session.scalar(select(Delivery))
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.next_attempt_at > utcnow() + timedelta(seconds=2)
    assert delivery.error_code is not None or "503" in (delivery.error or "")
    delivery.next_attempt_at = utcnow()
    db.session.commit()
    drain(app)
    db.session.refresh(delivery)
    assert delivery.status == "sent" and delivery.attempts == 2
    assert len(twilio.messages) == 1


def test_a_429_waits_at_least_as_long_as_twilio_asks(app, twilio):
    seed(1, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    twilio.fail_next(1, status=429, code=20429, retry_after=120)
    drain(app)
    delivery = db.session.scalar(select(Delivery))
    assert delivery.status == "pending"
    assert delivery.next_attempt_at >= utcnow() + timedelta(seconds=110)


def test_a_retry_that_would_land_after_the_alert_ends_is_dropped(app, twilio):
    seed(1, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert(expires_in=timedelta(seconds=20)))
    twilio.fail_next(1, status=429, retry_after=60)
    drain(app)
    assert db.session.scalar(select(Delivery.status)) == "expired"


def test_twilio_21610_opts_the_resident_out_and_is_never_retried(app, twilio):
    seed(2, categories={"weather": 1}, areas=["KOZY"])
    twilio.fail_number(phone_for(0), 21610)
    lifecycle.publish(alert())
    drain(app)
    statuses = dict(db.session.execute(select(Subscriber.phone, Subscriber.status)).all())
    assert statuses == {phone_for(0): "opted_out", phone_for(1): "active"}
    failed = db.session.scalar(select(Delivery).where(Delivery.status == "failed"))
    assert failed.error_code == "21610"
    event = db.session.scalar(select(ConsentEvent).where(ConsentEvent.action == "opt_out"))
    assert event.source == "provider"


@pytest.mark.parametrize("code", [21211, 21614])
def test_an_invalid_or_landline_number_is_deactivated_and_visible_to_staff(app, twilio, code):
    seed(1, categories={"weather": 1}, areas=["KOZY"])
    twilio.fail_number(phone_for(0), code)
    lifecycle.publish(alert())
    drain(app)
    subscriber = db.session.scalar(select(Subscriber))
    assert subscriber.status == "deactivated" and str(code) in subscriber.status_reason
    stored = " ".join(filter(None, [*db.session.scalars(select(Delivery.error)),
                                    *db.session.scalars(select(DeliveryEvent.detail))]))
    assert phone_for(0) not in stored  # staff see errors; the number is masked
    # The next alert does not even queue for them.
    assert lifecycle.publish(alert()) == {"sms": 0}


def test_the_rate_limit_keeps_us_within_the_providers_pace(app, twilio):
    seed(30, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    started = time.monotonic()
    drain(app, SMS_RATE_PER_SECOND=20)
    elapsed = time.monotonic() - started
    # A bucket of 20 starts full, then 20 per second: 30 messages need at least half a second.
    assert elapsed >= 0.45
    assert len(twilio.messages) == 30


def test_emergency_and_level_3_overtake_routine_messages_already_queued(app, twilio):
    seed(3, categories={"events": 1, "weather": 1}, areas=["KOZY"])
    routine = alert(category="events", level=None, title="Dożynki", text="Zapraszamy w sobotę.")
    lifecycle.publish(routine)
    severe = alert(level=3, title="Nawałnica")
    lifecycle.publish(severe)
    emergency = alert(category="emergency", level=None, title="Alarm", text="Skażenie wody.")
    lifecycle.publish(emergency)
    drain(app, DISPATCH_BATCH_SIZE=2, DISPATCH_CONCURRENCY=1)
    order = [m["Body"].split(": ", 1)[1].split(".")[0] for m in twilio.messages]
    assert order == ["Alarm"] * 3 + ["Nawalnica"] * 3 + ["Dozynki"] * 3


def test_quiet_hours_hold_official_messages_until_morning_but_never_warnings(make_app, twilio):
    app = make_app(QUIET_HOURS=None)  # the Kozy profile's 22:00-07:00
    seed(1, categories={"official": 1, "weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert(category="official", level=None, title="Zebranie", text="Zebranie wiejskie.",
                            expires_in=timedelta(days=3)))
    lifecycle.publish(alert(level=2, title="Wichura", expires_in=timedelta(days=3)))
    lifecycle.publish(alert(level=1, title="Mgla", expires_in=timedelta(days=3)))
    dispatcher = Dispatcher(app)
    tomorrow = (utcnow() + timedelta(days=1)).astimezone(dispatcher.zone).date()
    night = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 23, 30, tzinfo=dispatcher.zone)
    morning = night + timedelta(hours=8)
    claimed_at_night = dispatcher.claim(night.astimezone(timezone.utc))
    kinds = {d.alert.title("pl") for d in db.session.scalars(select(Delivery).where(Delivery.id.in_(claimed_at_night)))}
    assert kinds == {"Wichura"}
    claimed_in_morning = dispatcher.claim(morning.astimezone(timezone.utc))
    assert len(claimed_in_morning) == 2
    dispatcher.close()


def test_an_expired_alert_is_not_sent_late(app, twilio):
    seed(3, categories={"weather": 1}, areas=["KOZY"])
    a = alert(expires_in=timedelta(hours=1))
    lifecycle.publish(a)
    a.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    drain(app)
    assert twilio.messages == []
    assert set(db.session.scalars(select(Delivery.status))) == {"expired"}


def test_an_alert_published_after_it_ended_queues_nothing(app, twilio):
    seed(3, categories={"weather": 1}, areas=["KOZY"])
    a = alert(expires_in=timedelta(hours=1))
    a.expires_at = utcnow() - timedelta(minutes=1)
    assert lifecycle.publish(a) == {"sms": 0}
    assert a.status == "expired"


def test_a_resident_who_left_after_fan_out_is_skipped(app, twilio):
    ids = seed(2, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    from subscribers.service import Origin, opt_out
    opt_out(db.session.get(Subscriber, ids[0]), Origin("sms"))
    drain(app)
    assert recipients(twilio) == Counter({phone_for(1): 1})
    assert db.session.scalar(select(Delivery.status).where(Delivery.subscriber_id == ids[0])) == "skipped"


def test_an_update_and_a_cancellation_reach_exactly_those_who_got_the_original(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    seed(5, categories={"weather": 1}, areas=["CZA"], start=0)
    original = alert(level=2, areas=["CZA"], title="Wichura")
    lifecycle.publish(original)
    drain(app)
    seed(3, categories={"weather": 1}, areas=["KOB"], start=100)   # new area in the update
    seed(2, categories={"weather": 1}, areas=["CZA"], start=200)   # joined after the original
    twilio.reset()

    update = lifecycle.follow_up(original, "update", lifecycle.Draft(
        category="weather", level=3, areas=["CZA", "KOB"], titles={"pl": "Wichura"},
        texts={"pl": "Podniesiono stopień."}, channels=["sms"], starts_at=utcnow(),
        expires_at=utcnow() + timedelta(hours=6)))
    lifecycle.publish(update)
    drain(app)
    got_update = set(recipients(twilio))
    assert got_update == {phone_for(n) for n in [*range(5), 100, 101, 102, 200, 201]}
    assert twilio.messages[0]["Body"].startswith("Gmina Porabka: AKTUALIZACJA: Wichura.")
    db.session.refresh(original)
    assert original.status == "updated"

    twilio.reset()
    seed(2, categories={"weather": 1}, areas=["CZA"], start=300)   # never got any of it
    cancel = lifecycle.follow_up(update, "cancel", lifecycle.Draft(
        category="weather", titles={"pl": "Wichura"}, texts={"pl": "Ostrzeżenie odwołano."}))
    lifecycle.publish(cancel)
    drain(app)
    assert set(recipients(twilio)) == got_update
    assert all(m["Body"].startswith("Gmina Porabka: ODWOLANE: Wichura.") for m in twilio.messages)


def test_a_cancellation_stops_what_is_still_queued(app, twilio):
    seed(4, categories={"weather": 1}, areas=["KOZY"])
    original = alert()
    lifecycle.publish(original)
    cancel = lifecycle.follow_up(original, "cancel", lifecycle.Draft(
        category="weather", titles={"pl": "Burze"}, texts={"pl": "Odwołane."}))
    assert lifecycle.publish(cancel) == {"sms": 0}
    drain(app)
    assert twilio.messages == []
    assert set(db.session.scalars(select(Delivery.status))) == {"skipped"}


def callback(client, twilio, delivery_id, sid, status, error_code=None, signature=None):
    url = f"https://alerty.example.pl/webhooks/twilio/status?d={delivery_id}"
    form = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
            "AccountSid": twilio.account_sid, "To": phone_for(0), "ApiVersion": "2010-04-01"}
    if error_code:
        form["ErrorCode"] = str(error_code)
    if signature is None:
        signature = RequestValidator(twilio.auth_token).compute_signature(url, form)
    return client.post(f"/webhooks/twilio/status?d={delivery_id}", data=form,
                       headers={"X-Twilio-Signature": signature})


def test_receipts_never_move_a_delivery_backwards_and_every_callback_is_kept(app, client, twilio):
    seed(1, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    drain(app)
    delivery = db.session.scalar(select(Delivery))
    sid = delivery.provider_ref
    assert callback(client, twilio, delivery.id, sid, "delivered").status_code == 204
    assert callback(client, twilio, delivery.id, sid, "sent").status_code == 204       # late
    assert callback(client, twilio, delivery.id, sid, "delivered").status_code == 204  # twice
    db.session.refresh(delivery)
    assert delivery.status == "delivered"
    kept = db.session.scalars(select(DeliveryEvent.status).where(DeliveryEvent.source == "callback")
                              .order_by(DeliveryEvent.id)).all()
    assert kept == ["delivered", "sent", "delivered"]


def test_a_forged_status_callback_is_refused_and_changes_nothing(app, client, twilio):
    seed(1, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    drain(app)
    delivery = db.session.scalar(select(Delivery))
    response = callback(client, twilio, delivery.id, delivery.provider_ref, "undelivered",
                        signature="Zm9yZ2VkIHNpZ25hdHVyZQ==")
    assert response.status_code == 403
    db.session.refresh(delivery)
    assert delivery.status == "sent"
    assert db.session.scalar(select(func.count()).select_from(DeliveryEvent).where(
        DeliveryEvent.source == "callback")) == 0


def test_an_undelivered_callback_for_an_unknown_handset_deactivates_the_number(app, client, twilio):
    seed(1, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    drain(app)
    delivery = db.session.scalar(select(Delivery))
    callback(client, twilio, delivery.id, delivery.provider_ref, "undelivered", error_code=30005)
    db.session.refresh(delivery)
    assert delivery.status == "undelivered" and delivery.error_code == "30005"
    assert db.session.scalar(select(Subscriber.status)) == "deactivated"


def test_a_callback_for_an_unknown_message_is_kept_and_answered(app, client, twilio):
    assert callback(client, twilio, 999999, "SM" + "f" * 32, "delivered").status_code == 204
    assert db.session.scalar(select(DeliveryEvent.provider_ref)) == "SM" + "f" * 32


def test_the_status_poll_fetches_what_no_callback_told_us(app, twilio):
    seed(2, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    drain(app)
    deliveries = db.session.scalars(select(Delivery).order_by(Delivery.id)).all()
    twilio.set_status(deliveries[0].provider_ref, "delivered")
    twilio.set_status(deliveries[1].provider_ref, "undelivered", error_code=30003)
    for d in deliveries:
        d.sent_at = utcnow() - timedelta(minutes=15)
    db.session.commit()
    assert poll_statuses() == 2
    assert [d.status for d in db.session.scalars(select(Delivery).order_by(Delivery.id))] == [
        "delivered", "undelivered"]


def test_a_residents_export_lists_their_messages_and_erasure_keeps_only_anonymous_counts(app, twilio):
    from subscribers.erasure import erase
    from subscribers.service import export_data

    ids = seed(2, categories={"weather": 1}, areas=["KOZY"])
    a = alert(title="Wichura")
    lifecycle.publish(a)
    drain(app)
    resident = db.session.get(Subscriber, ids[0])
    messages = export_data(resident)["messages_to_you"]
    assert [(m["alert"], m["title"], m["channel"], m["status"]) for m in messages] == [(a.id, "Wichura", "sms", "sent")]
    erase(resident)
    assert delivery_figures(a.id)["total"]["sent"] == 2
    assert db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.subscriber_id.is_(None))) == 1


def test_the_claim_reads_the_claim_index_in_order_without_sorting_the_outbox(app):
    """At a million queued deliveries a sort per claim costs a third of a second (bench/)."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("the plan check reads SQLite's EXPLAIN QUERY PLAN; PostgreSQL picks plans by table size")
    day = Dispatcher(app)
    app.config["QUIET_HOURS"] = "00:00-23:59"  # the night-time claim: urgent ones only
    night = Dispatcher(app)
    now = utcnow().replace(hour=12)
    assert night.in_quiet_hours(now) and not day.in_quiet_hours(now)
    for query in (day.due(now), night.due(now)):
        compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
        plan = " | ".join(row[-1] for row in db.session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
        assert "ix_delivery_claim" in plan and "TEMP B-TREE" not in plan, plan
    day.close()
    night.close()


def test_a_receipt_that_arrives_before_the_batch_is_recorded_is_not_overwritten(app, client, twilio):
    seed(2, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    dispatcher = Dispatcher(app)
    now = utcnow()
    jobs = dispatcher.load(dispatcher.claim(now))
    dispatcher.prepare(jobs, now)
    outcomes = [dispatcher.send(job) for job in jobs]
    early = outcomes[0]
    # Twilio reports 'delivered' for the first SMS while the rest of the batch is still going.
    assert callback(client, twilio, early.job.delivery_id, early.provider_ref, "delivered").status_code == 204
    dispatcher.record(outcomes, [], utcnow())
    dispatcher.close()
    statuses = dict(db.session.execute(select(Delivery.id, Delivery.status)).all())
    assert statuses[early.job.delivery_id] == "delivered"
    assert statuses[outcomes[1].job.delivery_id] == "sent"


def test_a_batch_is_small_enough_to_be_sent_before_it_looks_stale(make_app):
    app = make_app(SMS_RATE_PER_SECOND=1, DISPATCH_STALE_SECONDS=120, DISPATCH_BATCH_SIZE=200)
    dispatcher = Dispatcher(app)
    assert dispatcher.batch_size == 60  # 1 SMS/s for at most half the stale time
    dispatcher.close()


def test_the_claim_walks_its_index_in_order_on_an_outbox_filled_since_the_last_analyze(app):
    """PostgreSQL plans the claim from the table's statistics; on an outbox filled after the
    last ANALYZE it would read and sort every pending row. The dispatcher's plan guard makes
    it walk ix_delivery_claim and stop after one batch (bench/claim.py times it)."""
    from alerts.dispatcher import claim_plan_guard

    if db.engine.dialect.name != "postgresql":
        pytest.skip("the plan guard is PostgreSQL's; SQLite's plan is checked above")
    db.session.execute(text("ANALYZE delivery"))  # statistics of an empty outbox
    db.session.commit()
    seed(30_000, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert(level=2))
    dispatcher = Dispatcher(app)
    try:
        compiled = dispatcher.due(utcnow()).compile(db.engine)
        claim_plan_guard()
        cursor = db.session.connection().connection.dbapi_connection.cursor()
        cursor.execute("EXPLAIN " + str(compiled), compiled.params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        db.session.rollback()
        assert "Index Scan using ix_delivery_claim" in plan and "Sort" not in plan, plan
        assert len(dispatcher.claim(utcnow())) == 200
    finally:
        dispatcher.close()
