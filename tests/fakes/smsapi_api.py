"""A fake SMSAPI.pl API on 127.0.0.1, spoken to by the real `smsapi-client`.

Point the client at `FakeSmsapi.base_url` (SMSAPI_API_BASE). Implemented, as the client
calls it (smsapi-client 2.9.7, smsapi/endpoint.py):

    POST /sms.do   form fields to, message, from, idx, check_idx, notify_url,
                   expiration_date, encoding, format=json -> {"count", "list": [...]}
    GET  /sms.do?status=<id>&format=json               -> the same envelope, one message

Behaviour copied from SMSAPI's documentation (research/needs-voice-smsapi-cap-rollcall.md):
`Authorization: Bearer <token>` or HTTP 401 with {"error": 101, ...}; errors are HTTP 200
with {"error": code, "message": ...} (the client raises SendException from them);
check_idx=1 refuses an idx already used (error 53); an expiration_date less than 15 min
or more than 12 h ahead is refused (error 56); reports are a GET to the message's
notify_url with MsgId, status (401..412), idx, donedate, to, points.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlencode

from werkzeug.serving import BaseWSGIServer, make_server


class FakeSmsapi:
    def __init__(self, token: str = "fake-smsapi-token") -> None:
        self.token = token
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> FakeSmsapi:
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSmsapi:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}/"

    def reset(self) -> None:
        """Forget everything. A request still in flight (a test's deliberate timeout) is
        answered but not recorded, so it cannot leak into the next test."""
        with self._lock:
            self._generation = getattr(self, "_generation", 0) + 1
            self.messages: list[dict[str, Any]] = []
            self.requests: list[dict[str, Any]] = []
            self._failures: list[tuple[int, int | None, str]] = []
            self._number_errors: dict[str, int] = {}
            self._delay = 0.0

    # --- steering ----------------------------------------------------------------------
    def fail_next(self, count: int = 1, *, status: int = 200, code: int | None = 201,
                  body: str | None = None) -> None:
        """The next `count` sends answer HTTP `status` with SMSAPI error `code` (or raw `body`)."""
        with self._lock:
            self._failures.extend([(status, code, body or "")] * count)

    def fail_number(self, to: str, code: int) -> None:
        """Every send to `to` (with or without '+') answers SMSAPI error `code`."""
        with self._lock:
            self._number_errors[to.lstrip("+")] = code

    def delay(self, seconds: float) -> None:
        self._delay = seconds

    def report_url(self, msg_id: str, status: int) -> str:
        """The URL SMSAPI calls (GET) to report on a message: its notify_url plus the
        report fields (MsgId, status 401..412, idx, donedate, to, points, username, from)."""
        message = next(m for m in self.messages if m["id"] == msg_id)
        params = {"MsgId": msg_id, "status": str(status), "idx": message.get("idx") or "",
                  "donedate": str(int(time.time())), "to": message["number"], "points": "0.16",
                  "username": "gmina@example.pl", "from": message.get("from") or "ECO"}
        url = message["notify_url"]
        return url + ("&" if "?" in url else "?") + urlencode(params)

    # --- the API -----------------------------------------------------------------------
    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if environ.get("PATH_INFO") != "/sms.do":
            return self._json(start_response, {"error": 8, "message": "Not found"}, status=404)
        if environ.get("HTTP_AUTHORIZATION") != f"Bearer {self.token}":
            return self._json(start_response, {"error": 101, "message": "Authorization failed"}, status=401)
        if method == "GET":
            query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
            return self._status(query, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = {k: v[-1] for k, v in parse_qs(environ["wsgi.input"].read(length).decode()).items()}
        with self._lock:
            self.requests.append(form)
            failure = self._failures.pop(0) if self._failures else None
            generation = self._generation
        if self._delay:
            time.sleep(self._delay)
            if generation != self._generation:
                return self._json(start_response, {"error": 201, "message": "reset while waiting"})
        if failure is not None:
            status, code, body = failure
            if body:
                return self._raw(start_response, body, status)
            return self._json(start_response, {"error": code, "message": f"fake error {code}"}, status=status)
        return self._send(form, start_response)

    def _send(self, form: dict[str, str], start_response: Callable[..., Any]) -> Iterable[bytes]:
        to = form.get("to", "")
        if not to or not form.get("message"):
            return self._json(start_response, {"error": 11 if to else 13, "message": "Bad request"})
        if to in self._number_errors:
            return self._json(start_response, {"error": self._number_errors[to], "message": "Refused"})
        if "expiration_date" in form:
            ahead = int(form["expiration_date"]) - time.time()
            if ahead < 15 * 60 - 5 or ahead > 12 * 3600 + 5:
                return self._json(start_response, {"error": 56, "message": "Bad expiration_date"})
        idx = form.get("idx")
        with self._lock:
            if idx and form.get("check_idx") == "1" and any(m.get("idx") == idx for m in self.messages):
                return self._json(start_response, {"error": 53, "message": "Not unique idx"})
            parts = 1 if len(form["message"]) <= 160 else -(-len(form["message"]) // 153)
            message = {"id": uuid.uuid4().hex[:24].upper(), "number": to, "message": form["message"],
                       "from": form.get("from"), "idx": idx, "notify_url": form.get("notify_url"),
                       "expiration_date": form.get("expiration_date"), "status": "QUEUE", "parts": parts}
            self.messages.append(message)
        return self._json(start_response, {"count": 1, "list": [self._item(message)]})

    def _status(self, query: dict[str, str], start_response: Callable[..., Any]) -> Iterable[bytes]:
        found = [m for m in self.messages if m["id"] == query.get("status")]
        if not found:
            return self._json(start_response, {"error": 301, "message": "No such message"})
        return self._json(start_response, {"count": 1, "list": [self._item(found[0])]})

    @staticmethod
    def _item(message: dict[str, Any]) -> dict[str, Any]:
        return {"id": message["id"], "points": 0.16, "number": message["number"],
                "date_sent": int(time.time()), "submitted_number": message["number"],
                "status": message["status"], "idx": message["idx"], "error": None,
                "parts": message["parts"]}

    @staticmethod
    def _json(start_response: Callable[..., Any], payload: Any, status: int = 200) -> Iterable[bytes]:
        return FakeSmsapi._raw(start_response, json.dumps(payload), status)

    @staticmethod
    def _raw(start_response: Callable[..., Any], body: str, status: int) -> Iterable[bytes]:
        data = body.encode()
        start_response(f"{status} X", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
