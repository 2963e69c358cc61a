"""A fake Twilio REST API on 127.0.0.1, for tests and benchmarks.

The real `twilio` SDK talks to it over real HTTP (set TWILIO_API_BASE / `client.api.base_url`
to `FakeTwilio.base_url`), so tests exercise the SDK's serialisation, error parsing and
paging exactly as in production. Only the Messages resource is implemented:

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json            create (201)
    GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json      fetch
    GET  /2010-04-01/Accounts/{AccountSid}/Messages.json            list, newest first, with
         To / From / DateSent / DateSent< / DateSent> filters and Twilio's paging envelope
    DELETE /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json    delete (204, empty body);
         404 + 20404 for an unknown (or already deleted) SID; 409 + 20009 while the message
         is not finished (accepted, scheduled, queued, sending, sent, receiving)

Behaviour copied from Twilio (research/delivery.md 1.1-1.9): HTTP basic auth with the
account SID and auth token (401 + error 20003 otherwise); initial status "accepted" with a
MessagingServiceSid, "queued" without; `num_segments` is "0" in the create response of a
Messaging Service send (no sender picked yet) and the real count afterwards; `from` is
null until then; error bodies are `{"code", "message", "more_info", "status"}`; DateSent
filters compare whole days and skip messages that have no date_sent yet. Twilio refuses
to delete a message until it is final ("20009: Cannot delete this resource before it is
complete"); "sent" counts as unfinished because Twilio waits for the carrier's receipt
(people deleting in bulk report "Cannot delete message in state SENT"). Which HTTP status
goes with 20009 is not documented; the fake answers 409, and clients go by the code.
`receive()` puts an incoming SMS (direction "inbound") in the log, as Twilio does.
`hold()` hangs chosen requests (creations to some numbers, list requests) until `release()`:
a provider call that hangs, or a provider slow to say what it sent.

Usage:

    with FakeTwilio() as twilio:
        ...  # point the app at twilio.base_url with twilio.account_sid / twilio.auth_token
        assert twilio.messages[0]["Body"] == "Ostrzeżenie"

The server is werkzeug's threaded server (`make_server(..., threaded=True)`, one thread
per connection) with a request handler that keeps connections alive and logs nothing,
and the app does no per-request framework work, so a benchmark can push tens of
thousands of messages through it (see `_KeepAliveHandler` for why keep-alive matters).
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any, Callable
from urllib.parse import parse_qs, parse_qsl, urlencode

import requests
from twilio.request_validator import RequestValidator
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "fa4e" * 8
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token"
# What a Messaging Service "picks" from its sender pool once a message leaves the queue.
DEFAULT_SERVICE_SENDER = "+48732000001"

_ROUTE = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages(?:/([^/]+))?\.json$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")

# Messages for the error codes tests usually program (wording from Twilio's error pages).
ERROR_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20009: "Cannot delete this resource before it is complete",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service Unavailable",
    21211: "Invalid 'To' Phone Number",
    21212: "Invalid 'From' Phone Number",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
    21602: "Message body is required.",
    21603: "The 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided is not a valid message-capable Twilio phone number.",
    21610: "Attempt to send to unsubscribed recipient",
    21611: "This 'From' number has exceeded the maximum number of queued messages",
    21612: "The 'To' phone number is not currently reachable via SMS",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit",
    21635: "The 'To' number cannot be a landline",
}
# Statuses after which Twilio has a date_sent.
_SENT_STATUSES = frozenset({"sending", "sent", "delivered", "undelivered", "read"})
_DEFAULT_CODE_FOR_STATUS = {429: 20429, 500: 20500, 503: 20503}
# Statuses in which Twilio refuses to delete a message (error 20009).
_UNFINISHED_STATUSES = frozenset({"accepted", "scheduled", "queued", "sending", "sent", "receiving"})

# GSM 03.38 default alphabet and its extension table (each extension char costs 2 septets).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("\f^{}\\[~]|€")


def count_segments(body: str) -> int:
    """SMS parts Twilio would bill for `body` (GSM-7 160/153, else UCS-2 70/67).

    Close enough for a fake: it does not move an extension char that straddles a part
    boundary to the next part, as handsets do.
    """
    septets = 0
    for char in body:
        if char in _GSM_BASIC:
            septets += 1
        elif char in _GSM_EXTENSION:
            septets += 2
        else:
            units = len(body.encode("utf-16-le")) // 2
            return 1 if units <= 70 else math.ceil(units / 67)
    return 1 if septets <= 160 else math.ceil(septets / 153)


class _KeepAliveHandler(WSGIRequestHandler):
    """werkzeug's request handler, minus two things that matter for a benchmark.

    1. Keep-alive. werkzeug's `run_wsgi` sends `Connection: close` after every response,
       so each SMS would cost a TCP handshake, a new server thread and a TIME_WAIT socket:
       20k messages would tie up 20k of the ~28k ephemeral ports for a minute (a second
       run would fail with EADDRNOTAVAIL) and it roughly halves throughput. Here the
       request body is read in full up front (so a response that ignores the body can
       never desynchronise the connection), and the response always has Content-Length,
       so HTTP/1.1 persistent connections are safe, as the real API allows.
    2. No access log line per request: it costs time and drowns test output.

    Only suitable for the app below, which always returns one bytes chunk.
    """

    protocol_version = "HTTP/1.1"
    # Headers and body go out in one write (below), and Nagle is off: otherwise a small
    # response can wait ~40 ms for the client's delayed ACK, i.e. 25 requests/s/thread.
    disable_nagle_algorithm = True
    # An idle keep-alive connection holds a server thread; let it go after a while.
    timeout = 30

    def run_wsgi(self) -> None:
        environ = self.make_environ()
        if environ.get("wsgi.input_terminated"):
            self.close_connection = True  # chunked request body: read it, then hang up
            body = environ["wsgi.input"].read()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))

        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            started[:] = [status, headers]

        try:
            data = b"".join(self.server.app(environ, start_response))
            status, headers = started
        except Exception:
            # A bug in the fake: say so loudly instead of dropping the connection, which
            # the client would report as an ambiguous network error.
            traceback.print_exc()
            self.close_connection = True
            data = json.dumps({"code": 20500, "message": "fake Twilio crashed", "status": 500}).encode()
            status = "500 Internal Server Error"
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        # What end_headers() does, with the body joined to the same single write.
        self._headers_buffer.append(b"\r\n" + data)
        self.flush_headers()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class FakeTwilio:
    """A running fake Twilio API. Thread-safe; start with `with` or `start()`/`stop()`."""

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        record_bodies: bool = True,
        service_sender: str = DEFAULT_SERVICE_SENDER,
    ) -> None:
        """`record_bodies=False` keeps `Body` out of `.messages` (None) to save memory in
        benchmarks; responses still echo the body."""
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.record_bodies = record_bodies
        self.service_sender = service_sender
        self._expected_auth = "Basic " + base64.b64encode(
            f"{account_sid}:{auth_token}".encode()
        ).decode("ascii")
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self._by_sid: dict[str, dict[str, Any]] = {}
        self._failing_numbers: dict[str, tuple[int, int]] = {}
        self._fail_next: list[tuple[int, int | None, float | None, str | None]] = []
        self._fail_deletes: tuple[int, int | None] | None = None
        self._fail_lists: tuple[int, int | None] | None = None
        self._deleted: list[str] = []
        self._delay = 0.0
        self._held_numbers: set[str] = set()
        self._hold_lists = False
        self._released = threading.Event()
        self._released.set()
        self._waiting = 0
        self._clock_offset = timedelta(0)
        self._outage_until = 0.0
        self._outage_status = 500
        self.request_count = 0
        self._peers: set[tuple[Any, Any]] = set()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._callback_session: requests.Session | None = None
        self.base_url = ""

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> FakeTwilio:
        """Bind a random free port on 127.0.0.1 and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._server = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_KeepAliveHandler
        )
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-twilio-{self._server.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving. Requests still sleeping in a `delay()` are abandoned (daemon threads)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._callback_session is not None:
            self._callback_session.close()
            self._callback_session = None
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget every message, programmed failure and delay (between tests)."""
        with self._lock:
            self._messages = []
            self._by_sid = {}
            self._failing_numbers.clear()
            self._fail_next.clear()
            self._fail_deletes = None
            self._fail_lists = None
            self._deleted = []
            self._delay = 0.0
            self._held_numbers.clear()
            self._hold_lists = False
            self._released.set()
            self._clock_offset = timedelta(0)
            self._outage_until = 0.0
            self.request_count = 0
            self._peers = set()

    # -- what tests read ----------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Snapshot of created messages, oldest first. Each dict holds the wire fields as
        received (To, From, MessagingServiceSid, Body, StatusCallback, ValidityPeriod; None
        when absent, plus any other field sent) and sid, created_at (aware UTC), status,
        error_code, date_sent, num_segments."""
        with self._lock:
            return list(self._messages)

    @property
    def connections(self) -> int:
        """Distinct client TCP connections seen since start/reset (keep-alive checks)."""
        with self._lock:
            return len(self._peers)

    @property
    def deleted(self) -> list[str]:
        """SIDs deleted through the API since start/reset, in order."""
        with self._lock:
            return list(self._deleted)

    def message(self, sid: str) -> dict[str, Any]:
        """A copy of the stored message with this SID (KeyError if unknown)."""
        with self._lock:
            return dict(self._by_sid[sid])

    # -- what tests program ---------------------------------------------------------------

    def fail_number(self, to: str, code: int, status: int = 400) -> None:
        """Every send to `to` answers a Twilio error (e.g. 21610, 400) until reset()."""
        with self._lock:
            self._failing_numbers[to] = (code, status)

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        code: int | None = None,
        retry_after: float | None = None,
        raw_body: str | None = None,
    ) -> None:
        """The next `n` message creations answer `status` with a Twilio error body (code
        defaults to 20429/20500/20503 for 429/500/503) and an optional Retry-After header.
        `raw_body` replaces the JSON body (e.g. an HTML page from a load balancer, or
        garbage after a 201) to test responses that did not come from Twilio's API."""
        with self._lock:
            for _ in range(n):
                self._fail_next.append((status, code, retry_after, raw_body))

    def fail_deletes(self, status: int = 500, code: int | None = None) -> None:
        """Every DELETE answers `status` with a Twilio error body until reset() (or
        fail_deletes(0))."""
        with self._lock:
            self._fail_deletes = None if not status else (status, code)

    def fail_lists(self, status: int = 500, code: int | None = None) -> None:
        """Every list request answers `status` with a Twilio error body until reset() (or
        fail_lists(0))."""
        with self._lock:
            self._fail_lists = None if not status else (status, code)

    def receive(self, from_: str, body: str, to: str = "+48732000000") -> str:
        """Log an SMS that `from_` sent to our number, as Twilio does before it calls the
        inbound webhook; returns its MessageSid (status "received", direction "inbound")."""
        now = datetime.now(timezone.utc)
        record: dict[str, Any] = {
            "To": to, "From": from_, "MessagingServiceSid": None, "Body": body if self.record_bodies else None,
            "StatusCallback": None, "ValidityPeriod": None, "direction": "inbound",
            "sid": "SM" + uuid.uuid4().hex, "created_at": now, "date_updated": now, "date_sent": now,
            "status": "received", "error_code": None, "num_segments": count_segments(body),
        }
        with self._lock:
            self._messages.append(record)
            self._by_sid[record["sid"]] = record
        return record["sid"]

    def delay(self, seconds: float) -> None:
        """Answer every request `seconds` late (0 to stop), e.g. to trigger client timeouts."""
        with self._lock:
            self._delay = max(0.0, float(seconds))

    def hold(self, numbers: Iterable[str] = (), *, lists: bool = False) -> None:
        """Hang requests until release() (or reset()): every message creation to one of
        `numbers`, and with `lists=True` every list request (what find_sent reads). A held
        request answers nothing meanwhile; once released it is served normally, so a held
        creation is recorded in `.messages` only when it is let go. `waiting` says how many
        requests are held right now. A hold left on lets go by itself after 60 s."""
        with self._lock:
            self._held_numbers.update(numbers)
            self._hold_lists = self._hold_lists or lists
            self._released.clear()

    def release(self) -> None:
        """Let every held request go, and hold no more."""
        with self._lock:
            self._held_numbers.clear()
            self._hold_lists = False
            self._released.set()

    @property
    def waiting(self) -> int:
        """Requests held by hold() right now."""
        with self._lock:
            return self._waiting

    def _wait_if_held(self, held: bool) -> None:
        if not held:
            return
        with self._lock:
            self._waiting += 1
        try:
            self._released.wait(60)
        finally:
            with self._lock:
                self._waiting -= 1

    def clock_offset(self, seconds: float) -> None:
        """Our clock runs `seconds` off real time (negative: behind): every date_created it
        records is shifted, as a provider whose clock is off would report it."""
        with self._lock:
            self._clock_offset = timedelta(seconds=seconds)

    def outage(self, seconds: float, status: int = 500) -> None:
        """Every message creation answers `status` (with a Twilio error body) for the next
        `seconds` of wall time, then the API recovers by itself."""
        with self._lock:
            self._outage_until = time.monotonic() + seconds
            self._outage_status = status

    def set_status(self, sid: str, status: str, error_code: int | None = None) -> None:
        """Move a message to `status` (what fetch and list report from now on)."""
        now = datetime.now(timezone.utc)
        with self._lock:
            record = self._by_sid[sid]
            record["status"] = status
            record["error_code"] = error_code
            record["date_updated"] = now
            if status in _SENT_STATUSES and record["date_sent"] is None:
                record["date_sent"] = now

    def backdate(self, sid: str, seconds: float) -> None:
        """Pretend a message was created (and sent, if it was) `seconds` earlier, e.g. to
        test reconciliation windows."""
        shift = timedelta(seconds=seconds)
        with self._lock:
            record = self._by_sid[sid]
            for key in ("created_at", "date_updated", "date_sent"):
                if record[key] is not None:
                    record[key] -= shift

    def send_status_callback(
        self,
        sid: str,
        status: str,
        error_code: int | None = None,
        callback_url: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> int:
        """Set the status, then POST a signed status callback like Twilio does; return the
        HTTP status the app answered.

        Posts to `callback_url` or the message's StatusCallback. Fields: MessageSid,
        SmsSid, MessageStatus, SmsStatus, AccountSid, From, To, ApiVersion, plus
        MessagingServiceSid when used, ErrorCode when given, RawDlrDoneDate on
        delivered/undelivered, and `extra` (Twilio adds fields without notice; the
        signature covers all of them). X-Twilio-Signature is computed with the auth token
        over the exact URL and every field, with twilio's own RequestValidator.
        """
        self.set_status(sid, status, error_code)
        with self._lock:
            record = dict(self._by_sid[sid])
        url = callback_url or record.get("StatusCallback")
        if not url:
            raise ValueError(f"message {sid} has no StatusCallback and no callback_url was given")
        params: dict[str, str] = {
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "AccountSid": self.account_sid,
            "From": record.get("From") or self.service_sender,
            "To": record["To"],
            "ApiVersion": API_VERSION,
        }
        if record.get("MessagingServiceSid"):
            params["MessagingServiceSid"] = record["MessagingServiceSid"]
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        if status in ("delivered", "undelivered"):
            # Carrier DLR "done date": YYMMDDhhmm, no timezone (as Twilio sends it).
            params["RawDlrDoneDate"] = datetime.now(timezone.utc).strftime("%y%m%d%H%M")
        if extra:
            params.update(extra)
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        if self._callback_session is None:
            self._callback_session = requests.Session()
            self._callback_session.trust_env = False  # never route a callback via a proxy
        response = self._callback_session.post(
            url,
            data=params,
            headers={"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"},
            timeout=15,  # Twilio's own read timeout for webhooks
            allow_redirects=False,
        )
        return response.status_code

    # -- the WSGI app -------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        peer = (environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT"))
        with self._lock:
            self.request_count += 1
            self._peers.add(peer)
            delay = self._delay
        if delay:
            time.sleep(delay)

        match = _ROUTE.match(environ.get("PATH_INFO", ""))
        method = environ["REQUEST_METHOD"]
        if match is None:
            return self._error(start_response, 404, 20404)
        if environ.get("HTTP_AUTHORIZATION") != self._expected_auth:
            return self._error(start_response, 401, 20003)
        if match.group(1) != self.account_sid:
            return self._error(start_response, 404, 20404)
        sid = match.group(2)
        if sid is None and method == "POST":
            return self._create(environ, start_response)
        if sid is None and method == "GET":
            return self._list(environ, start_response)
        if sid is not None and method == "GET":
            with self._lock:
                record = self._by_sid.get(sid)
                payload = self._message_json(record) if record is not None else None
            if payload is None:
                return self._error(start_response, 404, 20404)
            return self._json(start_response, 200, payload)
        if sid is not None and method == "DELETE":
            return self._delete(sid, start_response)
        return self._error(start_response, 405, 20004, "Method not allowed")

    def _delete(self, sid: str, start_response: Callable[..., Any]) -> Iterable[bytes]:
        with self._lock:
            failure = self._fail_deletes
            record = self._by_sid.get(sid)
            if failure is None and record is not None and record["status"] not in _UNFINISHED_STATUSES:
                del self._by_sid[sid]
                self._messages.remove(record)
                self._deleted.append(sid)
                return self._respond(start_response, 204, b"", "application/json; charset=utf-8")
        if failure is not None:
            status, code = failure
            return self._error(start_response, status, code if code is not None else _DEFAULT_CODE_FOR_STATUS.get(status))
        if record is None:
            return self._error(start_response, 404, 20404)
        return self._error(start_response, 409, 20009)

    def _create(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        form: dict[str, str] = {}
        for key, value in parse_qsl(raw.decode("utf-8"), keep_blank_values=True):
            form[key] = value  # repeated fields (MediaUrl) keep the last value: SMS never repeat

        to = form.get("To", "")
        refused = self._programmed_answer(to, start_response)
        if refused is not None:
            return refused

        body = form.get("Body")
        if not to:
            return self._error(start_response, 400, 21604)
        if not _E164.match(to):
            message = f"The 'To' number {to} is not a valid phone number."
            return self._error(start_response, 400, 21211, message)
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return self._error(start_response, 400, 21603)
        if not body:
            return self._error(start_response, 400, 21602)
        if len(body) > 1600:
            return self._error(start_response, 400, 21617)

        now = datetime.now(timezone.utc) + self._clock_offset
        via_service = bool(form.get("MessagingServiceSid"))
        record: dict[str, Any] = {
            "To": to,
            "From": form.get("From"),
            "MessagingServiceSid": form.get("MessagingServiceSid"),
            "Body": body if self.record_bodies else None,
            "StatusCallback": form.get("StatusCallback"),
            "ValidityPeriod": form.get("ValidityPeriod"),
        }
        for key, value in form.items():
            record.setdefault(key, value)
        record.update(
            sid="SM" + uuid.uuid4().hex,
            created_at=now,
            date_updated=now,
            date_sent=None,
            status="accepted" if via_service else "queued",
            error_code=None,
            num_segments=count_segments(body),
        )
        # Serialise from the request's body, so record_bodies=False still echoes it.
        payload = self._message_json(record, body=body, just_created=True)
        with self._lock:
            self._messages.append(record)
            self._by_sid[record["sid"]] = record
        return self._json(start_response, 201, payload)

    def _programmed_answer(self, to: str, start_response: Callable[..., Any]) -> Iterable[bytes] | None:
        """What a creation to `to` must answer instead of succeeding, as programmed with
        `hold`, `fail_next`, `outage` or `fail_number` (None: go on). A held number waits here."""
        with self._lock:
            held = to in self._held_numbers
        self._wait_if_held(held)
        with self._lock:
            failure = self._fail_next.pop(0) if self._fail_next else None
            if failure is None and time.monotonic() < self._outage_until:
                failure = (self._outage_status, None, None, None)
            number_failure = self._failing_numbers.get(to)
        if failure is not None:
            status, code, retry_after, raw_body = failure
            headers = [("Retry-After", _format_seconds(retry_after))] if retry_after is not None else []
            if raw_body is not None:
                return self._respond(start_response, status, raw_body.encode(), "text/html", headers)
            code = code if code is not None else _DEFAULT_CODE_FOR_STATUS.get(status)
            return self._error(start_response, status, code, headers=headers)
        if number_failure is not None:
            code, status = number_failure
            return self._error(start_response, status, code)
        return None

    def _programmed_list_answer(self, start_response: Callable[..., Any]) -> Iterable[bytes] | None:
        """What a list request must answer instead, as programmed with `hold(lists=True)` or
        `fail_lists` (None: go on). A held list waits here."""
        with self._lock:
            held = self._hold_lists
        self._wait_if_held(held)
        with self._lock:
            failure = self._fail_lists
        if failure is not None:
            status, code = failure
            return self._error(start_response, status, code if code is not None else _DEFAULT_CODE_FOR_STATUS.get(status))
        return None

    def _list(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        refused = self._programmed_list_answer(start_response)
        if refused is not None:
            return refused
        parsed = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        query = {key: values[-1] for key, values in parsed.items()}
        try:
            page_size = max(1, min(1000, int(query.get("PageSize", 50))))
            page = max(0, int(query.get("Page", 0)))
            on = _day(query.get("DateSent"))
            after = _day(query.get("DateSent>"))
            before = _day(query.get("DateSent<"))
        except ValueError:
            return self._error(start_response, 400, 20001, "Invalid paging or date parameter")
        to, from_ = query.get("To"), query.get("From")

        with self._lock:
            selected = []
            for record in reversed(self._messages):  # newest first, like Twilio
                if to is not None and record["To"] != to:
                    continue
                if from_ is not None and (record["From"] or self.service_sender) != from_:
                    continue
                if on or after or before:
                    sent = record["date_sent"]
                    if sent is None:
                        continue
                    day = sent.date()
                    if (on and day != on) or (after and day < after) or (before and day > before):
                        continue
                selected.append(record)
            start = page * page_size
            rows = [self._message_json(r) for r in selected[start:start + page_size]]

        filters = {k: query[k] for k in ("To", "From", "DateSent", "DateSent<", "DateSent>") if k in query}
        path = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

        def page_uri(number: int) -> str:
            return f"{path}?{urlencode({**filters, 'PageSize': page_size, 'Page': number})}"

        has_next = start + page_size < len(selected)
        payload = {
            "messages": rows,
            "end": start + len(rows) - 1 if rows else start,
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if has_next else None,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "page": page,
            "page_size": page_size,
            "start": start,
            "uri": page_uri(page),
        }
        return self._json(start_response, 200, payload)

    # -- serialisation -------------------------------------------------------------------

    def _message_json(
        self, record: dict[str, Any], *, body: str | None = None, just_created: bool = False
    ) -> dict[str, Any]:
        sid = record["sid"]
        via_service = bool(record["MessagingServiceSid"])
        from_ = record["From"] or (None if just_created else self.service_sender)
        segments = "0" if just_created and via_service else str(record["num_segments"])
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body if body is not None else record["Body"],
            "date_created": format_datetime(record["created_at"], usegmt=False),
            "date_sent": format_datetime(record["date_sent"]) if record["date_sent"] else None,
            "date_updated": format_datetime(record["date_updated"]),
            "direction": record.get("direction") or "outbound-api",
            "error_code": record["error_code"],
            "error_message": None,
            "from": from_,
            "messaging_service_sid": record["MessagingServiceSid"],
            "num_media": "0",
            "num_segments": segments,
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": record["status"],
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": record["To"],
            "uri": f"{uri}.json",
        }

    def _error(
        self,
        start_response: Callable[..., Any],
        status: int,
        code: int | None,
        message: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> Iterable[bytes]:
        payload = {
            "code": code,
            "message": message or ERROR_MESSAGES.get(code or 0, "Error"),
            "more_info": f"https://www.twilio.com/docs/errors/{code}" if code else None,
            "status": status,
        }
        return self._json(start_response, status, payload, headers)

    def _json(
        self,
        start_response: Callable[..., Any],
        status: int,
        payload: Any,
        headers: list[tuple[str, str]] | None = None,
    ) -> Iterable[bytes]:
        data = json.dumps(payload).encode("utf-8")
        return self._respond(start_response, status, data, "application/json; charset=utf-8", headers)

    @staticmethod
    def _respond(
        start_response: Callable[..., Any],
        status: int,
        data: bytes,
        content_type: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> Iterable[bytes]:
        start_response(
            f"{status} {_REASONS.get(status, 'Status')}",
            [("Content-Type", content_type), ("Content-Length", str(len(data))), *(headers or [])],
        )
        return [data]


_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _day(value: str | None) -> date | None:
    """Twilio's DateSent filters accept "YYYY-MM-DD" or a datetime; they compare days."""
    if not value:
        return None
    return date.fromisoformat(value[:10])


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
