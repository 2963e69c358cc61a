"""Twilio SMS backend, built on the official `twilio` SDK (9.x).

Contract: see providers/sms.py. Everything Twilio-specific lives here: how a message is
sent (Messaging Service preferred, else a From number / alphanumeric sender), how
Twilio's errors map onto `ProviderError`, and how webhooks are authenticated.

Why the HTTP client is set up the way it is (read from twilio 9.13's source,
twilio/http/http_client.py, twilio/base/client_base.py, twilio/base/domain.py):

- `TwilioHttpClient()` has NO timeout by default. A hung TCP connection would pin a
  dispatcher thread forever while an alert waits, so we always pass `timeout=`.
- One `Client` per thread (threading.local). `TwilioHttpClient(pool_connections=True)`
  (the default) keeps one `requests.Session` per client, so each dispatcher thread keeps
  its own keep-alive HTTPS connection to api.twilio.com and never waits on, or races
  for, another thread's pool slot. A single shared client would need its own
  `HTTPAdapter(pool_maxsize >= threads)`: the SDK mounts only min(32, cpu+4) slots for
  https (6 on our 2-core box), so with 32-64 threads connections would be dropped and
  every extra request would pay a new TLS handshake. requests.Session is also not
  documented as thread-safe, and we read each thread's last response for Retry-After.
- `session.trust_env = False`: with the default True, requests re-reads proxy settings
  from os.environ on every request (~95 us, about 20% of the SDK's CPU per SMS at our
  rates; research/perf-limits.md section 3). We read proxies and the CA bundle from the
  environment once, when the thread's client is built, so HTTPS_PROXY/NO_PROXY and
  REQUESTS_CA_BUNDLE still work. (.netrc is irrelevant: we always send basic auth.)
- TWILIO_API_BASE points the Api domain at another host: `client.api.base_url` is a
  plain attribute used by `Domain.absolute_url` for every Messages URL, including the
  paging links of `messages.stream()`. Edge/region are cleared in that case because
  `ClientBase.get_hostname` would otherwise rewrite "127.0.0.1" as if it were a region.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import requests
import urllib3.exceptions
from requests.utils import get_environ_proxies
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from providers.http import retry_after_seconds
from providers.sms import (
    VALIDITY_MAX_SECONDS,
    VALIDITY_MIN_SECONDS,
    ProviderError,
    SendResult,
    SentRecord,
    SmsMessage,
    require_aware,
)

DEFAULT_API_BASE = "https://api.twilio.com"
DEFAULT_TIMEOUT_SECONDS = 10.0

# Twilio error code -> (permanent, reason). Sources: research/delivery.md 1.6 and
# twilio.com/docs/api/errors. Permanent ones are rejected before anything is sent and
# never succeed on retry; re-sending them only burns REST concurrency (and, for people
# who opted out, goodwill).
ERROR_CODES: dict[int, tuple[bool, str]] = {
    21610: (True, "opted_out"),  # recipient replied STOP to this sender / service
    21211: (True, "invalid_number"),  # invalid 'To' number
    21614: (True, "landline"),  # 'To' is not a mobile number (PL landlines answer this)
    21635: (True, "landline"),  # 'To' cannot be a landline (newer, more specific code)
    21612: (True, "blocked"),  # this To/From pair cannot be routed
    21408: (True, "config"),  # Geo Permissions: sending to this region not enabled
    21606: (True, "config"),  # From number not owned by the account / can't send SMS
    21212: (True, "config"),  # invalid From / sender id
    20003: (True, "config"),  # authentication failed
    20429: (False, "rate_limited"),  # too many concurrent requests: never processed
    21611: (False, "rate_limited"),  # sender queue holds > 10 h of traffic: back off
    # SMS Pumping Protection blocks a number for 15-30 min; a resident whose number got
    # caught must still get the alert later, so this is not permanent.
    30450: (False, "rate_limited"),
}
# Twilio refuses to DELETE a message it has not finished with (queued, sending, or an
# inbound one still being processed): "wait several minutes and try again".
CANNOT_DELETE_YET = 20009
# Twilio's documented block window for 30450; a hint for the dispatcher's backoff.
PUMPING_BLOCK_RETRY_AFTER_SECONDS = 900.0

# How many of a recipient's most recent messages find_sent() will look at. A resident
# gets a handful of alerts a week, so 200 covers months while bounding a reconcile job
# to at most 4 list requests per number.
FIND_SENT_SCAN_LIMIT = 200
FIND_SENT_PAGE_SIZE = 50

_SID_RE = re.compile(r"^[A-Za-z0-9]{2,64}$")
# A message's SID: SM (SMS) or MM (MMS) and 32 hex digits.
_MESSAGE_SID_RE = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")


class _HttpClient(TwilioHttpClient):
    """TwilioHttpClient that remembers its last response (for Retry-After) and skips the
    SDK's per-request log formatting unless INFO logging is on for its logger."""

    last_response: TwilioResponse | None = None

    def request(self, *args: Any, **kwargs: Any) -> TwilioResponse:  # type: ignore[override]
        self.last_response = None
        response = super().request(*args, **kwargs)
        self.last_response = response
        return response

    # The SDK formats headers into strings for every request even when nobody listens;
    # at thousands of SMS per second that is measurable CPU.
    def log_request(self, kwargs: dict[str, Any]) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            super().log_request(kwargs)

    def log_response(self, status_code: int, response: Any) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            super().log_response(status_code, response)


