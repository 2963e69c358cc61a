"""The SMS channel contract: messages, results, errors, and the backend factory.

Every SMS backend (console for development, Twilio for production) implements
`SmsChannel`. The dispatcher depends only on this module, so it can be tested against
the console backend or the Twilio backend pointed at tests/fakes/twilio_api.py.

Rules every backend follows:
- `send` either returns a `SendResult` or raises `ProviderError`. Network problems never
  escape as another exception type, because the dispatcher decides retry vs. give-up
  from `ProviderError.permanent` / `.ambiguous` alone.
- Backends never touch the database or Flask; they are safe to call from many threads.
"""

from __future__ import annotations

import re

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "REASONS",
    "ProviderError",
    "SendResult",
    "SentRecord",
    "SmsChannel",
    "SmsMessage",
    "require_aware",
    "backend_names",
    "sms_channel_from_config",
    "sms_channels_from_config",
]

# Twilio accepts ValidityPeriod 1..36000 s (10 h, also its default). Outside that range
# the API rejects the whole request, so we clamp instead of failing an alert.
VALIDITY_MIN_SECONDS = 1
VALIDITY_MAX_SECONDS = 36000


@dataclass(frozen=True)
class SmsMessage:
    """One SMS to one recipient.

    `to` is E.164 ("+48501234567"). `status_callback` is an absolute URL for delivery
    receipts (put our delivery id in it, so a receipt can be matched even if the process
    crashed before the provider's message id was stored). `validity_seconds` tells the
    provider to drop the message if it is still queued after that long (a storm warning
    that arrives 10 hours late is worse than none); backends clamp it to 1..36000.
    `reference` is our delivery id, used for logs only and never sent to the provider.
    """

    to: str
    body: str
    status_callback: str | None = None
    validity_seconds: int | None = None
    reference: str | None = None


@dataclass(frozen=True)
class SendResult:
    """What the provider said when it accepted a message.

    `provider_ref` is the provider's message id (Twilio: the "SM..." SID). Store it
    together with `status` right away: receipts and reconciliation look messages up by it.
    `segments` is None when the provider does not know yet (Twilio reports 0 segments
    for Messaging Service sends until a sender is picked; we map that to None rather than
    pretend the message is free).
    """

    provider_ref: str
    status: str
    segments: int | None = None


@dataclass(frozen=True)
class SentRecord:
    """One message the provider knows it sent; used to reconcile after a crash."""

    provider_ref: str
    to: str
    body: str
    status: str
    created_at: datetime  # aware, UTC


REASONS = frozenset(
    {
        "invalid_number",  # the number cannot receive SMS at all
        "landline",  # a valid number, but not a mobile one
        "opted_out",  # the recipient replied STOP to our sender
        "blocked",  # this sender cannot reach this recipient (routing/carrier)
        "rate_limited",  # too fast for the provider right now; retry later
        "unavailable",  # provider 5xx, timeouts, connection errors
        "config",  # our credentials, sender or geo permissions are wrong
        "gone",  # web push: the subscription expired or was removed (404/410); delete it by endpoint
        "too_large",  # web push: payload over the push service's limit (413)
        "unknown",
    }
)


_PHONE = re.compile(r"\+?\d[\d ]{7,16}\d")


def redact_numbers(text: str) -> str:
    """Mask phone numbers in a provider's text (+48501234567 -> +48501***567): error texts
    are stored and shown to staff, and must not keep a resident's number after erasure."""
    return _PHONE.sub(lambda m: m.group(0)[:-6] + "***" + m.group(0)[-3:] if len(m.group(0)) > 8 else m.group(0),
                      text)


