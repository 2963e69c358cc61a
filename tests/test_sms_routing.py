"""Several SMS providers: the settings, the choice per message, and that every later step
(receipts, reconciliation, erasure) asks the provider that really has the message.

Real twilio SDK and smsapi-client against the fakes on 127.0.0.1; the failover drills are in
tests/test_failover.py.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from alerts import publish as lifecycle
from alerts.models import Delivery, DeliveryEvent
from alerts.receipts import reconcile_stuck
from alerts.routing import ProviderRouter, parse_split
from app import ConfigError
from db import db, utcnow
from population import phone_for, seed
from alerts.dispatcher import Dispatcher
from tests.test_delivery import alert, drain
from tests.test_delivery_outages import run_until_settled


def test_the_split_setting_is_read_strictly():
    assert parse_split(None, ["twilio", "smsapi"]) == {"twilio": 50, "smsapi": 50}
    assert parse_split(" twilio:70, smsapi:30 ", ["twilio", "smsapi"]) == {"twilio": 70, "smsapi": 30}
    assert parse_split("smsapi:100", ["twilio", "smsapi"]) == {"twilio": 0, "smsapi": 100}
    for wrong, says in [("twilio=70", "is not <provider>:<share>"), ("orange:50", "is not <provider>:<share>"),
                        ("twilio:150", "must be 0-100"), ("twilio:x", "whole number"),
                        ("twilio:0,smsapi:0", "every share is 0")]:
        with pytest.raises(ValueError, match=says):
            parse_split(wrong, ["twilio", "smsapi"])


def test_a_wrong_split_or_console_beside_a_real_provider_stops_the_start(make_app, smsapi):
    with pytest.raises(ConfigError, match="SMS_SPLIT"):
        make_app(SMS_BACKEND="twilio,smsapi", SMS_SPLIT="twilio:0,smsapi:0", SMSAPI_TOKEN=smsapi.token)
    with pytest.raises(ConfigError, match="console backend cannot be combined"):
        make_app(SMS_BACKEND="console,twilio")
    with pytest.raises(ConfigError, match="SMSAPI_TOKEN"):
        make_app(SMS_BACKEND="twilio,smsapi")


def test_the_router_follows_the_split_and_avoids_where_the_last_attempt_failed(app):
    router = ProviderRouter(db.engine, ["twilio", "smsapi"], {"twilio": 70, "smsapi": 30})
    picks = Counter(router.choose() for _ in range(4000))
    assert 0.64 < picks["twilio"] / 4000 < 0.76, picks
    assert {router.choose(avoid="twilio") for _ in range(200)} == {"smsapi"}
    only = ProviderRouter(db.engine, ["twilio", "smsapi"], {"twilio": 100, "smsapi": 0})
    assert {only.choose() for _ in range(200)} == {"twilio"}
    # Nowhere else to go: the message still goes out, through the one provider with a share.
    assert {only.choose(avoid="twilio") for _ in range(50)} == {"twilio"}


def test_each_sms_goes_through_one_provider_and_the_row_and_its_events_say_which(both, twilio, smsapi):
    app = both("twilio:50,smsapi:50")
    seed(200, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    drain(app)
    to_twilio = {m["To"] for m in twilio.messages}
    to_smsapi = {"+" + m["number"] for m in smsapi.messages}
    assert not to_twilio & to_smsapi, "a resident texted by both"
    assert to_twilio | to_smsapi == {phone_for(n) for n in range(200)}
    assert 60 < len(to_twilio) < 140, (len(to_twilio), len(to_smsapi))  # both carry live traffic
    rows = db.session.execute(select(Delivery.provider, Delivery.provider_ref, Delivery.status)).all()
    twilio_sids = {m["sid"] for m in twilio.messages}
    for provider, ref, status in rows:
        assert status == "sent"
        assert provider == ("twilio" if ref in twilio_sids else "smsapi")
    events = Counter(db.session.scalars(select(DeliveryEvent.provider).where(DeliveryEvent.source == "send")))
    assert events == Counter(provider for provider, _, _ in rows)


def test_a_transient_failure_at_one_provider_sends_the_retry_through_the_other_once(both, twilio, smsapi):
    app = both("twilio:100,smsapi:1")
    seed(30, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    twilio.outage(3600)
    app.config.update(SMS_RATE_PER_SECOND=0, DISPATCH_RETRY_BASE_SECONDS=0.01, DISPATCH_RETRY_MAX_SECONDS=0.02)
    dispatcher = Dispatcher(app)
    # Until every retry is out: a drain that stops at the first empty claim can stop before
    # the retries' backoff (10-20 ms) has passed.
    run_until_settled(dispatcher, timeout=30)
    dispatcher.close()
    db.session.rollback()
    # Twilio answered 500 to all it was offered; each of those went to SMSAPI next, once.
    assert len(twilio.messages) == 0
    assert Counter("+" + m["number"] for m in smsapi.messages) == Counter({phone_for(n): 1 for n in range(30)})
    assert set(db.session.scalars(select(Delivery.provider))) == {"smsapi"}


def test_reconciliation_asks_the_provider_written_on_the_row_not_the_current_split(both, twilio, smsapi):
    """A dispatcher killed after its call to Twilio, while the split now sends everything to
    SMSAPI: the stuck row is settled from Twilio's list, not sent again through SMSAPI."""
    app = both("twilio:100,smsapi:0")
    seed(1, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    drain(app)
    delivery = db.session.scalar(select(Delivery))
    assert delivery.provider == "twilio"
    sid = delivery.provider_ref
    long_ago = utcnow() - timedelta(minutes=10)
    # As a dead dispatcher leaves it: claimed, the call made, nothing recorded.
    db.session.execute(update(Delivery).values(status="sending", provider_ref=None, sent_at=None,
                                               claimed_at=long_ago, lease_renewed_at=long_ago))
    db.session.commit()
    assert reconcile_stuck() == 1
    db.session.expire_all()
    delivery = db.session.get(Delivery, delivery.id)
    assert (delivery.status, delivery.provider_ref) == ("sent", sid)
    assert len(twilio.messages) == 1 and smsapi.messages == []


def test_only_twilio_signed_receipts_count_when_smsapi_is_the_first_provider(both, twilio, smsapi, make_app):
    from tests.test_delivery import callback

    app = make_app(SMS_BACKEND="smsapi,twilio", SMS_SPLIT="smsapi:0,twilio:100", SMSAPI_TOKEN=smsapi.token,
                   SMSAPI_API_BASE=smsapi.base_url)
    seed(1, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    drain(app)
    delivery = db.session.scalar(select(Delivery))
    client = app.test_client()
    assert callback(client, twilio, delivery.id, delivery.provider_ref, "delivered", signature="forged").status_code == 403
    assert callback(client, twilio, delivery.id, delivery.provider_ref, "delivered").status_code == 204
    db.session.refresh(delivery)
    assert delivery.status == "delivered"