class _Lists:
    """Adapter giving a plain mapping of name -> value(s) the `getlist` method the SDK's
    RequestValidator uses (it falls back to `[params[name]]`, which breaks on lists)."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self._params = params

    def __iter__(self) -> Any:
        return iter(self._params)

    def getlist(self, name: str) -> list[str]:
        value = self._params[name]
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        return [str(value)]


class TwilioSms:
    """SMS through Twilio's Programmable Messaging API. Safe to share between threads."""

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        messaging_service_sid: str | None = None,
        from_: str | None = None,
        api_base: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        """`messaging_service_sid` wins over `from_` when both are given: a Messaging
        Service gives Advanced Opt-Out, sender pools and per-country senders."""
        if not account_sid or not auth_token:
            raise ValueError("TwilioSms needs an account SID and an auth token")
        if not messaging_service_sid and not from_:
            raise ValueError("TwilioSms needs a messaging_service_sid or a from_ sender")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.messaging_service_sid = messaging_service_sid or None
        self.from_ = None if messaging_service_sid else from_
        self.api_base = (api_base or DEFAULT_API_BASE).rstrip("/")
        self._custom_base = api_base is not None
        self.timeout = float(timeout)
        self._validator = RequestValidator(auth_token)
        self._local = threading.local()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TwilioSms:
        """Build from TWILIO_* settings; ValueError names every missing/bad variable."""

        def get(name: str) -> str | None:
            value = config.get(name)
            value = str(value).strip() if value is not None else ""
            return value or None

        account_sid = get("TWILIO_ACCOUNT_SID")
        auth_token = get("TWILIO_AUTH_TOKEN")
        service_sid = get("TWILIO_MESSAGING_SERVICE_SID")
        from_ = get("TWILIO_FROM")
        missing = [
            name
            for name, value in (("TWILIO_ACCOUNT_SID", account_sid), ("TWILIO_AUTH_TOKEN", auth_token))
            if not value
        ]
        if not service_sid and not from_:
            missing.append("TWILIO_MESSAGING_SERVICE_SID (or TWILIO_FROM)")
        if missing:
            raise ValueError(f"SMS_BACKEND=twilio but {', '.join(missing)} is not set")
        assert account_sid and auth_token
        # Catch swapped values at start-up instead of as 20003/21705 errors mid-alert.
        if not account_sid.startswith("AC"):
            raise ValueError("TWILIO_ACCOUNT_SID must start with 'AC'")
        if service_sid and not service_sid.startswith("MG"):
            raise ValueError("TWILIO_MESSAGING_SERVICE_SID must start with 'MG'")

        api_base = get("TWILIO_API_BASE")
        if api_base and not api_base.startswith(("http://", "https://")):
            raise ValueError(f"TWILIO_API_BASE must be an http(s) URL, got {api_base!r}")

        raw_timeout = config.get("TWILIO_TIMEOUT")
        if raw_timeout is None or str(raw_timeout).strip() == "":
            timeout = DEFAULT_TIMEOUT_SECONDS
        else:
            try:
                timeout = float(raw_timeout)
            except (TypeError, ValueError):
                raise ValueError(f"TWILIO_TIMEOUT must be a number of seconds, got {raw_timeout!r}") from None
            if timeout <= 0:
                raise ValueError(f"TWILIO_TIMEOUT must be > 0 seconds, got {raw_timeout!r}")

        return cls(
            account_sid,
            auth_token,
            messaging_service_sid=service_sid,
            from_=from_,
            api_base=api_base,
            timeout=timeout,
        )

    def __repr__(self) -> str:
        sender = self.messaging_service_sid or self.from_
        return f"<TwilioSms {self.account_sid} via {sender} at {self.api_base}>"

    # -- the SmsChannel contract ---------------------------------------------------------

    def send(self, message: SmsMessage) -> SendResult:
        """POST one message to Twilio. Returns the SID and initial status ("accepted" with a
        Messaging Service, "queued" without); raises ProviderError classified per ERROR_CODES."""
        kwargs: dict[str, Any] = {"to": message.to, "body": message.body}
        if self.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.messaging_service_sid
        else:
            kwargs["from_"] = self.from_
        if message.status_callback:
            kwargs["status_callback"] = message.status_callback
        if message.validity_seconds is not None:
            kwargs["validity_period"] = min(
                VALIDITY_MAX_SECONDS, max(VALIDITY_MIN_SECONDS, int(message.validity_seconds))
            )

        http, client = self._client()
        try:
            created = client.messages.create(**kwargs)
        except _CAUGHT as exc:
            raise _classify(exc, http, "sending an SMS") from exc

        segments = _to_int(created.num_segments)
        return SendResult(
            provider_ref=str(created.sid),
            status=str(created.status),
            # 0 means "not known yet" (Messaging Service before sender assignment).
            segments=segments if segments else None,
        )

    def fetch_status(self, provider_ref: str) -> tuple[str, int | None]:
        """(status, error_code) of one message, for reconciling missed status callbacks."""
        if not _SID_RE.match(provider_ref):
            raise ProviderError(f"not a Twilio message SID: {provider_ref!r}", permanent=True)
        http, client = self._client()
        try:
            fetched = client.messages(provider_ref).fetch()
        except _CAUGHT as exc:
            raise _classify(exc, http, f"fetching message {provider_ref}") from exc
        return str(fetched.status), _to_int(fetched.error_code)

    def find_sent(self, to: str, since: datetime) -> list[SentRecord]:
        """Messages to `to` that Twilio created at or after `since`, oldest first.

        Why not `date_sent_after=`: Twilio filters on DateSent with day granularity, and a
        message still queued (exactly the crash-recovery case) has no date_sent yet. So
        we list the recipient's messages newest first and filter on date_created here,
        stopping once Twilio shows a message sent before `since`, and after
        FIND_SENT_SCAN_LIMIT messages at most. Twilio reports seconds only, so `since`
        is rounded down to the second. Callers own the clock-skew margin.
        """
        since_utc = require_aware(since).astimezone(timezone.utc).replace(microsecond=0)
        http, client = self._client()
        found: list[SentRecord] = []
        try:
            for record in client.messages.stream(
                to=to, limit=FIND_SENT_SCAN_LIMIT, page_size=FIND_SENT_PAGE_SIZE
            ):
                created = record.date_created
                if isinstance(created, datetime) and created >= since_utc:
                    found.append(
                        SentRecord(
                            provider_ref=str(record.sid),
                            to=str(record.to),
                            body=record.body or "",
                            status=str(record.status),
                            created_at=created,
                        )
                    )
                    continue
                sent = record.date_sent
                if isinstance(sent, datetime) and sent < since_utc:
                    # The list is newest first, so everything after this is older still.
                    break
        except _CAUGHT as exc:
            raise _classify(exc, http, "listing sent messages") from exc
        # Twilio lists newest first and dates have one-second resolution: reverse, then a
        # stable sort keeps same-second messages in the order they were created.
        found.reverse()
        found.sort(key=lambda r: r.created_at)
        return found

    def owns_ref(self, provider_ref: str) -> bool:
        """Whether `provider_ref` is a Twilio message SID (SM.../MM...)."""
        return bool(_MESSAGE_SID_RE.match(provider_ref))

    def delete_message(self, provider_ref: str) -> str:
        """Delete one message (outbound or inbound) and its body from Twilio's logs.

        Returns "deleted" (204), "gone" (404: Twilio no longer has it, e.g. deleted before)
        or "in_flight" (error 20009: still queued or sending; ask again in a few minutes).
        Raises ProviderError for anything else (network, auth, 5xx), classified like send.
        """
        if not _SID_RE.match(provider_ref):
            raise ProviderError(f"not a Twilio message SID: {provider_ref!r}", permanent=True)
        http, client = self._client()
        try:
            client.messages(provider_ref).delete()
        except _CAUGHT as exc:
            status = getattr(exc, "status", None)
            code = _to_int(getattr(exc, "code", None))
            if status == 404:
                return "gone"
            if code == CANNOT_DELETE_YET:
                return "in_flight"
            raise _classify(exc, http, f"deleting message {provider_ref}") from exc
        return "deleted"

    def validate_webhook(self, url: str, params: Mapping[str, Any], signature: str) -> bool:
        """Check X-Twilio-Signature (HMAC-SHA1 of URL + sorted params, keyed by the auth
        token). `url` must be exactly what Twilio called, including the query string and
        the public scheme/host (configure ProxyFix behind a TLS proxy), and `params` must
        be every form field received: Twilio adds new fields without notice."""
        if not signature:
            return False
        if not hasattr(params, "getlist"):
            params = _Lists(params)  # type: ignore[assignment]
        try:
            return bool(self._validator.validate(url, params, signature))
        except (TypeError, ValueError, KeyError):
            return False

    # -- internals -----------------------------------------------------------------------

    def _client(self) -> tuple[_HttpClient, Client]:
        local = self._local
        client: Client | None = getattr(local, "client", None)
        if client is None:
            client = local.client = self._new_client()
        http: _HttpClient = client.http_client  # type: ignore[assignment]
        # Forget the previous call's response, so an error raised before this call's
        # request is never classified using an old response.
        http.last_response = None
        return http, client

    def _new_client(self) -> Client:
        http = _HttpClient(timeout=self.timeout)
        session = http.session
        assert session is not None  # pool_connections=True (the default) creates it
        session.trust_env = False
        session.proxies.update(get_environ_proxies(self.api_base))
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if ca_bundle:
            session.verify = ca_bundle
        client = Client(self.account_sid, self._auth_token, http_client=http)
        if self._custom_base:
            client.edge = None
            client.region = None
            client.api.base_url = self.api_base
        return client


