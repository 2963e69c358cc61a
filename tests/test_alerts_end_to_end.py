"""An alert from the command line to residents' phones and back: real SDK, real HTTP both ways."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from alerts import publish as lifecycle
from alerts.dispatcher import Dispatcher
from alerts.figures import delivery_figures
from alerts.models import Alert, Delivery, DeliveryEvent
from db import db
from population import phone_for, seed
from tests.test_delivery import alert, drain


def test_receipts_flow_back_from_twilio_through_the_signed_webhook(live_server, twilio):
    from flask import current_app

    app = current_app._get_current_object()
    seed(20, categories={"weather": 1}, areas=["KOZY"], start=0)
    seed(5, categories={"official": 1}, areas=["KOZY"], start=100)
    a = alert(level=2)
    assert lifecycle.publish(a) == {"sms": 20}
    drain(app)
    assert Counter(m["To"] for m in twilio.messages) == Counter({phone_for(n): 1 for n in range(20)})

    sids = [m["sid"] for m in twilio.messages]
    assert all(m["StatusCallback"].startswith(f"{live_server}/webhooks/twilio/status?d=") for m in twilio.messages)
    for sid in sids[:15]:
        assert twilio.send_status_callback(sid, "delivered") == 204
    for sid in sids[15:18]:
        assert twilio.send_status_callback(sid, "undelivered", error_code=30003) == 204
    # A late 'sent' after 'delivered' changes nothing.
    assert twilio.send_status_callback(sids[0], "sent") == 204

    db.session.expire_all()
    figures = delivery_figures(a.id)["by_channel"]["sms"]
    assert (figures["delivered"], figures["failed"], figures["sent"]) == (15, 3, 2)
    assert db.session.scalar(select(Delivery.status).where(Delivery.provider_ref == sids[0])) == "delivered"
    assert len(db.session.scalars(select(DeliveryEvent).where(DeliveryEvent.source == "callback")).all()) == 19


def test_staff_can_send_and_follow_an_alert_from_the_command_line(app, runner, twilio):
    seed(3, categories={"utilities": 1}, areas=["KOZY"])
    result = runner.invoke(args=["alerts", "send", "--category", "utilities", "--title", "Brak wody",
                                 "--text", "Awaria wodociągu przy ul. Szkolnej do 18:00.", "--expires-in", "8h",
                                 "--break-glass", "--reason", "Wojt na urlopie, awaria trwa"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Alert 1 published: 3 deliveries queued (sms 3)")
    result = runner.invoke(args=["dispatch", "--once"])
    assert result.exit_code == 0 and "Handled 3 deliveries." in result.output
    assert [m["Body"] for m in twilio.messages] == [
        "Gmina Kozy: Brak wody. Awaria wodociagu przy ul. Szkolnej do 18:00."] * 3
    result = runner.invoke(args=["alerts", "show", "1"])
    assert result.exit_code == 0
    assert "Alert 1 [published] utilities: Brak wody" in result.output
    sms_row = next(line for line in result.output.splitlines() if line.startswith("sms"))
    assert sms_row.split() == ["sms", "3", "0", "0", "3", "0", "0", "0", "0"]


def test_the_command_line_refuses_a_bad_alert_with_a_clear_message(runner):
    result = runner.invoke(args=["alerts", "send", "--category", "weather", "--title", "Burze", "--text", "x"])
    assert result.exit_code != 0 and "The warning level must be a number from 1 to 3. (level_invalid)" in result.output
    result = runner.invoke(args=["alerts", "send", "--category", "parade", "--title", "x", "--text", "x"])
    assert "category_unknown" in result.output
    result = runner.invoke(args=["alerts", "send", "--category", "official", "--title", "x", "--text", "x",
                                 "--areas", "MARS"])
    assert "area_unknown" in result.output
    result = runner.invoke(args=["alerts", "send", "--category", "official", "--title", "x", "--text", "x",
                                 "--expires-in", "soon"])
    assert "use a number with m, h or d" in result.output
    assert db.session.scalar(select(Alert)) is None


def test_update_and_cancel_from_the_command_line(app, runner, twilio):
    seed(2, categories={"weather": 1}, areas=["KOZY"])
    runner.invoke(args=["alerts", "send", "--category", "weather", "--level", "2", "--title", "Wichura",
                        "--text", "Porywy do 90 km/h.", "--expires-in", "6h", "--break-glass", "--reason", "Wojt na urlopie, awaria trwa"])
    runner.invoke(args=["dispatch", "--once"])
    result = runner.invoke(args=["alerts", "update", "1", "--text", "Porywy do 110 km/h.", "--break-glass", "--reason", "Wojt na urlopie, awaria trwa"])
    assert result.exit_code == 0 and "Alert 2 (update of 1) published: 2 deliveries queued." in result.output
    result = runner.invoke(args=["alerts", "cancel", "2", "--break-glass", "--reason", "Wojt na urlopie, awaria trwa"])
    assert result.exit_code == 0 and "Alert 3 (cancel of 2) published: 2 deliveries queued." in result.output
    # The update had not gone out yet: the cancellation stopped it. Both residents got the
    # original warning, so both are told it is withdrawn.
    runner.invoke(args=["dispatch", "--once"])
    assert [m["Body"] for m in twilio.messages] == ["Gmina Kozy: Wichura. Porywy do 90 km/h."] * 2 + [
        "Gmina Kozy: ODWOLANE: Wichura. Komunikat jest nieaktualny."] * 2


def test_every_published_alert_has_a_public_page_in_each_language(app, client):
    now = __import__("db").utcnow()
    from datetime import timedelta
    a = lifecycle.create_alert(lifecycle.Draft(
        category="weather", level=2, titles={"pl": "Upał", "en": "Heat"},
        texts={"pl": "Temperatura do 34°C.\nPij dużo wody.", "en": "Up to 34°C. Drink water."},
        channels=["sms"], starts_at=now, expires_at=now + timedelta(hours=5)))
    assert client.get(f"/alerts/{a.id}").status_code == 404  # a draft is not public
    lifecycle.publish(a)
    page = client.get(f"/alerts/{a.id}").get_data(as_text=True)
    assert "Upał" in page and "Temperatura do 34°C." in page and "Pij dużo wody." in page
    assert "Ostrzeżenia meteorologiczne" in page and "cała gmina" in page
    english = client.get(f"/alerts/{a.id}?lang=en").get_data(as_text=True)
    assert "Heat" in english and "Up to 34°C. Drink water." in english
    cancel = lifecycle.follow_up(a, "cancel", lifecycle.Draft(category="weather", titles={"pl": "Upał"},
                                                             texts={"pl": "Odwołane."}))
    lifecycle.publish(cancel)
    page = client.get(f"/alerts/{a.id}?lang=pl").get_data(as_text=True)
    assert "Ten komunikat został odwołany." in page and f"/alerts/{cancel.id}" in page
    assert client.get("/alerts/999").status_code == 404


def test_an_expired_draft_or_an_unapproved_feed_alert_never_becomes_public(app, client):
    from datetime import timedelta

    from alerts.publish import expire_alerts
    from db import utcnow

    now = utcnow()
    draft = lifecycle.create_alert(lifecycle.Draft(
        category="official", titles={"pl": "[wpisz tytuł]"}, texts={"pl": "Szkic wewnętrzny."},
        starts_at=now, expires_at=now + timedelta(minutes=1)))
    db.session.commit()
    expire_alerts(now + timedelta(minutes=2))
    db.session.refresh(draft)
    assert draft.status == "expired"
    assert client.get(f"/alerts/{draft.id}").status_code == 404


def test_a_feed_warning_page_credits_imgw_and_an_exercise_says_so(app, client):
    from datetime import timedelta

    from db import utcnow

    now = utcnow()
    warning = lifecycle.create_alert(lifecycle.Draft(
        category="weather", level=2, titles={"pl": "Upał 2. stopnia"}, texts={"pl": "IMGW-PIB ostrzega."},
        starts_at=now, expires_at=now + timedelta(hours=3), source="feed:meteo", external_id="Gd1"))
    lifecycle.publish(warning)
    page = client.get(f"/alerts/{warning.id}?lang=pl").get_data(as_text=True)
    assert "Instytut Meteorologii i Gospodarki Wodnej" in page and "zostały przetworzone" in page
    drill = lifecycle.create_alert(lifecycle.Draft(
        category="emergency", titles={"pl": "Ewakuacja"}, texts={"pl": "Test."}, exercise=True))
    lifecycle.publish(drill)
    assert "ĆWICZENIA: Ewakuacja" in client.get(f"/alerts/{drill.id}?lang=pl").get_data(as_text=True)
