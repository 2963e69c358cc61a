"""Console SMS backend for development: prints each message instead of sending it.

Nothing leaves the machine and nothing costs money. It keeps a bounded in-memory record
of what it "sent" so `fetch_status` and `find_sent` behave like a real provider within
one process (the record is lost on restart, like any dev fake).

Secrets stay out of logs: the log line masks the number, every code and every manage link.
The printed block is the developer's "phone" and shows them only when built with
``reveal=True`` (create_app does that for SYRENA_ENV=development, so `make run` can sign
up); production refuses this backend altogether (config.check_settings).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from providers.sms import ProviderError, SendResult, SentRecord, SmsMessage, redact_numbers, require_aware

logger = logging.getLogger(__name__)

# Enough for any local alert run; beyond this the oldest records are forgotten so a long
# running dev server or a benchmark cannot grow memory without bound.
MAX_RECORDS = 100_000

# Verification and manage codes are 4-8 digits; a manage link is /m/<token>, the API's
# /subscriptions/<token>. Masking a date's year as well is a fair price.
_CODE = re.compile(r"(?<![\d+])\d{4,8}(?!\d)")
_TOKEN_PATH = re.compile(r"(/m/|/subscriptions/)[^\s/?#]+")


def mask_secrets(text: str) -> str:
    """`text` with phone numbers, codes and manage-link tokens masked, fit for a log."""
    text = _TOKEN_PATH.sub(lambda m: m.group(1) + "***", text)
    text = redact_numbers(text)
    return _CODE.sub(lambda m: "*" * len(m.group(0)), text)


class ConsoleSms:
    """Prints SMS to stdout (and logs them); every message counts as delivered."""

    name = "console"

    def __init__(self, *, stream: Any = None, max_records: int = MAX_RECORDS, reveal: bool = False) -> None:
        # stream=None means "sys.stdout at print time", so pytest's capsys sees output.
        self._stream = stream
        # Print numbers, codes and links as they are (development only): see the module doc.
        self.reveal = reveal
        self._max_records = max_records
        self._lock = threading.Lock()
        self._sent: OrderedDict[str, SentRecord] = OrderedDict()

    def send(self, message: SmsMessage) -> SendResult:
        """Print the message and return a generated id ("console-<hex>") with status "queued".

        "queued" (not "delivered") so the dispatcher goes through the same states as with
        Twilio; `fetch_status` then reports "delivered".
        """
        ref = f"console-{uuid.uuid4().hex}"
        record = SentRecord(
            provider_ref=ref,
            to=message.to,
            body=message.body,
            status="queued",
            created_at=datetime.now(timezone.utc),
        )
        with self._lock:
            self._sent[ref] = record
            while len(self._sent) > self._max_records:
                self._sent.popitem(last=False)

        shown = (lambda text: text) if self.reveal else mask_secrets
        block = (
            "---- SMS (console backend, not sent) ----\n"
            f"To:        {shown(message.to)}\n"
            f"Id:        {ref}\n"
            f"Reference: {message.reference or '-'}\n"
            f"Callback:  {shown(message.status_callback or '-')}\n"
            f"Validity:  {message.validity_seconds if message.validity_seconds is not None else '-'} s\n"
            f"Length:    {len(message.body)} chars, segments unknown\n"
            f"{shown(message.body)}\n"
            "-----------------------------------------\n"
        )
        # One write per message so blocks from concurrent dispatcher threads don't interleave.
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(block)
            stream.flush()
        logger.info("console SMS %s to %s (ref %s): %s", ref, mask_secrets(message.to), message.reference,
                    mask_secrets(message.body))
        return SendResult(provider_ref=ref, status="queued", segments=None)

    def fetch_status(self, provider_ref: str) -> tuple[str, int | None]:
        """("delivered", None) for ids this backend sent; ProviderError (permanent) otherwise."""
        with self._lock:
            known = provider_ref in self._sent
        if not known:
            raise ProviderError(
                f"console backend has no message {provider_ref}", permanent=True, code=20404
            )
        return "delivered", None

    def find_sent(self, to: str, since: datetime) -> list[SentRecord]:
        """Messages this process sent to `to` at or after `since`, oldest first."""
        require_aware(since)
        with self._lock:
            records = list(self._sent.values())
        return [
            SentRecord(r.provider_ref, r.to, r.body, "delivered", r.created_at)
            for r in records
            if r.to == to and r.created_at >= since
        ]

    def owns_ref(self, provider_ref: str) -> bool:
        return provider_ref.startswith("console-")

    def delete_message(self, provider_ref: str) -> str:
        """Forget a message this process "sent": "deleted", or "gone" for an unknown id."""
        with self._lock:
            return "deleted" if self._sent.pop(provider_ref, None) is not None else "gone"

    def validate_webhook(self, url: str, params: Mapping[str, Any], signature: str) -> bool:
        """Always False: the console backend never calls webhooks, so any request claiming
        to be one of its receipts is forged."""
        return False
