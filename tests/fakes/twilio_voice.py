"""The fake Twilio API with Programmable Voice: the Calls resource, and a phone network that
answers the calls and presses keys, for tests and benchmarks.

    POST /2010-04-01/Accounts/{AccountSid}/Calls.json          create (201, status "queued")
    GET  /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json    fetch
    GET  /2010-04-01/Accounts/{AccountSid}/Calls.json          list, newest first, To/From/Status filters
    DELETE /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json  204; 404 + 20404 unknown; 409 + 20009 while
         the call is not over

Everything else (Messages, auth, programmed failures, `hold`, `outage`) is FakeTwilio's.
Behaviour copied from Twilio: `To` and `From` required (21213 without From), a `Url` or
`Twiml` required (21205), E.164 numbers (21211 otherwise), call SIDs "CA" + 32 hex, dates
in RFC 2822, `answered_by` only with MachineDetection, and the webhooks Twilio makes while
a call runs, each signed with X-Twilio-Signature over the exact URL and every field:

- answered: POST Url with CallSid, AccountSid, From, To, CallStatus=in-progress,
  Direction=outbound-api, ApiVersion, and AnsweredBy when MachineDetection was asked for;
- a key pressed in a <Gather>: POST its action with the same fields and Digits;
  without a key the call goes on with the verb after the <Gather>;
- the end: POST StatusCallback with CallStatus (completed, busy, no-answer, failed),
  CallDuration and AnsweredBy.

``ring(sid, answer=..., keys=...)`` plays one call to its end and returns what the
"resident" heard (every <Say>, with its voice). The TwiML is parsed with ElementTree.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any, Callable
from urllib.parse import parse_qs, parse_qsl, urlencode

import requests
from twilio.request_validator import RequestValidator

from tests.fakes.twilio_api import API_VERSION, ERROR_MESSAGES, FakeTwilio

_CALLS = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Calls(?:/([^/]+))?\.json$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
ERROR_MESSAGES.update({
    21205: "Url parameter is required.",
    21213: "'From' phone number is required.",
    21217: "Phone number does not appear to be valid",
})
# Twilio deletes only a call that is over (20009 otherwise).
_FINAL = ("completed", "busy", "no-answer", "failed", "canceled")
HUMAN = "human"
MACHINE = "machine"


@dataclass
class Heard:
    """What one call did: every <Say> (voice, language, text) and every key pressed."""

    said: list[tuple[str | None, str | None, str]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    slow: list[str] = field(default_factory=list)  # what was said at <prosody rate="slow">
    answers: list[int] = field(default_factory=list)  # HTTP status of each webhook

    @property
    def text(self) -> str:
        return " ".join(text for _voice, _lang, text in self.said)


class FakeTwilioVoice(FakeTwilio):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._calls: list[dict[str, Any]] = []
        self._calls_by_sid: dict[str, dict[str, Any]] = {}
        self._voice_session: threading.local = threading.local()
        self.deleted_calls: list[str] = []

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._calls = []
            self._calls_by_sid = {}
            self.deleted_calls = []

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Snapshot of created calls, oldest first: the wire fields as received (To, From,
        Url, StatusCallback, StatusCallbackEvent (a list), MachineDetection, Timeout,
        TimeLimit, Twiml) and sid, status, created_at, answered_by, duration."""
        with self._lock:
            return [dict(c) for c in self._calls]

    def call(self, sid: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._calls_by_sid[sid])

    # -- the phone network ------------------------------------------------------------------

    def ring(self, sid: str, answer: str = HUMAN, keys: Iterable[str] = (), *, callback: bool = True) -> Heard:
        """Play call `sid`: `answer` is "human", "machine", "busy", "no-answer" or "failed";
        `keys` are pressed one per <Gather>, in order. Then the status callback (unless
        `callback` is False: a lost callback). Returns what was heard."""
        heard = Heard()
        record = self.call(sid)
        if answer in ("busy", "no-answer", "failed"):
            self._set(sid, status=answer, duration=0)
        else:
            self._set(sid, status="in-progress", answered_by=(
                ("machine_end_beep" if answer == MACHINE else "human") if record.get("MachineDetection") else None))
            fields = self._fields(sid)
            if record.get("Twiml"):
                self._run(ET.fromstring(record["Twiml"]), fields, list(keys), heard)
            else:
                self._fetch_and_run(record["Url"], fields, list(keys), heard)
            words = len(heard.text.split())
            self._set(sid, status="completed", duration=max(1, round(words * 60 / 130)))
        if callback and record.get("StatusCallback"):  # without one Twilio tells nobody
            self.send_call_status(sid)
        return heard

    def call_in(self, url: str, from_: str, to: str = "+48338100200", keys: Iterable[str] = ()) -> Heard:
        """Someone dials the Twilio number whose "A call comes in" webhook is `url`: POST it
        (signed; CallStatus ringing, Direction inbound) and play the TwiML it answers."""
        heard = Heard()
        fields = {"CallSid": "CA" + uuid.uuid4().hex, "AccountSid": self.account_sid, "From": from_, "To": to,
                  "Caller": from_, "Called": to, "CallStatus": "ringing", "Direction": "inbound",
                  "ApiVersion": API_VERSION}
        self._fetch_and_run(url, fields, list(keys), heard)
        return heard

    def send_call_status(self, sid: str, url: str | None = None) -> int:
        """POST the call's status callback as it stands; returns the app's HTTP status."""
        record = self.call(sid)
        target = url or record.get("StatusCallback")
        if not target:
            raise ValueError(f"call {sid} has no StatusCallback")
        fields = self._fields(sid)
        fields["CallDuration"] = str(record["duration"] or 0)
        fields["Duration"] = str(max(1, (record["duration"] or 0) // 60 + 1)) if record["duration"] else "0"
        fields["CallbackSource"] = "call-progress-events"
        fields["Timestamp"] = format_datetime(datetime.now(timezone.utc))
        return self.post_signed(target, fields).status_code

    def post_signed(self, url: str, fields: dict[str, str], signature: str | None = None) -> requests.Response:
        """POST `fields` to `url` as Twilio does (signed, unless `signature` is given)."""
        signature = signature if signature is not None else RequestValidator(self.auth_token).compute_signature(
            url, fields)
        session = getattr(self._voice_session, "s", None)
        if session is None:
            session = self._voice_session.s = requests.Session()
            session.trust_env = False
        return session.post(url, data=fields, headers={"X-Twilio-Signature": signature,
                                                       "User-Agent": "TwilioProxy/1.1"},
                            timeout=15, allow_redirects=False)

    def _fields(self, sid: str) -> dict[str, str]:
        record = self.call(sid)
        fields = {"CallSid": sid, "AccountSid": self.account_sid, "From": record["From"], "To": record["To"],
                  "CallStatus": record["status"], "Direction": "outbound-api", "ApiVersion": API_VERSION,
                  "Called": record["To"], "Caller": record["From"]}
        if record.get("answered_by"):
            fields["AnsweredBy"] = record["answered_by"]
        return fields

    def _fetch_and_run(self, url: str, fields: dict[str, str], keys: list[str], heard: Heard,
                       depth: int = 0) -> None:
        if depth > 30:
            raise AssertionError("the call's TwiML kept redirecting")
        response = self.post_signed(url, fields)
        heard.answers.append(response.status_code)
        if response.status_code != 200:
            # Twilio says "An application error has occurred" and hangs up.
            heard.said.append((None, None, "<application error>"))
            return
        self._run(ET.fromstring(response.text), fields, keys, heard, depth)

    def _run(self, document: ET.Element, fields: dict[str, str], keys: list[str], heard: Heard,
             depth: int = 0) -> None:
        for verb in document:
            if verb.tag == "Say":  # with its SSML (<prosody>, <break>) read as its words
                heard.said.append((verb.get("voice"), verb.get("language"), "".join(verb.itertext()).strip()))
                heard.slow.extend(p.text or "" for p in verb.iter("prosody") if p.get("rate") == "slow")
            elif verb.tag == "Gather":
                for inner in verb:
                    if inner.tag == "Say":
                        heard.said.append((inner.get("voice"), inner.get("language"),
                                           "".join(inner.itertext()).strip()))
                if keys:
                    key = keys.pop(0)
                    heard.keys.append(key)
                    self._fetch_and_run(verb.get("action") or "", {**fields, "Digits": key}, keys, heard,
                                        depth + 1)
                    return
                # No key before the timeout: on with the next verb.
            elif verb.tag == "Redirect":
                self._fetch_and_run((verb.text or "").strip(), fields, keys, heard, depth + 1)
                return
            elif verb.tag == "Hangup":
                return

    def _set(self, sid: str, **values: Any) -> None:
        with self._lock:
            record = self._calls_by_sid[sid]
            record.update(values)
            if values.get("status") in ("completed", "busy", "no-answer", "failed", "canceled"):
                record["end_time"] = datetime.now(timezone.utc)

    # -- the WSGI app -------------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        match = _CALLS.match(environ.get("PATH_INFO", ""))
        if match is None:
            return super()._wsgi(environ, start_response)
        with self._lock:
            self.request_count += 1
            delay = self._delay
        if delay:
            time.sleep(delay)
        if environ.get("HTTP_AUTHORIZATION") != self._expected_auth:
            return self._error(start_response, 401, 20003)
        if match.group(1) != self.account_sid:
            return self._error(start_response, 404, 20404)
        sid, method = match.group(2), environ["REQUEST_METHOD"]
        if sid is None and method == "POST":
            return self._create_call(environ, start_response)
        if sid is None and method == "GET":
            return self._list_calls(environ, start_response)
        if method == "GET":
            with self._lock:
                record = self._calls_by_sid.get(sid)
                payload = self._call_json(record) if record else None
            if payload is None:
                return self._error(start_response, 404, 20404)
            return self._json(start_response, 200, payload)
        if method == "DELETE":
            with self._lock:
                record = self._calls_by_sid.get(sid)
                if record is not None and record["status"] in _FINAL:
                    del self._calls_by_sid[sid]
                    self._calls.remove(record)
                    self.deleted_calls.append(sid)
                    return self._respond(start_response, 204, b"", "application/json; charset=utf-8")
            return self._error(start_response, 404, 20404) if record is None else self._error(start_response, 409, 20009)
        return self._error(start_response, 405, 20004, "Method not allowed")

    def _create_call(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        form: dict[str, Any] = {}
        for key, value in parse_qsl(raw.decode("utf-8"), keep_blank_values=True):
            if key == "StatusCallbackEvent":
                form.setdefault(key, []).append(value)
            else:
                form[key] = value
        to = form.get("To", "")
        refused = self._programmed_answer(to, start_response)
        if refused is not None:
            return refused
        if not to:
            return self._error(start_response, 400, 21211, "A 'To' phone number is required.")
        if not _E164.match(to):
            return self._error(start_response, 400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not form.get("From"):
            return self._error(start_response, 400, 21213)
        if not form.get("Url") and not form.get("Twiml"):
            return self._error(start_response, 400, 21205)
        now = datetime.now(timezone.utc) + self._clock_offset
        record = {**form, "sid": "CA" + uuid.uuid4().hex, "status": "queued", "created_at": now, "answered_by": None,
                  "duration": None, "end_time": None}
        record.setdefault("StatusCallbackEvent", [])
        with self._lock:
            self._calls.append(record)
            self._calls_by_sid[record["sid"]] = record
            payload = self._call_json(record)
        return self._json(start_response, 201, payload)

    def _list_calls(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        refused = self._programmed_list_answer(start_response)
        if refused is not None:
            return refused
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        page_size = max(1, min(1000, int(query.get("PageSize", 50))))
        page = max(0, int(query.get("Page", 0)))
        with self._lock:
            selected = [c for c in reversed(self._calls)
                        if all(query.get(k) in (None, c.get(f)) for k, f in (("To", "To"), ("From", "From"),
                                                                                ("Status", "status")))]
            start = page * page_size
            rows = [self._call_json(c) for c in selected[start:start + page_size]]
        filters = {k: query[k] for k in ("To", "From", "Status") if k in query}
        path = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls.json"

        def page_uri(number: int) -> str:
            return f"{path}?{urlencode({**filters, 'PageSize': page_size, 'Page': number})}"

        payload = {"calls": rows, "first_page_uri": page_uri(0), "page": page, "page_size": page_size,
                   "next_page_uri": page_uri(page + 1) if start + page_size < len(selected) else None,
                   "previous_page_uri": page_uri(page - 1) if page > 0 else None, "start": start,
                   "end": start + len(rows) - 1 if rows else start, "uri": page_uri(page)}
        return self._json(start_response, 200, payload)

    def _call_json(self, record: dict[str, Any]) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{record['sid']}"
        created = format_datetime(record["created_at"])
        return {
            "sid": record["sid"], "account_sid": self.account_sid, "api_version": API_VERSION,
            "to": record["To"], "to_formatted": record["To"], "from": record["From"],
            "from_formatted": record["From"], "status": record["status"], "direction": "outbound-api",
            "answered_by": record["answered_by"], "duration": str(record["duration"]) if record["duration"] is not None
            else None, "date_created": created, "date_updated": created, "start_time": created,
            "end_time": format_datetime(record["end_time"]) if record["end_time"] else None,
            "parent_call_sid": None, "phone_number_sid": None, "price": None, "price_unit": "USD",
            "queue_time": "0", "trunk_sid": None, "caller_name": None, "forwarded_from": None, "group_sid": None,
            "annotation": None, "uri": f"{uri}.json", "subresource_uris": {"notifications": f"{uri}/Notifications.json"},
        }
