"""What Twilio sends to our webhooks, and the TwiML we answer with.

The only place that knows Twilio's webhook field names. Signatures are checked by the SMS
channel (``validate_webhook``) over ``signed_url(...)`` before any of this runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from twilio.twiml.messaging_response import MessagingResponse


@dataclass(frozen=True)
class InboundMessage:
    provider_ref: str  # MessageSid
    from_phone: str
    body: str
    # Set when Twilio's Advanced Opt-Out already handled a STOP/START/HELP keyword and
    # replied itself: we mirror the state but must not reply a second time.
    opt_out_type: str | None


@dataclass(frozen=True)
class StatusReport:
    provider_ref: str  # MessageSid
    status: str  # queued, sent, delivered, undelivered, failed, ...
    error_code: int | None
    to: str | None


def signed_url(public_base_url: str, path: str, query_string: str) -> str:
    """The URL Twilio signed for a webhook it sent to `path` (with `query_string`, as received).

    Twilio signs the URL configured for the number or passed as StatusCallback, which we
    always build from PUBLIC_BASE_URL; what a proxy forwards as Host or scheme plays no part.
    """
    return public_base_url.rstrip("/") + path + (f"?{query_string}" if query_string else "")


def parse_inbound(form: Mapping[str, str]) -> InboundMessage | None:
    """The message in an incoming-SMS webhook, or None when the request is not one."""
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    sender = (form.get("From") or "").strip()
    if not sid or not sender:
        return None
    opt = (form.get("OptOutType") or "").strip().upper() or None
    return InboundMessage(provider_ref=sid, from_phone=sender, body=form.get("Body") or "", opt_out_type=opt)


def parse_status(form: Mapping[str, str]) -> StatusReport | None:
    """The delivery report in a status callback, or None when the request is not one."""
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    if not sid or not status:
        return None
    raw_code = (form.get("ErrorCode") or "").strip()
    return StatusReport(provider_ref=sid, status=status,
                        error_code=int(raw_code) if raw_code.isdigit() else None,
                        to=form.get("To"))


def twiml_reply(text: str | None) -> str:
    """TwiML answering an incoming SMS with `text`, or with nothing (an empty <Response/>)."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)
