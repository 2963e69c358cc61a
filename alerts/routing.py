"""Which SMS provider carries each message: the split, its shifts, and the choice per message.

Every configured provider (``SMS_BACKEND=twilio,smsapi``) carries live traffic at a resting
split from settings (``SMS_SPLIT=twilio:70,smsapi:30``; equal shares when unset). The live
split is one row per provider in ``sms_route``, shared by every dispatcher on every machine.
It moves away from a provider that is failing and drifts back when it recovers
(``rebalance``), or is pinned by staff; each move is an ``sms_route_shift`` row with its
reason, which the dashboard shows.

A dispatcher picks the provider of each SMS with ``ProviderRouter.choose`` and writes it
on the delivery *before* the call, so receipts, polling, reconciliation after a crash and
erasure all ask the provider that really has the message.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import Boolean, Integer, SmallInteger, String, select
from sqlalchemy.orm import Mapped, mapped_column

from db import UTCDateTime, db, refuse_row_changes, utcnow
from providers.sms import SmsChannel


class SmsRoute(db.Model):
    """The live share of one provider (0-100; the shares of all providers need not sum to 100:
    a message goes to provider p with probability weight_p / sum of weights)."""

    __tablename__ = "sms_route"

    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    weight: Mapped[int] = mapped_column(SmallInteger)
    resting: Mapped[int] = mapped_column(SmallInteger)  # the settings' share, where it drifts back to
    # Staff pinned the split: automatic shifts leave it alone until it is unpinned.
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(12), default="healthy")  # healthy | failing | slow
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # No automatic shift of this provider before then: stops flapping.
    cooldown_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(String(300))


class SmsRouteShift(db.Model):
    """Append-only: every change of a provider's share, automatic or by staff, and why."""

    __tablename__ = "sms_route_shift"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    provider: Mapped[str] = mapped_column(String(16))
    old_weight: Mapped[int] = mapped_column(SmallInteger)
    new_weight: Mapped[int] = mapped_column(SmallInteger)
    actor: Mapped[str] = mapped_column(String(80))  # "automatic", "staff:<login>", "cli:<user>"
    reason: Mapped[str] = mapped_column(String(300))


refuse_row_changes(SmsRouteShift.__table__, "sms_route_shift_append_only", "append-only")


def parse_split(text: str | None, names: list[str]) -> dict[str, int]:
    """``"twilio:70,smsapi:30"`` -> {"twilio": 70, "smsapi": 30}; equal shares when empty.

    Raises ValueError naming the problem (an unknown provider, a share outside 0-100, or
    every share 0), so a wrong setting stops the start instead of silently sending nothing.
    """
    if not text or not text.strip():
        return {name: 100 // len(names) for name in names}
    split: dict[str, int] = {name: 0 for name in names}
    for part in text.split(","):
        name, sep, share = part.strip().partition(":")
        name = name.strip().lower()
        if not sep or name not in split:
            raise ValueError(f"SMS_SPLIT: {part.strip()!r} is not <provider>:<share> for one of {', '.join(names)}")
        try:
            value = int(share)
        except ValueError:
            raise ValueError(f"SMS_SPLIT: the share of {name} must be a whole number 0-100") from None
        if not 0 <= value <= 100:
            raise ValueError(f"SMS_SPLIT: the share of {name} must be 0-100, not {value}")
        split[name] = value
    if not any(split.values()):
        raise ValueError("SMS_SPLIT: every share is 0, so no SMS could be sent")
    return split


def channel_for(provider: str | None) -> SmsChannel:
    """The channel that has (or will have) a message sent through `provider`; the first one
    configured for rows from before providers were recorded, or from a provider since removed."""
    known = current_app.extensions["sms_channels"]
    return known.get(provider or "") or current_app.extensions["sms"]


def channel_owning(provider_ref: str) -> SmsChannel | None:
    """The configured channel whose message ids look like `provider_ref`, if any."""
    for channel in current_app.extensions["sms_channels"].values():
        owns = getattr(channel, "owns_ref", None)
        if owns is not None and owns(provider_ref):
            return channel
    return None


class ProviderRouter:
    """Chooses a provider per message from the live split. Thread-safe.

    The split is read from ``sms_route`` at most every `refresh_seconds` (one small SELECT),
    so a shift made by any process reaches every dispatcher within that time.
    """

    def __init__(self, engine: Any, names: list[str], resting: dict[str, int], refresh_seconds: float = 2.0) -> None:
        self.engine = engine
        self.names = list(names)
        self.resting = dict(resting)
        self.refresh_seconds = refresh_seconds
        self._weights = dict(resting)
        self._read_at = 0.0
        self._lock = threading.Lock()
        self._random = random.Random()

    def weights(self) -> dict[str, int]:
        """The live split (the resting one until the table has rows, or when it cannot be read)."""
        with self._lock:
            if time.monotonic() - self._read_at < self.refresh_seconds:
                return dict(self._weights)
        try:
            with self.engine.connect() as conn:
                rows = dict(conn.execute(select(SmsRoute.provider, SmsRoute.weight)).all())
        except Exception:  # noqa: BLE001 - the database is away: keep the last split we knew
            rows = None
        with self._lock:
            if rows is not None:
                self._weights = {name: int(rows.get(name, self.resting[name])) for name in self.names}
            self._read_at = time.monotonic()
            return dict(self._weights)

    def choose(self, avoid: str | None = None) -> str:
        """A provider for one message, by the live split.

        `avoid` is where its last attempt failed transiently: the message goes elsewhere when
        another provider has a share, so one provider's outage does not hold it up.
        """
        if len(self.names) == 1:
            return self.names[0]
        weights = self.weights()
        if avoid is not None:
            others = {n: w for n, w in weights.items() if n != avoid and w > 0}
            if others:
                weights = others
        total = sum(weights.values())
        if total <= 0:
            return self.names[0]
        with self._lock:
            pick = self._random.uniform(0, total)
        for name, weight in weights.items():
            pick -= weight
            if pick < 0 and weight > 0:
                return name
        return next(n for n, w in weights.items() if w > 0)

    def invalidate(self) -> None:
        """Read the split again at the next choice (after a shift made by this process)."""
        with self._lock:
            self._read_at = 0.0
