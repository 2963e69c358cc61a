"""An alert reaches web-push subscribers through a fake push service that checks the VAPID
signature and decrypts what it got, exactly as a browser's push service would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from alerts import publish as lifecycle
from alerts.dispatcher import Dispatcher
from alerts.figures import delivery_figures
from alerts.models import Alert, Delivery
from db import db, utcnow
from population import seed
from providers.webpush import generate_vapid_keys
from subscribers.models import ConsentEvent, PushSubscription, Subscriber
from tests.fakes.push_service import FakePushService

SUBJECT = "mailto:it@gmina.example.pl"


@pytest.fixture(scope="module")
def vapid() -> tuple[str, str]:
    return generate_vapid_keys()


@pytest.fixture(scope="module")
def _push_service() -> Iterator[FakePushService]:
    with FakePushService() as fake:
        yield fake


@pytest.fixture
def push(_push_service: FakePushService) -> FakePushService:
    _push_service.reset()
    return _push_service


@pytest.fixture
def push_app(make_app, vapid):  # noqa: ANN001, ANN201
    return make_app(VAPID_PRIVATE_KEY=vapid[0], VAPID_PUBLIC_KEY=vapid[1], VAPID_SUBJECT=SUBJECT,
                    SMS_RATE_PER_SECOND=0)


def browser_signup(client, push, vapid, categories, levels=None):  # noqa: ANN001, ANN201
    subscription = push.new_subscription(application_server_key=vapid[1])
    response = client.post("/push/subscribe", json={
        "subscription": subscription, "categories": categories, "levels": levels or {},
        "language": "pl", "consent": True})
    assert response.status_code == 201, response.get_json()
    return subscription


def publish_and_drain(app, **alert_fields) -> int:  # noqa: ANN001
    now = utcnow()
    draft = lifecycle.Draft(category="weather", level=3, titles={"pl": "Nawałnica", "en": "Severe storm"},
                            texts={"pl": "Porywy wiatru do 120 km/h. Nie wychodź z domu.",
                                   "en": "Gusts up to 120 km/h. Stay at home."},
                            channels=["sms", "push"], starts_at=now, expires_at=now + timedelta(hours=4))
    for key, value in alert_fields.items():
        setattr(draft, key, value)
    alert = lifecycle.create_alert(draft)
    lifecycle.publish(alert)
    dispatcher = Dispatcher(app)
    while dispatcher.run_once():
        pass
    dispatcher.close()
    return alert.id


def test_an_alert_reaches_push_subscribers_with_the_full_text_once(push_app, push, vapid, twilio):
    client = push_app.test_client()
    storm_fan = browser_signup(client, push, vapid, ["weather"], {"weather": 2})
    red_only = browser_signup(client, push, vapid, ["weather"], {"weather": 3})
    events_only = browser_signup(client, push, vapid, ["events"])
    seed(3, categories={"weather": 1}, areas=["KOZY"])

    alert_id = publish_and_drain(push_app)

    assert {r.endpoint for r in push.received} == {storm_fan["endpoint"], red_only["endpoint"]}
    assert push.received_for(events_only) == []
    got = push.received_for(storm_fan)[0]
    assert got.payload["title"] == "Nawałnica"
    assert got.payload["body"] == "Porywy wiatru do 120 km/h. Nie wychodź z domu."
    assert got.payload["url"] == f"https://alerty.example.pl/alerts/{alert_id}"
    assert (got.payload["category"], got.payload["level"]) == ("weather", 3)
    assert got.urgency == "high"
    assert got.ttl == 86400
    assert got.claims["sub"] == SUBJECT
    assert len(twilio.messages) == 3  # the SMS residents, through the other channel
    figures = delivery_figures(alert_id)["by_channel"]
    assert figures["push"]["sent"] == 2 and figures["sms"]["sent"] == 3


def test_an_update_replaces_the_notification_on_the_phone(push_app, push, vapid, twilio):
    client = push_app.test_client()
    browser = browser_signup(client, push, vapid, ["weather"])
    first_id = publish_and_drain(push_app)
    original = db.session.get(Alert, first_id)
    update = lifecycle.follow_up(original, "update", lifecycle.Draft(
        category="weather", level=3, titles={"pl": "Nawałnica"}, texts={"pl": "Porywy do 140 km/h."},
        channels=["push"], starts_at=utcnow(), expires_at=utcnow() + timedelta(hours=4)))
    lifecycle.publish(update)
    dispatcher = Dispatcher(push_app)
    while dispatcher.run_once():
        pass
    dispatcher.close()
    first, second = push.received_for(browser)
    assert second.payload["title"] == "AKTUALIZACJA: Nawałnica"
    assert first.topic == second.topic and first.payload["tag"] == second.payload["tag"]


def test_a_subscription_the_push_service_has_dropped_is_removed_and_the_resident_told_nothing_more(
        push_app, push, vapid, twilio):
    client = push_app.test_client()
    gone = browser_signup(client, push, vapid, ["weather"])
    alive = browser_signup(client, push, vapid, ["weather"])
    push.fail(gone, 410)
    publish_and_drain(push_app)
    assert [r.endpoint for r in push.received] == [alive["endpoint"]]
    endpoints = db.session.scalars(select(PushSubscription.endpoint)).all()
    assert endpoints == [alive["endpoint"]]
    # The push-only resident of the dead browser is opted out, and the ledger says why.
    statuses = sorted(db.session.scalars(select(Subscriber.status)).all())
    assert statuses == ["active", "opted_out"]
    assert db.session.scalar(select(func.count()).select_from(ConsentEvent).where(
        ConsentEvent.action == "push_unsubscribe", ConsentEvent.source == "provider")) == 1
    failed = db.session.scalar(select(Delivery).where(Delivery.status == "failed"))
    assert failed.channel == "push"


def test_a_push_service_outage_is_retried_later(push_app, push, vapid, twilio):
    client = push_app.test_client()
    browser = browser_signup(client, push, vapid, ["weather"])
    push.fail_next(1, status=503)
    publish_and_drain(push_app)
    delivery = db.session.scalar(select(Delivery).where(Delivery.channel == "push"))
    assert delivery.status == "pending" and delivery.next_attempt_at > utcnow()
    delivery.next_attempt_at = utcnow()
    db.session.commit()
    dispatcher = Dispatcher(push_app)
    dispatcher.run_once()
    dispatcher.close()
    assert len(push.received_for(browser)) == 1


def test_without_vapid_keys_push_is_off_and_nothing_is_queued_for_it(make_app, twilio):
    app = make_app()
    assert app.extensions["webpush"] is None
    seed(2, categories={"weather": 1}, areas=["KOZY"])
    now = utcnow()
    alert = lifecycle.create_alert(lifecycle.Draft(
        category="weather", level=2, titles={"pl": "Burze"}, texts={"pl": "Burze."}, channels=["sms", "push"],
        starts_at=now, expires_at=now + timedelta(hours=1)))
    assert lifecycle.publish(alert) == {"sms": 2}
