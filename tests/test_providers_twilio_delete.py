"""TwilioSms.delete_message through the real SDK against the fake Twilio's DELETE."""

from __future__ import annotations

import pytest

from providers.sms import ProviderError, SmsMessage
from providers.twilio_sms import TwilioSms
from tests.fakes.twilio_api import FakeTwilio


@pytest.fixture
def sms(twilio: FakeTwilio) -> TwilioSms:
    return TwilioSms(twilio.account_sid, twilio.auth_token, messaging_service_sid="MG" + "0" * 32,
                     api_base=twilio.base_url, timeout=5)


def test_a_finished_message_is_deleted_with_its_body(sms, twilio):
    sid = sms.send(SmsMessage(to="+48501234567", body="Ostrzezenie")).provider_ref
    twilio.set_status(sid, "delivered")
    assert sms.delete_message(sid) == "deleted"
    assert twilio.deleted == [sid] and twilio.messages == []
    assert sms.delete_message(sid) == "gone"  # a second time: Twilio no longer knows it


def test_an_incoming_text_can_be_deleted_too(sms, twilio):
    sid = twilio.receive("+48501234567", "Dziekuje")
    assert sms.delete_message(sid) == "deleted"


@pytest.mark.parametrize("status", ["accepted", "queued", "sending", "sent"])
def test_a_message_twilio_has_not_finished_is_not_deletable_yet(sms, twilio, status):
    sid = sms.send(SmsMessage(to="+48501234567", body="Ostrzezenie")).provider_ref
    twilio.set_status(sid, status)
    assert sms.delete_message(sid) == "in_flight"
    assert twilio.message(sid)["Body"] == "Ostrzezenie"


def test_an_outage_is_a_transient_error_and_bad_credentials_a_permanent_one(sms, twilio):
    sid = sms.send(SmsMessage(to="+48501234567", body="Ostrzezenie")).provider_ref
    twilio.set_status(sid, "delivered")
    twilio.fail_deletes(503)
    with pytest.raises(ProviderError) as outage:
        sms.delete_message(sid)
    assert not outage.value.permanent and outage.value.reason == "unavailable"
    twilio.fail_deletes(0)
    wrong = TwilioSms(twilio.account_sid, "wrong-token", messaging_service_sid="MG" + "0" * 32,
                      api_base=twilio.base_url, timeout=5)
    with pytest.raises(ProviderError) as auth:
        wrong.delete_message(sid)
    assert auth.value.permanent and auth.value.reason == "config"
    assert twilio.deleted == []


def test_something_that_is_no_sid_never_reaches_twilio(sms, twilio):
    before = twilio.request_count
    with pytest.raises(ProviderError):
        sms.delete_message("../Calls/CA123")
    assert twilio.request_count == before
