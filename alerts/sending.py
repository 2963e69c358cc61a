"""Sending one delivery: what goes out (prepare), the provider call (send), the rate limit.

The pieces the dispatcher's loops share (alerts/dispatcher.py `run_once`, alerts/window.py
`SendingWindow`): `Job` (one claimed delivery and what to send), `Outcome` (what the
provider answered), `RateLimiter`, and `Sending`, the dispatcher's prepare/send methods.
`send` runs in a pool thread and never touches the Flask session: it checks the resident
(alerts/optout.py), then talks to one provider.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from alerts import render
from alerts.models import DELIVERY_EXPIRED, CANCELLED, EXPIRED, SKIPPED, UPDATED, Alert, Delivery
from alerts.sms_text import count_segments
from db import db
from providers.sms import ProviderError, SmsMessage
from providers.twilio_voice import CallRequest
from subscribers.models import PushSubscription


class RateLimiter:
    """A token bucket shared by the sending threads: at most `rate` sends per second.

    The limit is per dispatcher process; with N dispatchers set it to the account's rate / N.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        if self.rate <= 0:
            return
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = (1 - self.tokens) / self.rate
            time.sleep(wait)


@dataclass
class Job:
    delivery_id: int
    channel: str
    attempts: int
    alert: Alert
    subscriber_id: int | None
    phone: str | None
    language: str
    # Where the last attempt failed transiently (the retry prefers another provider), if it did.
    failed_at: str | None = None
    # Filled by prepare(): what to send, through which SMS provider, or why not.
    provider: str | None = None
    sms: SmsMessage | None = None
    push: Any = None
    push_targets: list[tuple[int, dict[str, Any]]] | None = None
    call: CallRequest | None = None
    skip: tuple[str, str] | None = None  # (status, reason)