# Exceptions that mean "the provider or the network failed", as opposed to a bug in our
# code. requests wraps nearly all socket errors, but urllib3 lets a few of its own escape,
# and a non-JSON 2xx body surfaces as a ValueError (json.JSONDecodeError) from the SDK.
_CAUGHT = (
    TwilioException,
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    OSError,
    ValueError,
)


def _classify(exc: BaseException, http: _HttpClient, action: str,
              codes: Mapping[int, tuple[bool, str]] = ERROR_CODES) -> ProviderError:
    """Turn whatever the SDK or requests raised into a ProviderError (see module table;
    `codes` is the table of the API called: Messages or Calls)."""
    if isinstance(exc, requests.RequestException) or isinstance(
        exc, (urllib3.exceptions.HTTPError, OSError)
    ):
        return _network_error(exc, action)

    response = http.last_response
    status: int | None = getattr(exc, "status", None)
    if status is None and response is not None:
        status = response.status_code
    code: int | None = _to_int(getattr(exc, "code", None))
    detail = getattr(exc, "msg", None) or getattr(exc, "detail", None) or str(exc)

    if status is not None and 200 <= status < 300:
        # Twilio answered "created" but the body was unreadable: the SMS probably exists.
        return ProviderError(
            f"{action}: unreadable {status} response from Twilio: {exc}",
            reason="unavailable",
            code=status,
            ambiguous=True,
        )
    if status is None:
        return ProviderError(f"{action}: {exc}", reason="unknown", ambiguous=True)

    # The SDK fills `code` with the HTTP status when the body had no Twilio error code
    # (e.g. an HTML page from a load balancer).
    twilio_code = code if code is not None and code != status else None
    message = f"{action}: HTTP {status}" + (f", Twilio error {twilio_code}" if twilio_code else "")
    message += f": {detail}"
    shown_code: int = twilio_code if twilio_code is not None else status

    if twilio_code in codes:
        permanent, reason = codes[twilio_code]
        retry_after = None
        if reason == "rate_limited":
            retry_after = _retry_after(response)
            if retry_after is None and twilio_code == 30450:
                retry_after = PUMPING_BLOCK_RETRY_AFTER_SECONDS
        return ProviderError(
            message, permanent=permanent, code=shown_code, reason=reason, retry_after=retry_after
        )
    if status in (401, 403):
        return ProviderError(message, permanent=True, code=shown_code, reason="config")
    if status == 429:
        # Twilio: 429/20429 requests are "never processed and always safe to retry".
        return ProviderError(
            message, code=shown_code, reason="rate_limited", retry_after=_retry_after(response)
        )
    if status >= 500:
        # With Twilio's own error body the API decided not to create the message. Without
        # one (a 502/504 from a gateway in front of Twilio) it may have been created.
        return ProviderError(
            message,
            code=shown_code,
            reason="unavailable",
            retry_after=_retry_after(response),
            ambiguous=twilio_code is None,
        )
    if 400 <= status < 500:
        return ProviderError(message, permanent=True, code=shown_code, reason="unknown")
    # 1xx/3xx: nothing Twilio should send here; don't guess whether it was processed.
    return ProviderError(message, code=shown_code, reason="unknown", ambiguous=True)


