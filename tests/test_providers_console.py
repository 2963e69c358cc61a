"""ConsoleSms (the development backend) and the parts of the SMS contract every backend shares."""

from __future__ import annotations

import logging
import pickle
import threading
from datetime import datetime, timedelta, timezone

import pytest

from providers.console_sms import ConsoleSms
from providers.sms import ProviderError, SmsChannel, SmsMessage, sms_channel_from_config

RESIDENT = "+48501234567"
POLISH = "Ostrzeżenie: burza z gradem, gmina Kozy, do godz. 18:00. Źródło: IMGW."


def test_the_console_backend_is_built_from_config() -> None:
    sms = sms_channel_from_config({"SMS_BACKEND": "Console "})

    assert isinstance(sms, ConsoleSms)
    assert isinstance(sms, SmsChannel)
    assert sms.name == "console"


CODE_SMS = "Gmina Kozy: kod 483920, wazny 10 min."
LINK_SMS = "Gmina Kozy: potwierdzono zapis. Ustawienia: https://alerty.example.pl/m/17-1.aB3dE_fG-hI STOP"


def test_in_development_it_prints_the_whole_message_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    sms = ConsoleSms(reveal=True)

    result = sms.send(SmsMessage(to=RESIDENT, body=POLISH, reference="delivery-42"))

    out = capsys.readouterr().out
    assert RESIDENT in out
    assert POLISH in out
    assert "delivery-42" in out
    assert result.provider_ref in out
    assert "not sent" in out


def test_unless_told_to_reveal_it_prints_no_number_code_or_manage_link(capsys: pytest.CaptureFixture[str]) -> None:
    sms = ConsoleSms()

    sms.send(SmsMessage(to=RESIDENT, body=CODE_SMS))
    sms.send(SmsMessage(to=RESIDENT, body=LINK_SMS))

    out = capsys.readouterr().out
    assert RESIDENT not in out and "483920" not in out and "17-1.aB3dE_fG-hI" not in out
    assert "+48501***567" in out and "kod ******" in out and "/m/*** STOP" in out


@pytest.mark.parametrize("reveal", [False, True])
def test_its_log_never_holds_a_number_code_or_manage_link(caplog: pytest.LogCaptureFixture, reveal: bool) -> None:
    with caplog.at_level(logging.INFO, logger="providers.console_sms"):
        ConsoleSms(reveal=reveal).send(SmsMessage(to=RESIDENT, body=CODE_SMS))
        ConsoleSms(reveal=reveal).send(SmsMessage(to=RESIDENT, body=LINK_SMS))

    assert RESIDENT not in caplog.text
    assert "483920" not in caplog.text
    assert "17-1.aB3dE_fG-hI" not in caplog.text
    assert "kod ******, wazny 10 min." in caplog.text  # the rest of the text is kept


def test_the_development_app_reveals_and_any_other_does_not(make_app) -> None:  # noqa: ANN001
    assert make_app(SMS_BACKEND="console").extensions["sms"].reveal is False
    development = make_app(SMS_BACKEND="console", SYRENA_ENV="development", TESTING=False,
                           SECRET_KEY="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
    assert development.extensions["sms"].reveal is True


def test_it_returns_a_console_id_and_an_unknown_segment_count(capsys: pytest.CaptureFixture[str]) -> None:
    result = ConsoleSms().send(SmsMessage(to=RESIDENT, body="Test"))

    assert result.provider_ref.startswith("console-")
    assert len(result.provider_ref) == len("console-") + 32
    assert result.status == "queued"
    assert result.segments is None


def test_it_reports_its_own_messages_as_delivered(capsys: pytest.CaptureFixture[str]) -> None:
    sms = ConsoleSms()
    ref = sms.send(SmsMessage(to=RESIDENT, body="Test")).provider_ref

    assert sms.fetch_status(ref) == ("delivered", None)


def test_fetching_a_message_it_never_sent_is_a_permanent_error() -> None:
    with pytest.raises(ProviderError) as caught:
        ConsoleSms().fetch_status("console-" + "0" * 32)

    assert caught.value.permanent


def test_it_finds_messages_it_sent_since_a_time(capsys: pytest.CaptureFixture[str]) -> None:
    sms = ConsoleSms()
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    first = sms.send(SmsMessage(to=RESIDENT, body="Burza o 18:00")).provider_ref
    sms.send(SmsMessage(to="+48601234567", body="Burza o 18:00"))
    second = sms.send(SmsMessage(to=RESIDENT, body="Burza minęła")).provider_ref

    found = sms.find_sent(RESIDENT, since)

    assert [(r.provider_ref, r.body) for r in found] == [(first, "Burza o 18:00"), (second, "Burza minęła")]
    assert sms.find_sent(RESIDENT, datetime.now(timezone.utc) + timedelta(seconds=1)) == []
    with pytest.raises(ValueError, match="aware"):
        sms.find_sent(RESIDENT, datetime.now())


def test_it_forgets_the_oldest_messages_beyond_its_limit(capsys: pytest.CaptureFixture[str]) -> None:
    sms = ConsoleSms(max_records=2)
    refs = [sms.send(SmsMessage(to=RESIDENT, body=f"Komunikat {n}")).provider_ref for n in range(3)]

    with pytest.raises(ProviderError):
        sms.fetch_status(refs[0])
    assert sms.fetch_status(refs[2]) == ("delivered", None)


def test_it_rejects_every_webhook() -> None:
    assert ConsoleSms().validate_webhook("https://alerty.example.pl/twilio/status", {}, "anything") is False


def test_concurrent_sends_print_whole_blocks(capsys: pytest.CaptureFixture[str]) -> None:
    sms = ConsoleSms()

    def send_ten(worker: int) -> None:
        for n in range(10):
            sms.send(SmsMessage(to=RESIDENT, body=f"worker {worker} message {n}"))

    threads = [threading.Thread(target=send_ten, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    blocks = capsys.readouterr().out.split("---- SMS")[1:]
    assert len(blocks) == 80
    assert all(block.count("worker ") == 1 for block in blocks)


# -- the shared contract ------------------------------------------------------------------


def test_provider_error_refuses_an_unknown_reason() -> None:
    with pytest.raises(ValueError, match="reason"):
        ProviderError("oops", reason="opted-out")


def test_provider_error_says_what_happened() -> None:
    error = ProviderError("sending SMS", permanent=True, code=21610, reason="opted_out")

    assert str(error) == "sending SMS (permanent, opted_out, code 21610)"
    assert error.ambiguous is False and error.retry_after is None


def test_provider_error_keeps_its_classification_through_pickle() -> None:
    error = ProviderError("timeout", reason="unavailable", retry_after=2.5, ambiguous=True, code=None)

    copy = pickle.loads(pickle.dumps(error))

    assert (copy.reason, copy.retry_after, copy.ambiguous) == ("unavailable", 2.5, True)
    assert copy.permanent is False