@dataclass
class Outcome:
    job: Job
    provider_ref: str | None = None
    segments: int | None = None
    error: ProviderError | None = None
    gone_endpoints: tuple[str, ...] = ()
    left: bool = False  # the resident left while the batch was out: nothing was sent


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Sending:
    """The dispatcher's prepare/send half (mixed into alerts.dispatcher.Dispatcher, which
    sets channels, router, webpush, voice, limits, engine, optout, max_age)."""

    def prepare(self, jobs: list[Job], now: datetime) -> None:
        """Decide per job what goes out; texts are rendered once per (alert, language)."""
        sms_cache: dict[tuple[int, str], str] = {}
        push_cache: dict[tuple[int, str], Any] = {}
        push_ids = [j.subscriber_id for j in jobs if j.channel == "push" and not j.skip]
        targets: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        if push_ids:
            for sub in db.session.scalars(select(PushSubscription).where(
                    PushSubscription.subscriber_id.in_(push_ids))):
                targets.setdefault(sub.subscriber_id, []).append((sub.id, sub.subscription_info()))
        for job in jobs:
            alert = job.alert
            if job.skip:
                continue
            if alert.status in (CANCELLED, UPDATED):
                job.skip = (SKIPPED, "superseded")
                continue
            if alert.status == EXPIRED or self.deadline(alert) <= now:
                job.skip = (DELIVERY_EXPIRED, "alert expired before sending")
                continue
            key = (alert.id, job.language)
            if job.channel == "sms":
                if not job.phone:
                    job.skip = (SKIPPED, "no phone")
                    continue
                if render.personal(alert):
                    key = (alert.id, f"{job.language}:{job.subscriber_id}")
                    sms_cache[key] = render.sms_body(alert, job.language, job.subscriber_id)
                elif key not in sms_cache:
                    sms_cache[key] = render.sms_body(alert, job.language)
                validity = None
                if alert.expires_at is not None:
                    # Twilio drops it from its queue rather than deliver a stale warning late.
                    validity = int(min(36000, max(1, (alert.expires_at - now).total_seconds())))
                job.provider = self.router.choose(avoid=job.failed_at)
                channel = self.channels[job.provider]
                job.sms = SmsMessage(
                    to=job.phone, body=sms_cache[key], validity_seconds=validity, reference=str(job.delivery_id),
                    status_callback=(
                        # A backend with its own receipt URL (SMSAPI: signed notify_url) builds it.
                        channel.notify_url(self.public_base, str(job.delivery_id))
                        if hasattr(channel, "notify_url")
                        else f"{self.public_base}/webhooks/twilio/status?d={job.delivery_id}"),
                )
            elif job.channel == "voice":
                self._prepare_call(job)
            else:
                if self.webpush is None:
                    job.skip = (SKIPPED, "web push is off")
                    continue
                job.push_targets = targets.get(job.subscriber_id or -1, [])
                if not job.push_targets:
                    job.skip = (SKIPPED, "no push subscription")
                    continue
                if key not in push_cache:
                    push_cache[key] = render.push_message(alert, job.language)
                job.push = push_cache[key]

    def _prepare_call(self, job: Job) -> None:
        """A call reads its text from our TwiML URL once answered (alerts/calls.py); the
        delivery id in every URL ties Twilio's webhooks to the row."""
        if self.voice is None:
            job.skip = (SKIPPED, "calls are off")
            return
        if not job.phone:
            job.skip = (SKIPPED, "no phone")
            return
        spoken = None
        if getattr(self.voice, "name", "") == "console":
            from alerts import voice_text

            spoken = " ".join(voice_text.message_parts(job.alert))
        base, d = self.public_base, job.delivery_id
        job.call = CallRequest(to=job.phone, url=f"{base}/webhooks/twilio/voice/answer?d={d}",
                               status_callback=f"{base}/webhooks/twilio/voice/status?d={d}",
                               ring_seconds=self.ring_seconds, spoken=spoken)

    def deadline(self, alert: Alert) -> datetime:
        """Until when a delivery of `alert` may still go out: its end, or, for an alert
        without one, DISPATCH_MAX_AGE_HOURS after it was published."""
        if alert.expires_at is not None:
            return alert.expires_at
        return (alert.published_at or alert.created_at) + self.max_age

    def still_wanted(self, job: Job) -> bool:
        """The resident is still active, as read from the database at most
        DISPATCH_OPTOUT_CHECK_SECONDS ago (alerts/optout.py), right before the provider call
        (after the rate limiter's wait): an opt-out committed before that stops the message,
        however long the batch has been out."""
        return self.optout.active(job.subscriber_id, job.channel)

    def send(self, job: Job) -> Outcome:
        """Runs in a pool thread: re-reads the resident's state, then talks to one provider."""
        self.limits[job.channel].acquire()
        try:
            if not self.still_wanted(job):
                return Outcome(job, left=True)
        except Exception as exc:  # noqa: BLE001 - the database is away: retry later, send nothing
            return Outcome(job, error=ProviderError(f"could not re-check the resident: {exc}"[:300],
                                                    reason="unavailable"))
        if job.channel == "sms":
            assert job.sms is not None
            try:
                result = self.channels[job.provider].send(job.sms)
            except ProviderError as exc:
                return Outcome(job, error=exc)
            # Through a Messaging Service Twilio reports 0 segments at first; the body we sent
            # is what it bills, so count it ourselves (alerts/sms_text.py counts exactly).
            segments = result.segments or count_segments(job.sms.body).segments
            return Outcome(job, provider_ref=result.provider_ref, segments=segments)
        if job.channel == "voice":
            assert job.call is not None
            try:
                placed = self.voice.place(job.call)
            except ProviderError as exc:
                return Outcome(job, error=exc)
            return Outcome(job, provider_ref=placed.provider_ref)
        gone: list[str] = []
        delivered = 0
        last_error: ProviderError | None = None
        for _push_id, info in job.push_targets or []:
            try:
                self.webpush.send(info, job.push)
                delivered += 1
            except ProviderError as exc:
                if exc.permanent and exc.reason == "gone":
                    gone.append(info["endpoint"])
                else:
                    last_error = exc
        if delivered:
            return Outcome(job, provider_ref=f"push:{delivered}", gone_endpoints=tuple(gone))
        error = last_error or ProviderError("every push subscription is gone", permanent=True, reason="gone")
        return Outcome(job, error=error, gone_endpoints=tuple(gone))

    def assign_providers(self, jobs: list[Job]) -> None:
        """Write each SMS's provider on its row, committed before any call: after a crash the
        reconciler asks the provider that may have the message. One UPDATE per provider."""
        by_provider: dict[str, list[int]] = {}
        for job in jobs:
            if job.provider is not None:
                by_provider.setdefault(job.provider, []).append(job.delivery_id)
        if not by_provider:
            return
        table = Delivery.__table__
        for provider, ids in by_provider.items():
            db.session.execute(update(table).where(table.c.id.in_(ids)).values(provider=provider))
        db.session.commit()