def _network_error(exc: BaseException, action: str) -> ProviderError:
    """Connection-level failures are transient; `ambiguous` says whether the request may
    have been processed (retrying blindly could then send the SMS twice)."""
    if isinstance(exc, requests.ConnectTimeout):
        ambiguous = False  # never connected
        what = "connect timeout"
    elif isinstance(exc, requests.ReadTimeout):
        ambiguous = True  # request written, no answer in time: Twilio may have sent it
        what = "read timeout"
    elif isinstance(exc, (requests.exceptions.SSLError, requests.exceptions.ProxyError)):
        ambiguous = False  # failed during TLS handshake / proxy CONNECT, before the request
        what = "TLS/proxy error"
    elif isinstance(exc, requests.ConnectionError) and _never_connected(exc):
        ambiguous = False  # connection refused, DNS failure, network unreachable
        what = "connection failed"
    else:
        # Connection reset/aborted mid-request, broken chunked body, ...: maybe processed.
        ambiguous = True
        what = "connection broken"
    return ProviderError(f"{action}: {what}: {exc}", reason="unavailable", ambiguous=ambiguous)


def _never_connected(exc: requests.ConnectionError) -> bool:
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", inner)  # urllib3 MaxRetryError wraps the real cause
    return isinstance(
        reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ClosedPoolError)
    )


def _retry_after(response: TwilioResponse | None) -> float | None:
    """Seconds from the response's Retry-After header, if present."""
    if response is None or not response.headers:
        return None
    return retry_after_seconds(response.headers.get("Retry-After"))


def _to_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