class ProviderError(Exception):
    """A send (or lookup) that did not succeed.

    - `permanent=True`: retrying the same message will never help (bad number, opted out,
      misconfigured account). The dispatcher gives up on the delivery.
    - `ambiguous=True`: the request may have reached the provider (e.g. a read timeout
      after the request was written), so the SMS may exist and a blind retry could send it
      twice. Reconcile first (`SmsChannel.find_sent`). `ambiguous=False` means the
      provider surely did not create a message (connection refused, 429, 4xx, a 5xx that
      came with the provider's own error body).
    - `reason` is one of `REASONS`; `code` is the provider's error code (Twilio: 21610...)
      or the HTTP status when there was no provider code.
    - `retry_after` (seconds) is the provider's hint, when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        code: int | str | None = None,
        reason: str = "unknown",
        retry_after: float | None = None,
        ambiguous: bool = False,
    ) -> None:
        if reason not in REASONS:
            # A typo here would silently turn e.g. an opt-out into an "unknown" failure.
            raise ValueError(f"unknown ProviderError reason {reason!r}")
        message = redact_numbers(message)
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code
        self.reason = reason
        self.retry_after = retry_after
        self.ambiguous = ambiguous

    def __str__(self) -> str:
        kind = "permanent" if self.permanent else "transient"
        extra = f", code {self.code}" if self.code is not None else ""
        return f"{self.message} ({kind}, {self.reason}{extra})"

    def __repr__(self) -> str:
        return (
            f"ProviderError({self.message!r}, permanent={self.permanent}, code={self.code!r}, "
            f"reason={self.reason!r}, retry_after={self.retry_after!r}, ambiguous={self.ambiguous})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the classification when the error crosses a process boundary (pickle).
        kwargs = {
            "permanent": self.permanent,
            "code": self.code,
            "reason": self.reason,
            "retry_after": self.retry_after,
            "ambiguous": self.ambiguous,
        }
        return (_rebuild_provider_error, (self.message, kwargs))


def _rebuild_provider_error(message: str, kwargs: dict[str, Any]) -> ProviderError:
    return ProviderError(message, **kwargs)


@runtime_checkable
class SmsChannel(Protocol):
    """An SMS backend. Implementations must be safe to call from many threads at once."""

    name: str

    def send(self, message: SmsMessage) -> SendResult:
        """Hand one message to the provider.

        Returns the provider's id and initial status, or raises `ProviderError`
        (never another exception type for network or provider problems).
        """
        ...

    def fetch_status(self, provider_ref: str) -> tuple[str, int | None]:
        """Current (status, error_code) of a sent message; raises `ProviderError`."""
        ...

    def find_sent(self, to: str, since: datetime) -> list[SentRecord]:
        """Messages to `to` created at or after `since` (aware datetime).

        Used after a crash or an ambiguous error to learn whether an SMS already went out
        before sending it again. Callers should subtract a clock-skew margin from `since`
        and match on body. Raises `ProviderError`.
        """
        ...

    def delete_message(self, provider_ref: str) -> str:
        """Delete a message and its body at the provider (GDPR erasure).

        Returns "deleted", "gone" (the provider no longer has it) or "in_flight" (not
        deletable yet: still being sent; try again later). Raises `ProviderError`.
        """
        ...

    def validate_webhook(self, url: str, params: Mapping[str, Any], signature: str) -> bool:
        """True if a delivery-receipt request really came from the provider.

        `url` is the full URL the provider called (scheme, host, path and query, as the
        public sees it), `params` the form fields (a werkzeug MultiDict or a mapping of
        name to list of values), `signature` the provider's signature header.
        """
        ...


def require_aware(when: datetime) -> datetime:
    """Return `when` if it carries a timezone; raise ValueError otherwise.

    A naive datetime here is a bug: Poland is UTC+1/+2, so guessing would shift a
    reconciliation window by an hour or two and miss (or re-send) messages.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"expected an aware datetime, got naive {when!r}")
    return when


def sms_channel_from_config(config: Mapping[str, Any], backend: str | None = None) -> SmsChannel:
    """Build one SMS backend: `backend`, or the only one named by `config["SMS_BACKEND"]`
    ("console", "twilio" or "smsapi").

    Raises ValueError naming the missing or wrong setting, so a misconfigured deployment
    fails at start-up instead of at the first alert.
    """
    if backend is None:
        backend = str(config.get("SMS_BACKEND") or "").strip().lower()
    if backend == "console":
        from providers.console_sms import ConsoleSms

        return ConsoleSms()
    if backend == "twilio":
        from providers.twilio_sms import TwilioSms

        return TwilioSms.from_config(config)
    if backend == "smsapi":
        from providers.smsapi_sms import SmsapiSms

        return SmsapiSms.from_config(config)
    if not backend:
        # No silent default: in production a console backend would "send" every alert to
        # stdout and nobody would get an SMS.
        raise ValueError("SMS_BACKEND is not set; use 'console', 'twilio' or 'smsapi'")
    raise ValueError(f"unknown SMS_BACKEND {backend!r}; use 'console', 'twilio' or 'smsapi'")


def backend_names(config: Mapping[str, Any]) -> list[str]:
    """The providers named by SMS_BACKEND ("twilio" or "twilio,smsapi"), in order, once each."""
    names = [n.strip().lower() for n in str(config.get("SMS_BACKEND") or "").split(",") if n.strip()]
    return list(dict.fromkeys(names))


def sms_channels_from_config(config: Mapping[str, Any]) -> dict[str, SmsChannel]:
    """Every SMS backend named by SMS_BACKEND, by name, in its order (the first is the one
    used where a message has no provider of its own yet). Raises ValueError as above."""
    names = backend_names(config)
    if not names:
        return {"": sms_channel_from_config(config, "")}  # raises: not set
    if "console" in names and len(names) > 1:
        raise ValueError("SMS_BACKEND: the console backend cannot be combined with real providers")
    return {name: sms_channel_from_config(config, name) for name in names}
