"""SMSAPI (smsapi.pl) SMS backend, built on the official `smsapi-client` (2.9.x).

Contract: see providers/sms.py. Everything SMSAPI-specific lives here: the sender (a
registered name, or ECO when none is set), idx idempotency, expiration, the error codes,
and the per-delivery secret carried by each `notify_url`.

Read from smsapi-client 2.9.7's source (smsapi/endpoint.py, smsapi/sms/api.py):
- Every call is a bare `requests.request(...)` with `timeout=parameters.get('timeout', 30)`;
  `timeout` is not an API parameter, so it is passed to each call and never sent.
- Unknown keyword arguments are silently dropped (filter_parameters keeps only the
  endpoint's `accept_parameters`), so we only pass names the client lists.
- A non-2xx answer raises `EndpointException(text, http_status)`; a 2xx JSON body with
  an "error" key raises `SendException(message, error_code)`. Network errors escape as
  requests exceptions; all three are mapped to `ProviderError` here.
- The client has no status lookup; `fetch_status` binds one with the client's own
  `bind_api_endpoint` (GET sms.do?status=<id>&format=json), so auth and headers match.
"""

from __future__ import annotations

import hashlib
import json
import hmac
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from smsapi.client import Client
from smsapi.endpoint import bind_api_endpoint
from smsapi.exception import EndpointException, SmsApiException
from smsapi.models import ResultCollection
from smsapi.models import SendResult as _ClientSendResult

from providers.sms import ProviderError, SendResult, SentRecord, SmsMessage

DEFAULT_API_BASE = "https://api.smsapi.pl/"
DEFAULT_TIMEOUT_SECONDS = 10.0

# sms.do refuses an expiration_date less than 15 min or more than 12 h after the send
# time (error 56) and then sends nothing; we clamp instead of failing an alert.
EXPIRATION_MIN_SECONDS = 15 * 60
EXPIRATION_MAX_SECONDS = 12 * 3600

# Error 53: "idx not unique: a message with this idx was sent in the last four days"
# (with check_idx=1). Our idx is the delivery id, so this means a previous attempt (before
# a crash, or an ambiguous timeout) already reached SMSAPI: the message exists.
IDX_ALREADY_USED = 53
# Report status 412: the recipient is on the blacklist (replied STOP).
STOP_STATUS = 412

# SMSAPI error code -> (permanent, reason). Source: SMSAPI's error table (Polish texts in
# research/needs-voice-smsapi-cap-rollcall.md, from the OCSoftwarePL SmsApiBundle).
ERROR_CODES: dict[int, tuple[bool, str]] = {
    13: (True, "invalid_number"),  # no valid number (bad, landline, or on the blacklist)
    33: (True, "invalid_number"),  # no correct numbers
    57: (True, "opted_out"),  # the number is on this account's blacklist (STOP)
    32: (True, "blocked"),  # ECO cannot go abroad / foreign sending off on the account
    11: (True, "config"),  # message too long or empty
    12: (True, "config"),  # more parts than max_parts
    14: (True, "config"),  # sender name not registered / not accepted
    18: (True, "config"),  # wrong parameters
    20: (True, "config"),  # wrong idx count
    27: (True, "config"),  # idx longer than 255
    56: (True, "config"),  # expiration outside 15 min .. 12 h (we clamp; a bug if seen)
    70: (True, "config"),  # notify_url refused
    101: (True, "config"),  # bad or missing token
    102: (True, "config"),  # bad login or password
    103: (True, "config"),  # no credit left: staff must top up, retrying burns nothing useful
    105: (True, "config"),  # IP filter on the API account
    110: (True, "config"),  # SMS not enabled on the account
    52: (False, "rate_limited"),  # more than 10 attempts in 60 s to one number
    202: (False, "rate_limited"),  # too many simultaneous requests: not sent
    203: (False, "rate_limited"),  # too many requests: try later
    8: (False, "unavailable"),  # "error in the request, please report" (their side)
    200: (False, "unavailable"),  # "sending failed, please retry"
    201: (False, "unavailable"),  # internal error
    999: (False, "unavailable"),  # internal error
}

# Delivery-report status codes (notify_url `status`) -> our delivery status. 403/409/410
# are "still on its way"; 401 (report not found / expired) and 408 (operator gave no
# report) say nothing certain, so they map to None (record, do not move).
REPORT_STATUSES: dict[int, str | None] = {
    401: None,  # NOT_FOUND
    402: "undelivered",  # EXPIRED: the number stayed unreachable past expiration_date
    403: "sent",  # SENT
    404: "delivered",  # DELIVERED
    405: "undelivered",  # UNDELIVERED
    406: "failed",  # FAILED
    407: "failed",  # REJECTED
    408: None,  # UNKNOWN
    409: "queued",  # QUEUE
    410: "sent",  # ACCEPTED by the operator
    411: "queued",  # RENEWAL (voice retry; not expected for SMS)
    412: "failed",  # STOP: the resident is on the blacklist
}
# The same, keyed by the status names sms.do answers in send/lookup results.
STATUS_NAMES: dict[str, str] = {
    "QUEUE": "queued", "ACCEPTED": "sent", "SENT": "sent", "DELIVERED": "delivered",
    "UNDELIVERED": "undelivered", "EXPIRED": "undelivered", "FAILED": "failed",
    "REJECTED": "failed", "STOP": "failed", "UNKNOWN": "sent", "NOT_FOUND": "sent",
    "RENEWAL": "queued", "DRAFT": "queued",
}

