"""SMSAPI through its official client (smsapi-client) against tests/fakes/smsapi_api.py,
and the whole delivery path with SMS_BACKEND=smsapi: publish -> dispatcher -> fake
SMSAPI -> notify_url report -> delivered."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from alerts import publish as lifecycle
from alerts.models import Delivery, DeliveryEvent
from db import db
from population import phone_for, seed
from providers.sms import ProviderError, SmsMessage, sms_channel_from_config
from providers.smsapi_sms import SmsapiSms
from subscribers.models import Subscriber
from tests.fakes.smsapi_api import FakeSmsapi
from tests.test_delivery import alert, drain


def channel(fake: FakeSmsapi, **kw) -> SmsapiSms:
    return SmsapiSms(fake.token, callback_secret="k" * 32, api_base=fake.base_url, timeout=2.0, **kw)


def test_it_sends_with_the_registered_sender_name_and_our_idx(smsapi):
    result = channel(smsapi, sender="GminaKozy").send(SmsMessage(
        to="+48501000001", body="Burza", reference="17", status_callback="https://x.pl/n?d=17&s=ab",
        validity_seconds=3600))
    sent = smsapi.requests[0]
    assert result.provider_ref == smsapi.messages[0]["id"] and result.status == "queued" and result.segments == 1
    assert sent["from"] == "GminaKozy" and sent["to"] == "48501000001" and sent["format"] == "json"
    assert sent["idx"] == "17" and sent["check_idx"] == "1" and sent["notify_url"] == "https://x.pl/n?d=17&s=ab"
    assert 3590 <= int(sent["expiration_date"]) - time.time() <= 3600


def test_without_a_sender_name_it_sends_eco_with_no_from(smsapi):
    channel(smsapi).send(SmsMessage(to="+48501000001", body="Burza"))
    assert "from" not in smsapi.requests[0]


@pytest.mark.parametrize("validity,ahead", [(60, 15 * 60), (36 * 3600, 12 * 3600)])
def test_the_expiration_is_clamped_to_what_smsapi_allows(smsapi, validity, ahead):
    channel(smsapi).send(SmsMessage(to="+48501000001", body="Burza", validity_seconds=validity))
    assert abs(int(smsapi.requests[0]["expiration_date"]) - time.time() - ahead) <= 5


def test_a_resend_with_the_same_idx_is_refused_by_smsapi_and_counts_as_already_sent(smsapi):
    sms = channel(smsapi)
    first = sms.send(SmsMessage(to="+48501000001", body="Burza", reference="42"))
    again = sms.send(SmsMessage(to="+48501000001", body="Burza", reference="42"))
    assert len(smsapi.messages) == 1 and first.provider_ref == smsapi.messages[0]["id"]
    assert again.status == "sent" and again.provider_ref == "idx:42"


@pytest.mark.parametrize("code,permanent,reason", [
    (13, True, "invalid_number"), (57, True, "opted_out"), (14, True, "config"), (103, True, "config"),
    (32, True, "blocked"), (203, False, "rate_limited"), (202, False, "rate_limited"),
    (201, False, "unavailable"), (999, False, "unavailable"), (12345, False, "unknown"),
])
def test_each_error_code_is_classified(smsapi, code, permanent, reason):
    smsapi.fail_next(code=code)
    with pytest.raises(ProviderError) as caught:
        channel(smsapi).send(SmsMessage(to="+48501000001", body="Burza"))
    assert (caught.value.permanent, caught.value.reason, caught.value.code) == (permanent, reason, code)
    assert not caught.value.ambiguous


def test_a_wrong_token_is_a_permanent_configuration_error(smsapi):
    with pytest.raises(ProviderError) as caught:
        SmsapiSms("wrong", callback_secret="k", api_base=smsapi.base_url).send(
            SmsMessage(to="+48501000001", body="Burza"))
    assert caught.value.permanent and caught.value.reason == "config" and caught.value.code == 101


@pytest.mark.parametrize("status,permanent,reason", [(503, False, "unavailable"), (429, False, "rate_limited"),
                                                     (404, True, "unknown")])
def test_a_bare_http_error_is_classified_by_its_status(smsapi, status, permanent, reason):
    smsapi.fail_next(status=status, body="<html>proxy error</html>")
    with pytest.raises(ProviderError) as caught:
        channel(smsapi).send(SmsMessage(to="+48501000001", body="Burza"))
    assert (caught.value.permanent, caught.value.reason) == (permanent, reason)


def test_a_timeout_is_ambiguous_and_a_refused_connection_is_not(smsapi):
    smsapi.delay(1.5)
    with pytest.raises(ProviderError) as caught:
        SmsapiSms(smsapi.token, callback_secret="k", api_base=smsapi.base_url, timeout=0.3).send(
            SmsMessage(to="+48501000001", body="Burza"))
    assert caught.value.ambiguous and not caught.value.permanent
    smsapi.delay(0)
    with pytest.raises(ProviderError) as caught:
        SmsapiSms("t", callback_secret="k", api_base="http://127.0.0.1:9/").send(
            SmsMessage(to="+48501000001", body="Burza"))
    assert not caught.value.ambiguous and caught.value.reason == "unavailable"


def test_fetch_status_looks_the_message_up_by_its_id(smsapi):
    sms = channel(smsapi)
    ref = sms.send(SmsMessage(to="+48501000001", body="Burza")).provider_ref
    smsapi.messages[0]["status"] = "DELIVERED"
    assert sms.fetch_status(ref) == ("delivered", None)
    with pytest.raises(ProviderError) as caught:
        sms.fetch_status("NOPE")
    assert caught.value.code == 301


def test_the_notify_url_secret_is_checked_and_bound_to_its_delivery(smsapi):
    sms = channel(smsapi)
    url = sms.notify_url("https://alerty.example.pl", "7")
    assert sms.validate_webhook(url + "&MsgId=X&status=404", {}, "")
    assert not sms.validate_webhook(url.replace("d=7", "d=8"), {}, "")
    assert not sms.validate_webhook("https://alerty.example.pl/webhooks/smsapi/status?d=7&s=00", {}, "")
    assert not SmsapiSms("t", callback_secret="other", api_base=smsapi.base_url).validate_webhook(url, {}, "")


def test_it_never_claims_to_have_deleted_a_sent_message(smsapi):
    """SMSAPI's API deletes only scheduled messages: an erasure must count a sent one as not
    deleted, not as gone."""
    with pytest.raises(ProviderError) as refused:
        channel(smsapi).delete_message("4711")
    assert refused.value.permanent


def test_sms_backend_smsapi_builds_it_and_names_a_missing_token(smsapi):
    built = sms_channel_from_config({"SMS_BACKEND": "smsapi", "SMSAPI_TOKEN": "t", "SECRET_KEY": "s",
                                     "SMSAPI_SENDER": "Gmina"})
    assert isinstance(built, SmsapiSms) and built.sender == "Gmina"
    with pytest.raises(ValueError, match="SMSAPI_TOKEN"):
        sms_channel_from_config({"SMS_BACKEND": "smsapi", "SECRET_KEY": "s"})


# --- the whole path ------------------------------------------------------------------------
@pytest.fixture
def smsapi_app(make_app, smsapi):
    return make_app(SMS_BACKEND="smsapi", SMSAPI_TOKEN=smsapi.token, SMSAPI_API_BASE=smsapi.base_url,
                    SMSAPI_SENDER="GminaKozy", SMSAPI_TIMEOUT=5.0)


def test_an_alert_goes_through_smsapi_and_its_report_marks_it_delivered(smsapi_app, smsapi):
    seed(3, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert(expires_in=timedelta(hours=2)))
    drain(smsapi_app)
    assert sorted(m["number"] for m in smsapi.messages) == sorted(phone_for(n).lstrip("+") for n in range(3))
    client = smsapi_app.test_client()
    for message in smsapi.messages:
        delivery = db.session.scalar(select(Delivery).where(Delivery.provider_ref == message["id"]))
        assert message["idx"] == str(delivery.id) and message["from"] == "GminaKozy"
        assert message["notify_url"].startswith(f"https://alerty.example.pl/webhooks/smsapi/status?d={delivery.id}&s=")
        assert abs(int(message["expiration_date"]) - time.time() - 7200) < 60
        response = client.get(smsapi.report_url(message["id"], 404))
        assert response.status_code == 200 and response.text == "OK"
        assert client.get(smsapi.report_url(message["id"], 403)).status_code == 200  # late: no step back
        db.session.refresh(delivery)
        assert delivery.status == "delivered"
    assert db.session.scalar(select(func.count()).select_from(DeliveryEvent)
                             .where(DeliveryEvent.source == "callback")) == 6


def test_a_forged_report_is_refused_and_changes_nothing(smsapi_app, smsapi):
    seed(1, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    drain(smsapi_app)
    delivery = db.session.scalar(select(Delivery))
    url = smsapi.report_url(smsapi.messages[0]["id"], 405)
    forged = url.split("&s=")[0] + "&s=" + "0" * 64 + "&" + url.split("&s=")[1].split("&", 1)[1]
    client = smsapi_app.test_client()
    assert client.get(forged).status_code == 403
    assert client.get(f"/webhooks/smsapi/status?d={delivery.id}&MsgId=X&status=405").status_code == 403
    db.session.refresh(delivery)
    assert delivery.status == "sent"
    assert db.session.scalar(select(func.count()).select_from(DeliveryEvent)
                             .where(DeliveryEvent.source == "callback")) == 0


def test_a_stop_report_opts_the_resident_out(smsapi_app, smsapi):
    seed(1, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    drain(smsapi_app)
    assert smsapi_app.test_client().get(smsapi.report_url(smsapi.messages[0]["id"], 412)).status_code == 200
    delivery = db.session.scalar(select(Delivery))
    assert delivery.status == "failed"
    assert db.session.get(Subscriber, delivery.subscriber_id).status == "opted_out"


def test_a_resend_after_a_crash_is_refused_by_idx_and_the_delivery_ends_sent(smsapi_app, smsapi):
    seed(1, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert())
    drain(smsapi_app)
    delivery = db.session.scalar(select(Delivery))
    # As if the dispatcher died after SMSAPI took the message but before we recorded it.
    delivery.status, delivery.provider_ref, delivery.next_attempt_at = "pending", None, db.func.now()
    db.session.commit()
    drain(smsapi_app)
    db.session.refresh(delivery)
    assert len(smsapi.messages) == 1 and smsapi.requests[-1]["idx"] == str(delivery.id)
    assert delivery.status == "sent" and delivery.provider_ref == f"idx:{delivery.id}"
    # The report of the first attempt still finds the delivery and names the real message.
    assert smsapi_app.test_client().get(smsapi.report_url(smsapi.messages[0]["id"], 404)).status_code == 200
    db.session.refresh(delivery)
    assert delivery.status == "delivered" and delivery.provider_ref == smsapi.messages[0]["id"]


def test_a_transient_smsapi_error_is_retried_later(smsapi_app, smsapi):
    seed(1, categories={"weather": 1}, areas=["KOZY"])
    smsapi.fail_next(code=201)
    lifecycle.publish(alert())
    drain(smsapi_app)
    delivery = db.session.scalar(select(Delivery))
    assert delivery.status == "pending" and delivery.attempts == 1 and not smsapi.messages
    delivery.next_attempt_at = db.func.now()
    db.session.commit()
    drain(smsapi_app)
    db.session.refresh(delivery)
    assert delivery.status == "sent" and len(smsapi.messages) == 1


@pytest.mark.parametrize("code,resident", [(57, "opted_out"), (13, "deactivated")])
def test_a_blacklisted_or_invalid_number_is_never_retried_and_the_resident_is_updated(smsapi_app, smsapi,
                                                                                       code, resident):
    seed(2, categories={"weather": 1}, areas=["KOZY"])
    smsapi.fail_number(phone_for(0), code)
    lifecycle.publish(alert())
    drain(smsapi_app)
    statuses = dict(db.session.execute(select(Subscriber.phone, Subscriber.status)).all())
    assert statuses == {phone_for(0): resident, phone_for(1): "active"}
    failed = db.session.scalar(select(Delivery).where(Delivery.status == "failed"))
    assert failed.error_code == str(code) and failed.attempts == 1
    assert [m["number"] for m in smsapi.messages] == [phone_for(1).lstrip("+")]
