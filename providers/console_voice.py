"""Console voice backend for development: prints what a call would read instead of calling.

Contract: providers/twilio_voice.py. Nothing leaves the machine. Calls are kept in a
bounded in-memory record so `fetch` and `find_calls` answer within one process; a printed
call never rings, so its delivery stays "sent" with no outcome (nobody can press 1).
The printed number is masked unless built with ``reveal=True`` (development), and a
sign-up code is masked in the log always.
"""

from __future__ import annotations

import logging
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from providers.console_sms import MAX_RECORDS, mask_secrets
from providers.sms import ProviderError, redact_numbers, require_aware
from providers.twilio_voice import CallRecord, CallRequest, PlacedCall

logger = logging.getLogger(__name__)


class ConsoleVoice:
    name = "console"

    def __init__(self, *, stream: Any = None, reveal: bool = False, max_records: int = MAX_RECORDS) -> None:
        self._stream = stream
        self.reveal = reveal
        self._max_records = max_records
        self._lock = threading.Lock()
        self._calls: OrderedDict[str, CallRecord] = OrderedDict()

    def place(self, call: CallRequest) -> PlacedCall:
        sid = "CA" + uuid.uuid4().hex
        record = CallRecord(provider_ref=sid, to=call.to, status="queued", created_at=datetime.now(timezone.utc))
        with self._lock:
            self._calls[sid] = record
            while len(self._calls) > self._max_records:
                self._calls.popitem(last=False)
        said = call.spoken or "(TwiML from " + (call.url or "inline") + ")"
        shown_to = call.to if self.reveal else redact_numbers(call.to)
        print(f"--- CALL to {shown_to} ---\n{said if self.reveal else mask_secrets(said)}\n---",
              file=self._stream or sys.stdout, flush=True)
        logger.info("console call %s to %s: %s", sid, redact_numbers(call.to), mask_secrets(said)[:200])
        return PlacedCall(provider_ref=sid, status="queued")

    def fetch(self, provider_ref: str) -> CallRecord:
        with self._lock:
            record = self._calls.get(provider_ref)
        if record is None:
            raise ProviderError(f"no such call: {provider_ref}", permanent=True, code=404)
        return record

    def find_calls(self, to: str, since: datetime) -> list[CallRecord]:
        since = require_aware(since)
        with self._lock:
            return [r for r in self._calls.values() if r.to == to and r.created_at >= since]

    def owns_ref(self, provider_ref: str) -> bool:
        return provider_ref.startswith("CA")

    def delete_call(self, provider_ref: str) -> str:
        with self._lock:
            return "deleted" if self._calls.pop(provider_ref, None) else "gone"

    def validate_webhook(self, url: str, params: Mapping[str, Any], signature: str) -> bool:
        return False  # nothing real calls back in development