_status_lookup = bind_api_endpoint(
    method="GET",
    path="sms.do",
    mapping=(_ClientSendResult, ResultCollection),
    accept_parameters=["status"],
    force_parameters={"format": "json"},
    exception_class=SmsApiException,
)


class _Lookup:
    """Holder so `_status_lookup` gets the `.client` attribute the endpoint expects."""

    def __init__(self, client: Client) -> None:
        self.client = client

    lookup = _status_lookup


# SMSAPI's message ids are hexadecimal (24 digits in its examples); never a Twilio "SM..." SID.
_MESSAGE_ID_RE = re.compile(r"^[0-9A-Fa-f]{16,40}$")


def notify_signature(secret: str, delivery_ref: str) -> str:
    """The per-delivery secret put in a notify_url: HMAC-SHA256(secret, ref), hex."""
    return hmac.new(secret.encode(), f"smsapi-notify:{delivery_ref}".encode(), hashlib.sha256).hexdigest()


class SmsapiSms:
    """SMS through SMSAPI's sms.do. Safe to share between threads (the client keeps no
    per-request state: each call is its own `requests.request`)."""

    name = "smsapi"

    def __init__(
        self,
        token: str,
        *,
        callback_secret: str,
        sender: str | None = None,
        api_base: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        """`sender` is a name registered (and approved) in the SMSAPI panel; None sends
        ECO (a random number chosen by SMSAPI). `callback_secret` keys the notify_url
        signatures (our SECRET_KEY)."""
        if not token:
            raise ValueError("SmsapiSms needs an API token")
        if not callback_secret:
            raise ValueError("SmsapiSms needs a callback secret")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        base = (api_base or DEFAULT_API_BASE).rstrip("/") + "/"
        self.client = Client(base, access_token=token)
        self.sender = sender or None
        self.timeout = float(timeout)
        self._secret = callback_secret

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SmsapiSms:
        """Build from SMSAPI_* settings; ValueError names what is missing."""
        token = str(config.get("SMSAPI_TOKEN") or "").strip()
        if not token:
            raise ValueError("SMS_BACKEND=smsapi but SMSAPI_TOKEN is not set")
        return cls(
            token,
            callback_secret=str(config.get("SECRET_KEY") or ""),
            sender=str(config.get("SMSAPI_SENDER") or "").strip() or None,
            api_base=str(config.get("SMSAPI_API_BASE") or "").strip() or None,
            timeout=float(config.get("SMSAPI_TIMEOUT") or DEFAULT_TIMEOUT_SECONDS),
        )

    # --- sending -------------------------------------------------------------------
    def send(self, message: SmsMessage) -> SendResult:
        """Send one SMS. With a `reference`, idx=reference and check_idx=1: SMSAPI refuses
        a second message with the same idx for four days, and that refusal is returned
        as an accepted message (status "sent", provider_ref "idx:<reference>")."""
        params: dict[str, Any] = {"to": message.to.lstrip("+"), "message": message.body, "encoding": "utf-8"}
        if self.sender:
            params["from_"] = self.sender
        # No `from`: SMSAPI sends from its ECO pool (the client has no "eco" parameter).
        if message.reference:
            params["idx"] = str(message.reference)
            params["check_idx"] = 1
        if message.status_callback:
            params["notify_url"] = message.status_callback
        if message.validity_seconds is not None:
            seconds = min(EXPIRATION_MAX_SECONDS, max(EXPIRATION_MIN_SECONDS, int(message.validity_seconds)))
            params["expiration_date"] = int(datetime.now(timezone.utc).timestamp()) + seconds
        try:
            result = self.client.sms.send(timeout=self.timeout, **params)
        except SmsApiException as exc:
            if _code(exc) == IDX_ALREADY_USED and message.reference:
                return SendResult(provider_ref=f"idx:{message.reference}", status="sent", segments=None)
            raise _classify(exc) from exc
        except requests.RequestException as exc:
            raise _network_error(exc) from exc
        items = list(result.results)
        if not items:
            raise ProviderError("SMSAPI accepted the request but listed no message", reason="unknown",
                                ambiguous=True)
        item = items[0]
        if item.error:
            raise _classify(SmsApiException(f"SMSAPI refused the number: {item.error}", item.error))
        parts = item.parts if item.parts is not None else getattr(result, "parts", None)
        return SendResult(provider_ref=str(item.id), status=STATUS_NAMES.get(str(item.status).upper(), "queued"),
                          segments=int(parts) if parts else None)

    def fetch_status(self, provider_ref: str) -> tuple[str, int | None]:
        """(status, None) of a message by SMSAPI id; raises ProviderError."""
        if provider_ref.startswith("idx:"):
            # The id of a message refused by idx is unknown to us; its reports still
            # reach us through the notify_url of the first attempt.
            return "sent", None
        try:
            result = _Lookup(self.client).lookup(status=provider_ref, timeout=self.timeout)
        except SmsApiException as exc:
            raise _classify(exc) from exc
        except requests.RequestException as exc:
            raise _network_error(exc) from exc
        items = list(result.results)
        if not items:
            raise ProviderError(f"SMSAPI does not know message {provider_ref}", permanent=True, reason="unknown")
        return STATUS_NAMES.get(str(items[0].status).upper(), "sent"), None

    def find_sent(self, to: str, since: datetime) -> list[SentRecord]:
        """Always []: SMSAPI has no list-by-recipient call, and none is needed. Every send
        carries idx=delivery id with check_idx=1, so re-sending after a crash or an
        ambiguous error is itself the reconciliation: SMSAPI refuses a duplicate."""
        return []

    def owns_ref(self, provider_ref: str) -> bool:
        """Whether `provider_ref` is an SMSAPI message id (hex) or our "idx:<reference>"."""
        return provider_ref.startswith("idx:") or bool(_MESSAGE_ID_RE.match(provider_ref))

    def delete_message(self, provider_ref: str) -> str:
        """SMSAPI offers deletion of scheduled messages only; a sent one is kept by SMSAPI
        under its own retention. Say so (a permanent failure) rather than "gone": an
        erasure must not tell a resident their texts were deleted when they were not. The
        resident and staff see it among the messages that could not be deleted."""
        raise ProviderError("SMSAPI cannot delete a sent message through its API; it is kept "
                            "under SMSAPI's retention (ask SMSAPI support to delete it)", permanent=True)

    # --- delivery reports ------------------------------------------------------------
    def notify_url(self, public_base: str, delivery_ref: str) -> str:
        """Our notify_url for one delivery: its id and a secret only we can compute."""
        return (f"{public_base.rstrip('/')}/webhooks/smsapi/status?d={delivery_ref}"
                f"&s={notify_signature(self._secret, delivery_ref)}")

    def validate_webhook(self, url: str, params: Mapping[str, Any], signature: str) -> bool:
        """SMSAPI does not sign reports; the notify_url itself carries the per-delivery
        secret. True only if the URL's `s` is the HMAC of its `d` (constant-time)."""
        query = parse_qs(urlsplit(url).query)
        ref = (query.get("d") or [""])[0]
        given = (query.get("s") or [""])[0]
        if not ref or not given:
            return False
        return hmac.compare_digest(given, notify_signature(self._secret, ref))


def report_status(code: Any) -> str | None:
    """Our delivery status for a notify_url report's `status` (401..412); None when the
    report says nothing certain, or the code is not one SMSAPI documents."""
    try:
        return REPORT_STATUSES.get(int(code))
    except (TypeError, ValueError):
        return None


def _code(exc: SmsApiException) -> int | None:
    try:
        return int(exc.code) if exc.code is not None else None
    except (TypeError, ValueError):
        return None


def _classify(exc: SmsApiException) -> ProviderError:
    code = _code(exc)
    text = str(exc.message or "")[:300]
    if type(exc) is EndpointException:
        # A non-2xx HTTP answer: the client passes the HTTP status as the code and the raw
        # body as the message. SMSAPI's own code, when the body carries one, wins.
        try:
            body = json.loads(exc.message or "")
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("error") is not None:
            return _classify(SmsApiException(body.get("message"), body.get("error")))
        code = code or 0
        if code == 429:
            return ProviderError(f"SMSAPI HTTP 429: {text}", code=code, reason="rate_limited")
        if code >= 500:
            return ProviderError(f"SMSAPI HTTP {code}: {text}", code=code, reason="unavailable")
        if code in (401, 403):
            return ProviderError(f"SMSAPI HTTP {code}: {text}", permanent=True, code=code, reason="config")
        return ProviderError(f"SMSAPI HTTP {code}: {text}", permanent=True, code=code, reason="unknown")
    permanent, reason = ERROR_CODES.get(code or -1, (False, "unknown"))
    return ProviderError(f"SMSAPI error {code}: {text}", permanent=permanent, code=code, reason=reason)


def _network_error(exc: requests.RequestException) -> ProviderError:
    # A connection that never opened cannot have created a message; a read timeout after
    # the request was written may have (reconcile: the idx makes the retry safe).
    if isinstance(exc, requests.ConnectTimeout) or (
        isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.ReadTimeout)
        and "Read timed out" not in str(exc)
    ):
        return ProviderError(f"SMSAPI unreachable: {type(exc).__name__}", reason="unavailable")
    return ProviderError(f"SMSAPI did not answer in time: {type(exc).__name__}", reason="unavailable",
                         ambiguous=True)
