"""Voice calls through Twilio Programmable Voice (the official `twilio` SDK), and the TwiML
the calls run.

Contract of a voice channel (this one and providers/console_voice.py):
- ``place(call) -> PlacedCall`` asks for one outgoing call; raises ProviderError classified
  like an SMS (permanent, reason, ambiguous: a timeout after the request was written may
  have placed the call).
- ``fetch(sid) -> CallRecord`` and ``find_calls(to, since) -> list[CallRecord]`` tell what
  Twilio did: a status callback that never came, or a dispatcher killed between placing a
  call and recording it (alerts/reconcile.py).
- ``validate_webhook(url, params, signature)`` checks X-Twilio-Signature.

The only module that knows the Calls resource, its parameters, statuses and error codes, and
TwiML. Why the HTTP client is built as it is: providers/twilio_sms.py (same SDK, same
reasons: a timeout always, one client per thread, no proxy re-reading per request).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from twilio.twiml.voice_response import VoiceResponse

from providers import twilio_sms
from providers.sms import ProviderError, require_aware

log = logging.getLogger(__name__)

# Calls API error code -> (permanent, reason) (twilio.com/docs/api/errors).
ERROR_CODES: dict[int, tuple[bool, str]] = {
    21211: (True, "invalid_number"),  # invalid 'To' number
    21217: (True, "invalid_number"),  # phone number does not appear to be valid
    21214: (True, "invalid_number"),  # 'To' number cannot be reached
    21216: (True, "blocked"),  # the account may not call this number
    21215: (True, "config"),  # Geo Permissions: calls to this country not enabled
    21210: (True, "config"),  # 'From' is not a verified or Twilio number
    21212: (True, "config"),  # invalid 'From'
    21213: (True, "config"),  # 'From' is required
    20003: (True, "config"),  # authentication failed
    20429: (False, "rate_limited"),  # too many requests: never processed
}
# Final call statuses; the others (queued, initiated, ringing, in-progress) are on the way.
FINAL_STATUSES = ("completed", "busy", "no-answer", "failed", "canceled")
# AnsweredBy values that mean an answering machine or voicemail took the call.
MACHINE = ("machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other")
_CALL_SID_RE = re.compile(r"^CA[0-9a-fA-F]{32}$")
# The longest a call may last (TimeLimit): a stuck menu must not run up the bill.
CALL_TIME_LIMIT_SECONDS = 300
# How many of a number's latest calls find_calls looks at (a resident gets a few a week).
FIND_CALLS_SCAN_LIMIT = 100


@dataclass(frozen=True)
class CallRequest:
    to: str
    # Where Twilio fetches the call's TwiML once answered (and posts AnsweredBy to).
    url: str | None
    status_callback: str | None
    # Detect an answering machine and wait for its beep, so the voicemail is whole.
    detect_machine: bool = True
    ring_seconds: int = 30
    time_limit_seconds: int = CALL_TIME_LIMIT_SECONDS
    # Inline TwiML instead of `url` (a sign-up code: nothing to fetch, nothing to answer).
    twiml: str | None = None
    # What the console backend prints instead of calling; Twilio never sees it.
    spoken: str | None = None


@dataclass(frozen=True)
class PlacedCall:
    provider_ref: str  # CallSid
    status: str


@dataclass(frozen=True)
class CallRecord:
    provider_ref: str
    to: str
    status: str
    created_at: datetime
    answered_by: str | None = None
    duration_seconds: int | None = None


@dataclass(frozen=True)
class CallReport:
    """A voice webhook's facts: which call, its status, who answered, and a key pressed."""

    provider_ref: str
    status: str
    answered_by: str | None
    duration_seconds: int | None
    digits: str | None

    @property
    def machine(self) -> bool:
        return self.answered_by in MACHINE or self.answered_by == "fax"


