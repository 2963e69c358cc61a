"""TwilioSms through the real twilio SDK, over real HTTP, against tests/fakes/twilio_api.py."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from providers.sms import ProviderError, SmsChannel, SmsMessage, sms_channel_from_config
from providers.twilio_sms import TwilioSms
from tests.fakes.twilio_api import FakeTwilio

SERVICE_SID = "MG" + "1" * 32
RESIDENT = "+48501234567"
NEIGHBOUR = "+48601234567"
POLISH = "Ostrzeżenie IMGW: silny wiatr, gmina Kozy. Zamknijcie okna, zabezpieczcie łódź i żagle."


@pytest.fixture(scope="module")
def _server() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def fake(_server: FakeTwilio) -> FakeTwilio:
    _server.reset()
    return _server


def twilio_config(fake: FakeTwilio, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": fake.account_sid,
        "TWILIO_AUTH_TOKEN": fake.auth_token,
        "TWILIO_MESSAGING_SERVICE_SID": SERVICE_SID,
        "TWILIO_API_BASE": fake.base_url,
        "TWILIO_TIMEOUT": 2,
    }
    config.update(overrides)
    return config


@pytest.fixture
def sms(fake: FakeTwilio) -> TwilioSms:
    channel = sms_channel_from_config(twilio_config(fake))
    assert isinstance(channel, TwilioSms)
    return channel


def send_error(channel: SmsChannel, to: str = RESIDENT, body: str = "Test") -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        channel.send(SmsMessage(to=to, body=body))
    return caught.value


# -- what goes over the wire --------------------------------------------------------------


def test_it_sends_through_a_messaging_service(fake: FakeTwilio, sms: TwilioSms) -> None:
    result = sms.send(
        SmsMessage(
            to=RESIDENT,
            body=POLISH,
            status_callback="https://alerty.example.pl/twilio/status?d=42",
            validity_seconds=3600,
            reference="delivery-42",
        )
    )

    [sent] = fake.messages
    assert sent["To"] == RESIDENT
    assert sent["MessagingServiceSid"] == SERVICE_SID
    assert sent["From"] is None
    assert sent["Body"] == POLISH
    assert sent["StatusCallback"] == "https://alerty.example.pl/twilio/status?d=42"
    assert sent["ValidityPeriod"] == "3600"
    assert result.provider_ref == sent["sid"]
    assert result.provider_ref.startswith("SM") and len(result.provider_ref) == 34
    assert result.status == "accepted"
    # Twilio reports 0 segments until the service picks a sender: unknown, not free.
    assert result.segments is None


def test_it_sends_from_a_sender_id_when_there_is_no_messaging_service(fake: FakeTwilio) -> None:
    sms = sms_channel_from_config(
        twilio_config(fake, TWILIO_MESSAGING_SERVICE_SID=None, TWILIO_FROM="GminaKozy")
    )

    result = sms.send(SmsMessage(to=RESIDENT, body="Burza o 18:00"))

    [sent] = fake.messages
    assert sent["From"] == "GminaKozy"
    assert sent["MessagingServiceSid"] is None
    assert result.status == "queued"
    assert result.segments == 1


def test_it_prefers_the_messaging_service_when_both_senders_are_set(fake: FakeTwilio) -> None:
    sms = sms_channel_from_config(twilio_config(fake, TWILIO_FROM="GminaKozy"))

    sms.send(SmsMessage(to=RESIDENT, body="Test"))

    [sent] = fake.messages
    assert sent["MessagingServiceSid"] == SERVICE_SID
    assert sent["From"] is None


def test_it_leaves_optional_fields_and_our_reference_off_the_wire(fake: FakeTwilio, sms: TwilioSms) -> None:
    sms.send(SmsMessage(to=RESIDENT, body="Test", reference="delivery-secret-7"))

    [sent] = fake.messages
    assert sent["StatusCallback"] is None
    assert sent["ValidityPeriod"] is None
    assert "delivery-secret-7" not in repr(sent)


@pytest.mark.parametrize(("asked", "sent"), [(0, "1"), (-5, "1"), (36000, "36000"), (99999, "36000")])
def test_it_clamps_the_validity_period_to_twilios_range(
    fake: FakeTwilio, sms: TwilioSms, asked: int, sent: str
) -> None:
    sms.send(SmsMessage(to=RESIDENT, body="Test", validity_seconds=asked))

    assert fake.messages[0]["ValidityPeriod"] == sent


# -- error classification -----------------------------------------------------------------


def test_it_classifies_21610_as_opted_out(fake: FakeTwilio, sms: TwilioSms) -> None:
    fake.fail_number(RESIDENT, 21610)

    error = send_error(sms)

    assert (error.permanent, error.reason, error.code, error.ambiguous) == (True, "opted_out", 21610, False)
    assert fake.messages == []


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (21211, "invalid_number"),
        (21614, "landline"),
        (21635, "landline"),
        (21612, "blocked"),
        (21408, "config"),
        (21606, "config"),
        (21212, "config"),
    ],
)
def test_it_classifies_number_and_sender_errors_as_permanent(
    fake: FakeTwilio, sms: TwilioSms, code: int, reason: str
) -> None:
    fake.fail_number(RESIDENT, code)

    error = send_error(sms)

    assert (error.permanent, error.reason, error.code, error.ambiguous) == (True, reason, code, False)


def test_it_classifies_a_malformed_number_rejected_by_twilio_as_invalid(sms: TwilioSms) -> None:
    error = send_error(sms, to="501234567")

    assert (error.permanent, error.reason, error.code) == (True, "invalid_number", 21211)


def test_it_treats_wrong_credentials_as_a_config_error(fake: FakeTwilio) -> None:
    sms = sms_channel_from_config(twilio_config(fake, TWILIO_AUTH_TOKEN="not-the-token"))

    error = send_error(sms)

    assert (error.permanent, error.reason, error.code) == (True, "config", 20003)


def test_it_classifies_429_as_rate_limited_and_honours_retry_after(fake: FakeTwilio, sms: TwilioSms) -> None:
    fake.fail_next(1, status=429, retry_after=7)

    error = send_error(sms)

    assert (error.permanent, error.reason, error.code) == (False, "rate_limited", 20429)
    assert error.retry_after == 7.0
    assert error.ambiguous is False  # Twilio never processed it: safe to retry
    assert sms.send(SmsMessage(to=RESIDENT, body="Test")).status == "accepted"


def test_it_classifies_21611_as_rate_limited(fake: FakeTwilio, sms: TwilioSms) -> None:
    fake.fail_number(RESIDENT, 21611)

    error = send_error(sms)

    assert (error.permanent, error.reason, error.retry_after) == (False, "rate_limited", None)


def test_it_treats_sms_pumping_protection_as_a_temporary_block(fake: FakeTwilio, sms: TwilioSms) -> None:
    fake.fail_number(RESIDENT, 30450)

    error = send_error(sms)

    assert (error.permanent, error.reason, error.retry_after) == (False, "rate_limited", 900.0)


def test_it_classifies_500_from_twilio_as_unavailable(fake: FakeTwilio, sms: TwilioSms) -> None:
    fake.fail_next(1, status=500)

    error = send_error(sms)

    assert (error.permanent, error.reason, error.code) == (False, "unavailable", 20500)
    assert error.ambiguous is False  # Twilio answered with its own error: nothing was created


def test_it_treats_a_bare_502_from_a_gateway_as_ambiguous(fake: FakeTwilio, sms: TwilioSms) -> None:
    fake.fail_next(1, status=502, raw_body="<html>502 Bad Gateway</html>")

    error = send_error(sms)

    assert (error.permanent, error.reason, error.code, error.ambiguous) == (False, "unavailable", 502, True)


def test_it_treats_an_unreadable_201_as_ambiguous(fake: FakeTwilio, sms: TwilioSms) -> None:
    fake.fail_next(1, status=201, raw_body="<html>")

    error = send_error(sms)

    assert (error.permanent, error.reason, error.ambiguous) == (False, "unavailable", True)


def test_it_classifies_other_4xx_as_permanent_unknown(fake: FakeTwilio, sms: TwilioSms) -> None:
    fake.fail_number(RESIDENT, 21620, status=400)

    error = send_error(sms)

    assert (error.permanent, error.reason, error.code, error.ambiguous) == (True, "unknown", 21620, False)


def test_it_classifies_a_read_timeout_as_unavailable_and_ambiguous() -> None:
    # A separate fake: the slow request completes after this test, and must not leak
    # a message into another test's fake.
    with FakeTwilio() as slow:
        slow.delay(2)
        sms = sms_channel_from_config(twilio_config(slow, TWILIO_TIMEOUT=0.3))

        started = time.monotonic()
        error = send_error(sms)

        assert time.monotonic() - started < 1.5
        assert (error.permanent, error.reason, error.ambiguous) == (False, "unavailable", True)
        assert "timeout" in str(error)


def test_it_classifies_connection_refused_as_unavailable_and_not_ambiguous(fake: FakeTwilio) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    sms = sms_channel_from_config(twilio_config(fake, TWILIO_API_BASE=f"http://127.0.0.1:{closed_port}"))

    error = send_error(sms)

    assert (error.permanent, error.reason, error.ambiguous) == (False, "unavailable", False)


# -- lookups ------------------------------------------------------------------------------


def test_it_fetches_the_current_status(fake: FakeTwilio, sms: TwilioSms) -> None:
    sid = sms.send(SmsMessage(to=RESIDENT, body="Test")).provider_ref
    assert sms.fetch_status(sid) == ("accepted", None)

    fake.set_status(sid, "undelivered", error_code=30003)

    assert sms.fetch_status(sid) == ("undelivered", 30003)


def test_fetching_an_unknown_message_is_a_permanent_error(sms: TwilioSms) -> None:
    with pytest.raises(ProviderError) as caught:
        sms.fetch_status("SM" + "0" * 32)

    assert (caught.value.permanent, caught.value.code) == (True, 20404)


def test_it_finds_messages_sent_to_a_number_since_a_time(fake: FakeTwilio, sms: TwilioSms) -> None:
    old = sms.send(SmsMessage(to=RESIDENT, body="Wczorajsze ostrzeżenie")).provider_ref
    fake.set_status(old, "delivered")
    fake.backdate(old, 3600)
    since = datetime.now(timezone.utc) - timedelta(minutes=5)
    first = sms.send(SmsMessage(to=RESIDENT, body="Burza o 18:00")).provider_ref
    sms.send(SmsMessage(to=NEIGHBOUR, body="Burza o 18:00"))
    second = sms.send(SmsMessage(to=RESIDENT, body="Burza minęła")).provider_ref

    found = sms.find_sent(RESIDENT, since)

    assert [(r.provider_ref, r.body, r.to) for r in found] == [
        (first, "Burza o 18:00", RESIDENT),
        (second, "Burza minęła", RESIDENT),
    ]
    assert all(r.status == "accepted" and r.created_at.tzinfo is not None for r in found)
    assert sms.find_sent(RESIDENT, datetime.now(timezone.utc) + timedelta(seconds=2)) == []


def test_find_sent_follows_twilios_paging(fake: FakeTwilio, sms: TwilioSms) -> None:
    since = datetime.now(timezone.utc)
    for n in range(60):
        sms.send(SmsMessage(to=RESIDENT, body=f"Komunikat {n}"))

    found = sms.find_sent(RESIDENT, since)

    assert [r.body for r in found] == [f"Komunikat {n}" for n in range(60)]


def test_find_sent_rejects_a_naive_datetime(sms: TwilioSms) -> None:
    with pytest.raises(ValueError, match="aware"):
        sms.find_sent(RESIDENT, datetime.now())


# -- webhooks -----------------------------------------------------------------------------

CALLBACK_URL = "https://alerty.example.pl/twilio/status?d=42"
CALLBACK_FIELDS = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered", "To": RESIDENT}


def test_it_accepts_a_correctly_signed_webhook(fake: FakeTwilio, sms: TwilioSms) -> None:
    signature = RequestValidator(fake.auth_token).compute_signature(CALLBACK_URL, CALLBACK_FIELDS)

    assert sms.validate_webhook(CALLBACK_URL, MultiDict(CALLBACK_FIELDS), signature)
    assert sms.validate_webhook(CALLBACK_URL, {k: [v] for k, v in CALLBACK_FIELDS.items()}, signature)


def test_it_rejects_a_forged_webhook(fake: FakeTwilio, sms: TwilioSms) -> None:
    signature = RequestValidator(fake.auth_token).compute_signature(CALLBACK_URL, CALLBACK_FIELDS)
    tampered = {**CALLBACK_FIELDS, "MessageStatus": "undelivered"}
    forged = RequestValidator("someone-elses-token").compute_signature(CALLBACK_URL, CALLBACK_FIELDS)

    assert not sms.validate_webhook(CALLBACK_URL, MultiDict(tampered), signature)
    other_url = CALLBACK_URL.replace("d=42", "d=43")
    assert not sms.validate_webhook(other_url, MultiDict(CALLBACK_FIELDS), signature)
    assert not sms.validate_webhook(CALLBACK_URL, MultiDict(CALLBACK_FIELDS), forged)
    assert not sms.validate_webhook(CALLBACK_URL, MultiDict(CALLBACK_FIELDS), "")


def test_a_status_callback_from_the_fake_passes_validation(fake: FakeTwilio, sms: TwilioSms) -> None:
    received: list[dict[str, str]] = []

    @Request.application
    def receiver(request: Request) -> Response:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not sms.validate_webhook(request.url, request.form, signature):
            return Response(status=403)
        received.append(request.form.to_dict())
        return Response(status=204)

    server = make_server("127.0.0.1", 0, receiver, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}/twilio/status"
        callback = f"{base}?d=42"
        sid = sms.send(SmsMessage(to=RESIDENT, body="Test", status_callback=callback)).provider_ref

        assert fake.send_status_callback(sid, "undelivered", error_code=30003) == 204
        assert fake.send_status_callback(sid, "delivered", extra={"NewTwilioField": "x"}) == 204
        assert fake.send_status_callback(sid, "delivered", callback_url=f"{base}?d=43") == 204
    finally:
        server.shutdown()
        server.server_close()

    assert received[0]["MessageSid"] == sid
    assert received[0]["MessageStatus"] == "undelivered"
    assert received[0]["ErrorCode"] == "30003"
    assert received[0]["MessagingServiceSid"] == SERVICE_SID
    assert received[1]["NewTwilioField"] == "x"
    assert sms.fetch_status(sid) == ("delivered", None)


# -- connections and configuration -------------------------------------------------------


def test_each_thread_keeps_one_reused_connection(fake: FakeTwilio, sms: TwilioSms) -> None:
    def send_five() -> None:
        for _ in range(5):
            sms.send(SmsMessage(to=RESIDENT, body="Test"))

    threads = [threading.Thread(target=send_five) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(fake.messages) == 20
    assert fake.connections == 4


def test_the_sdk_always_has_a_timeout(fake: FakeTwilio) -> None:
    default = sms_channel_from_config(twilio_config(fake, TWILIO_TIMEOUT=None))
    configured = sms_channel_from_config(twilio_config(fake, TWILIO_TIMEOUT="0.5"))

    assert default._client()[0].timeout == 10.0
    assert configured._client()[0].timeout == 0.5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"TWILIO_AUTH_TOKEN": None}, "TWILIO_AUTH_TOKEN"),
        ({"TWILIO_ACCOUNT_SID": ""}, "TWILIO_ACCOUNT_SID"),
        ({"TWILIO_MESSAGING_SERVICE_SID": None}, "TWILIO_MESSAGING_SERVICE_SID"),
        ({"TWILIO_MESSAGING_SERVICE_SID": "+48501234567"}, "must start with 'MG'"),
        ({"TWILIO_TIMEOUT": "soon"}, "TWILIO_TIMEOUT"),
        ({"TWILIO_TIMEOUT": 0}, "TWILIO_TIMEOUT"),
        ({"TWILIO_API_BASE": "127.0.0.1:8000"}, "TWILIO_API_BASE"),
        ({"SMS_BACKEND": "nexmo"}, "unknown SMS_BACKEND"),
        ({"SMS_BACKEND": None}, "SMS_BACKEND is not set"),
    ],
)
def test_config_errors_name_the_setting(fake: FakeTwilio, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        sms_channel_from_config(twilio_config(fake, **overrides))


def test_the_twilio_backend_is_an_sms_channel(sms: TwilioSms) -> None:
    assert isinstance(sms, SmsChannel)
    assert sms.name == "twilio"