class TwilioVoice:
    """Outgoing calls through Twilio. Safe to share between threads."""

    name = "twilio"

    def __init__(self, account_sid: str, auth_token: str, from_: str, *, api_base: str | None = None,
                 timeout: float = twilio_sms.DEFAULT_TIMEOUT_SECONDS) -> None:
        if not from_ or not from_.startswith("+"):
            raise ValueError("TWILIO_VOICE_FROM must be the gmina's Twilio number in E.164 (+48...)")
        # The same account, client setup and signature check as the SMS channel.
        self._twilio = twilio_sms.TwilioSms(account_sid, auth_token, from_=from_, api_base=api_base,
                                            timeout=timeout)
        self.from_ = from_

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TwilioVoice:
        """Build from TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_VOICE_FROM (+ the API
        base and timeout the SMS channel uses); ValueError names what is missing."""
        missing = [name for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_VOICE_FROM")
                   if not str(config.get(name) or "").strip()]
        if missing:
            raise ValueError(f"VOICE_BACKEND=twilio but {', '.join(missing)} is not set")
        sid = str(config["TWILIO_ACCOUNT_SID"]).strip()
        if not sid.startswith("AC"):
            raise ValueError("TWILIO_ACCOUNT_SID must start with 'AC'")
        return cls(sid, str(config["TWILIO_AUTH_TOKEN"]).strip(), str(config["TWILIO_VOICE_FROM"]).strip(),
                   api_base=(str(config.get("TWILIO_API_BASE") or "").strip() or None),
                   timeout=float(config.get("TWILIO_TIMEOUT") or twilio_sms.DEFAULT_TIMEOUT_SECONDS))

    def __repr__(self) -> str:
        return f"<TwilioVoice from {self.from_} at {self._twilio.api_base}>"

    def place(self, call: CallRequest) -> PlacedCall:
        kwargs: dict[str, Any] = {"to": call.to, "from_": self.from_, "timeout": call.ring_seconds,
                                  "time_limit": call.time_limit_seconds}
        if call.twiml is not None:
            kwargs["twiml"] = call.twiml
        else:
            kwargs.update(url=call.url, method="POST")
        if call.status_callback:
            kwargs.update(status_callback=call.status_callback, status_callback_method="POST",
                          status_callback_event=["completed"])
        if call.detect_machine:
            # DetectMessageEnd: Twilio answers our URL after the greeting's beep, so the
            # voicemail version is recorded whole rather than over the greeting.
            kwargs["machine_detection"] = "DetectMessageEnd"
        http, client = self._twilio._client()
        try:
            created = client.calls.create(**kwargs)
        except twilio_sms._CAUGHT as exc:
            raise twilio_sms._classify(exc, http, "placing a call", ERROR_CODES) from exc
        return PlacedCall(provider_ref=str(created.sid), status=str(created.status))

    def fetch(self, provider_ref: str) -> CallRecord:
        if not self.owns_ref(provider_ref):
            raise ProviderError(f"not a Twilio call SID: {provider_ref!r}", permanent=True)
        http, client = self._twilio._client()
        try:
            call = client.calls(provider_ref).fetch()
        except twilio_sms._CAUGHT as exc:
            raise twilio_sms._classify(exc, http, f"fetching call {provider_ref}", ERROR_CODES) from exc
        return _record(call)

    def find_calls(self, to: str, since: datetime) -> list[CallRecord]:
        """Calls to `to` that Twilio created at or after `since` (rounded down to the
        second: Twilio reports seconds), oldest first. Callers own the clock-skew margin."""
        since_utc = require_aware(since).astimezone(timezone.utc).replace(microsecond=0)
        http, client = self._twilio._client()
        found: list[CallRecord] = []
        try:
            # Newest first: stop at the first call created before `since`.
            for call in client.calls.stream(to=to, limit=FIND_CALLS_SCAN_LIMIT, page_size=50):
                record = _record(call)
                if record.created_at < since_utc:
                    break
                found.append(record)
        except twilio_sms._CAUGHT as exc:
            raise twilio_sms._classify(exc, http, "listing calls", ERROR_CODES) from exc
        found.reverse()
        return found

    def owns_ref(self, provider_ref: str) -> bool:
        """Whether `provider_ref` is a Twilio call SID (CA...)."""
        return bool(_CALL_SID_RE.match(provider_ref))

    def delete_call(self, provider_ref: str) -> str:
        """Delete one call's record (number, times) from Twilio's logs, for erasure: "deleted",
        "gone" (404: already gone) or "in_flight" (20009: still going on; ask again later).
        Raises ProviderError otherwise."""
        if not self.owns_ref(provider_ref):
            raise ProviderError(f"not a Twilio call SID: {provider_ref!r}", permanent=True)
        http, client = self._twilio._client()
        try:
            client.calls(provider_ref).delete()
        except twilio_sms._CAUGHT as exc:
            if getattr(exc, "status", None) == 404:
                return "gone"
            if twilio_sms._to_int(getattr(exc, "code", None)) == twilio_sms.CANNOT_DELETE_YET:
                return "in_flight"
            raise twilio_sms._classify(exc, http, f"deleting call {provider_ref}", ERROR_CODES) from exc
        return "deleted"

    def validate_webhook(self, url: str, params: Mapping[str, Any], signature: str) -> bool:
        return self._twilio.validate_webhook(url, params, signature)


def _record(call: Any) -> CallRecord:
    created = call.date_created if isinstance(call.date_created, datetime) else datetime.now(timezone.utc)
    duration = twilio_sms._to_int(call.duration)
    return CallRecord(provider_ref=str(call.sid), to=str(call.to), status=str(call.status), created_at=created,
                      answered_by=call.answered_by or None, duration_seconds=duration)


# --- what Twilio posts to the voice webhooks ------------------------------------------------

def parse_report(form: Mapping[str, str]) -> CallReport | None:
    """The facts of a voice webhook (answer, gather or status), or None when it is not one."""
    sid = (form.get("CallSid") or "").strip()
    status = (form.get("CallStatus") or "").strip().lower()
    if not sid or not status:
        return None
    digits = (form.get("Digits") or "").strip() or None
    return CallReport(provider_ref=sid, status=status, answered_by=(form.get("AnsweredBy") or "").strip() or None,
                      duration_seconds=twilio_sms._to_int((form.get("CallDuration") or "").strip() or None),
                      digits=digits)


# --- TwiML -----------------------------------------------------------------------------------

class Slow(str):
    """A part said slowly (a code's digits): SSML <prosody rate="slow"> inside the <Say>,
    which Polly and Google voices read."""


@dataclass(frozen=True)
class Voice:
    """How <Say> speaks: the voice (Polly.Ola-Neural, Google.pl-PL-Wavenet-A, ...) and the
    language tag it reads in."""

    name: str
    language: str = "pl-PL"

    def say(self, parent: Any, text: str) -> None:
        if isinstance(text, Slow):
            parent.say(voice=self.name, language=self.language).prosody(str(text), rate="slow")
        else:
            parent.say(text, voice=self.name, language=self.language)


def message_twiml(voice: Voice, parts: list[str], menu: str, gather_url: str, goodbye: str,
                  menu_repeats: int = 2) -> str:
    """The call of a warning: `parts` read with a pause between them, then the key menu,
    inside a <Gather> of one key posted to `gather_url`. Without a key the menu is said again
    (`menu_repeats` times in all), then `goodbye` and the call ends."""
    response = VoiceResponse()
    gather = response.gather(num_digits=1, action=gather_url, method="POST", timeout=6)
    for part in parts:
        voice.say(gather, part)
        gather.pause(length=1)
    voice.say(gather, menu)
    for _ in range(menu_repeats - 1):
        again = response.gather(num_digits=1, action=gather_url, method="POST", timeout=6)
        voice.say(again, menu)
    voice.say(response, goodbye)
    response.hangup()
    return str(response)


def say_twiml(voice: Voice, parts: list[str], *, redirect: str | None = None) -> str:
    """Say `parts` with short pauses, then hang up (or go on at `redirect`)."""
    response = VoiceResponse()
    response.pause(length=1)
    for part in parts:
        voice.say(response, part)
        response.pause(length=1)
    if redirect:
        response.redirect(redirect, method="POST")
    else:
        response.hangup()
    return str(response)
