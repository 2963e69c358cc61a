"""The dispatcher: takes due deliveries from the outbox and hands them to the channels.

One cycle:
1. Claim a batch: one UPDATE ... WHERE id IN (SELECT ... ORDER BY priority DESC, id LIMIT n)
   sets status 'sending' and is committed *before* any provider call. On PostgreSQL the
   inner SELECT uses FOR UPDATE SKIP LOCKED, so several dispatchers on several machines
   share the work and never claim the same row; on SQLite the single writer serialises
   claims, so one dispatcher (or several) is safe too.
2. Send the batch concurrently (a thread pool; providers never touch the database), within
   each channel's rate limit.
3. Record every outcome in one transaction (bulk UPDATE + delivery events).

A claim is a lease: while its batch is out, the dispatcher renews `lease_renewed_at` on the
rows it still holds every third of DISPATCH_STALE_SECONDS, so a slow but live batch is
never taken for a dead one. Right before each provider call the resident's state is read
again, so an opt-out committed during a long (rate-limited) send stops their message.
Transient provider errors (5xx, 429, connection failures) are retried with capped backoff
for as long as the alert is valid; only a permanent error or the end of validity ends a
delivery, and a 429 does not count as an attempt.

Guarantee (see README, "Delivery guarantee"): every matching resident gets each message
at least once per channel, and -- provided the provider can be asked what it sent --
exactly once, even when a dispatcher is killed at any point: rows left in 'sending' (or
'uncertain' after a timeout) are reconciled with the provider before being sent again.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy import bindparam, func, insert, select, update

from alerts import render
from alerts.outbox import QUIET_HOURS_MIN_PRIORITY
from alerts.sms_text import count_segments
from alerts.models import (
    CANCELLED,
    DELIVERY_EXPIRED,
    EXPIRED,
    FAILED,
    PENDING,
    SENDING,
    SENT,
    SKIPPED,
    UNCERTAIN,
    UPDATED,
    Alert,
    Delivery,
    DeliveryEvent,
)
from db import db, utcnow
from municipality import in_quiet_hours, quiet_hours
from providers.sms import ProviderError, SmsMessage
from subscribers.models import ACTIVE, PushSubscription, Subscriber

log = logging.getLogger(__name__)


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


class Dispatcher:
    """Runs claim -> send -> record cycles for one process. Thread-safe to stop."""

    def __init__(self, app: Flask, *, worker_id: str | None = None) -> None:
        cfg = app.config
        self.app = app
        self.worker_id = worker_id or worker_name()
        self.batch_size = int(cfg.get("DISPATCH_BATCH_SIZE", 200))
        sms_rate = float(cfg.get("SMS_RATE_PER_SECOND", 10))
        if sms_rate > 0:
            # A batch must be sent well within DISPATCH_STALE_SECONDS, or the reconciler would
            # take its last rows for a dead dispatcher's and queue them again.
            stale = float(cfg.get("DISPATCH_STALE_SECONDS", 120))
            self.batch_size = max(1, min(self.batch_size, int(sms_rate * stale / 2)))
        # Renew the lease on our batch three times per stale period: a late renewal or two
        # (a busy database) still leaves the lease unexpired.
        self.renew_every = max(0.1, float(cfg.get("DISPATCH_STALE_SECONDS", 120)) / 3)
        self.reconcile_every = float(cfg.get("DISPATCH_RECONCILE_SECONDS", 10))
        self.max_age = timedelta(hours=float(cfg.get("DISPATCH_MAX_AGE_HOURS", 24)))
        self.concurrency = int(cfg.get("DISPATCH_CONCURRENCY", 32))
        self.retry_base = float(cfg.get("DISPATCH_RETRY_BASE_SECONDS", 5))
        self.retry_cap = float(cfg.get("DISPATCH_RETRY_MAX_SECONDS", 600))
        # No longer ends a delivery (transient errors are retried while the alert is valid):
        # past this many attempts each retry is logged as a warning, for the operators.
        self.max_attempts = int(cfg.get("DISPATCH_MAX_ATTEMPTS", 8))
        with app.app_context():
            # The pool threads re-read residents through it (they have no app context).
            self.engine = db.engine
        self.check_lock = threading.Lock()
        self.check_conn: Any = None
        self.limits = {"sms": RateLimiter(float(cfg.get("SMS_RATE_PER_SECOND", 10))),
                       "push": RateLimiter(float(cfg.get("PUSH_RATE_PER_SECOND", 100)))}
        self.pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="send")
        from alerts.routing import ProviderRouter

        self.channels = app.extensions["sms_channels"]
        self.router = ProviderRouter(self.engine, list(self.channels), app.extensions["sms_split"])
        self.rebalance_every = float(cfg.get("SMS_FAILOVER_CHECK_SECONDS", 5))
        self._rebalanced = 0.0
        self.webpush = app.extensions.get("webpush")
        municipality = app.extensions["municipality"]
        self.municipality = municipality
        self.zone = ZoneInfo(municipality.timezone)
        self.quiet_hours = quiet_hours(cfg.get("QUIET_HOURS"), municipality)
        self.public_base = cfg["PUBLIC_BASE_URL"].rstrip("/")

    # --- 1. claim -----------------------------------------------------------------------

    def in_quiet_hours(self, now: datetime) -> bool:
        return in_quiet_hours(self.quiet_hours, now.astimezone(self.zone).time())

    def due(self, now: datetime):  # noqa: ANN201 - a Select of delivery ids
        """The next batch of due deliveries, most urgent first."""
        due = select(Delivery.id).where(Delivery.status == PENDING, Delivery.next_attempt_at <= now)
        if self.in_quiet_hours(now):
            # A range of the claim index: the deferred routine messages are not even read.
            due = due.where(Delivery.priority >= QUIET_HOURS_MIN_PRIORITY)
        # Exactly the order of ix_delivery_claim, so the database reads one batch and stops.
        due = due.order_by(Delivery.priority.desc(), Delivery.id).limit(self.batch_size)
        if db.engine.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        return due

    def claim(self, now: datetime) -> list[int]:
        """Mark up to batch_size due deliveries as ours ('sending') and commit."""
        due = self.due(now)
        stmt = (
            update(Delivery.__table__)
            .where(Delivery.__table__.c.id.in_(due.scalar_subquery()))
            .values(status=SENDING, claimed_at=now, claimed_by=self.worker_id, lease_renewed_at=now,
                    attempts=Delivery.__table__.c.attempts + 1, updated_at=now)
            .returning(Delivery.__table__.c.id)
        )
        ids = list(db.session.execute(stmt).scalars())
        db.session.commit()
        return ids

    # --- 2. prepare and send ----------------------------------------------------------------

    def load(self, ids: list[int]) -> list[Job]:
        rows = db.session.execute(
            select(Delivery.id, Delivery.channel, Delivery.attempts, Delivery.alert_id,
                   Subscriber.id, Subscriber.phone, Subscriber.language, Subscriber.status,
                   Delivery.provider, Delivery.error_code, Delivery.error)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id, isouter=True)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.priority.desc(), Delivery.id)  # the most urgent leave first
        ).all()
        alert_ids = {r[3] for r in rows}
        alerts = {a.id: a for a in db.session.scalars(select(Alert).where(Alert.id.in_(alert_ids)))}
        jobs = []
        for d_id, channel, attempts, alert_id, s_id, phone, lang, s_status, provider, code, error in rows:
            job = Job(d_id, channel, attempts, alerts[alert_id], s_id, phone, lang or "pl")
            if provider is not None and (code is not None or error is not None):
                job.failed_at = provider  # still pending, so that error was transient
            if s_id is None or s_status != ACTIVE:
                job.skip = (SKIPPED, "resident left")
            jobs.append(job)
        return jobs

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
                if key not in sms_cache:
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

    def deadline(self, alert: Alert) -> datetime:
        """Until when a delivery of `alert` may still go out: its end, or, for an alert
        without one, DISPATCH_MAX_AGE_HOURS after it was published."""
        if alert.expires_at is not None:
            return alert.expires_at
        return (alert.published_at or alert.created_at) + self.max_age

    def still_wanted(self, job: Job) -> bool:
        """The resident is still active, read from the database just now.

        One primary-key read in a transaction of its own, right before the provider call
        (after the rate limiter's wait): an opt-out committed before this read stops the
        message, however long the batch has been out. The sending threads share one
        connection, taking turns (a read is well under a millisecond): 32 threads each
        checking out a pooled connection would overflow the pool and open new ones.
        """
        if job.subscriber_id is None:
            return False
        with self.check_lock:
            if self.check_conn is None:
                self.check_conn = self.engine.connect()
            try:
                with self.check_conn.begin():
                    status = self.check_conn.execute(
                        select(Subscriber.status).where(Subscriber.id == job.subscriber_id)).scalar()
            except Exception:
                # A broken connection (the database restarted): the next check opens another.
                self.check_conn.invalidate()
                self.check_conn.close()
                self.check_conn = None
                raise
        return status == ACTIVE

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

    # --- 3. record -------------------------------------------------------------------------

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter ("equal jitter"): spreads retries of a burst."""
        ceiling = min(self.retry_cap, self.retry_base * 2 ** max(0, attempts - 1))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        return max(delay, retry_after or 0)

    def record(self, outcomes: list[Outcome], skipped: list[Job], now: datetime) -> None:
        changes: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        opted_out: set[int] = set()
        unreachable: dict[int, str] = {}
        gone_push: list[str] = []
        for job in skipped:
            status, reason = job.skip  # type: ignore[misc]
            changes.append({"id": job.delivery_id, "status": status, "error": reason, "updated_at": now})
            events.append({"delivery_id": job.delivery_id, "source": "dispatcher", "status": status,
                           "detail": reason, "received_at": now})
        sent: list[dict[str, Any]] = []
        for o in outcomes:
            job = o.job
            gone_push.extend(o.gone_endpoints)
            if o.left:
                changes.append({"id": job.delivery_id, "status": SKIPPED, "error": "resident left",
                                "updated_at": now})
                events.append({"delivery_id": job.delivery_id, "source": "dispatcher", "status": SKIPPED,
                               "detail": "resident left during the send", "received_at": now})
                continue
            if o.error is None:
                sent.append({"b_id": job.delivery_id, "b_ref": o.provider_ref, "b_segments": o.segments,
                             "b_now": now})
                changes.append({"id": job.delivery_id, "status": SENT, "provider_ref": o.provider_ref,
                                "segments": o.segments, "sent_at": now, "updated_at": now,
                                "error": None, "error_code": None})
                events.append({"delivery_id": job.delivery_id, "provider_ref": o.provider_ref, "source": "send",
                               "status": SENT, "received_at": now, "provider": job.provider})
                continue
            err = o.error
            code = str(err.code) if err.code is not None else None
            change: dict[str, Any] = {"id": job.delivery_id, "error": str(err)[:300], "error_code": code,
                                      "updated_at": now}
            if err.permanent:
                change["status"] = FAILED
                if err.reason == "opted_out" and job.subscriber_id:
                    opted_out.add(job.subscriber_id)
                elif err.reason in ("invalid_number", "landline") and job.subscriber_id:
                    unreachable[job.subscriber_id] = f"{err.reason} ({code})"
            elif getattr(err, "ambiguous", False):
                # The provider may have taken it: reconcile before any resend (no duplicates).
                change["status"] = UNCERTAIN
            else:
                # Transient: retried for as long as the alert is valid, however many times.
                at = now + timedelta(seconds=self.backoff(job.attempts, err.retry_after))
                if at >= self.deadline(job.alert):
                    change["status"] = DELIVERY_EXPIRED
                else:
                    change.update(status=PENDING, next_attempt_at=at)
                    if err.reason == "rate_limited":
                        # Twilio never processed a 429: it is not an attempt.
                        change["attempts"] = max(0, job.attempts - 1)
                    elif job.attempts >= self.max_attempts:
                        log.warning("delivery %s: attempt %d failed transiently (%s); retrying until %s",
                                    job.delivery_id, job.attempts, err, self.deadline(job.alert))
            changes.append(change)
            events.append({"delivery_id": job.delivery_id, "source": "send", "status": change["status"],
                           "error_code": code, "detail": str(err)[:500], "received_at": now,
                           "provider": job.provider})
        table = Delivery.__table__
        for keys in {tuple(sorted(c)) for c in changes}:
            same = [c for c in changes if tuple(sorted(c)) == keys]
            # Only rows still ours: a status callback may already have moved one forward
            # (never backwards), or the reconciler taken it over.
            stmt = (update(table)
                    .where(table.c.id == bindparam("b_id"), table.c.status == SENDING,
                           table.c.claimed_by == self.worker_id)
                    .values({k: bindparam(f"b_{k}") for k in keys if k != "id"}))
            db.session.execute(stmt, [{f"b_{k}": v for k, v in c.items()} for c in same])
        if sent:
            # A status callback can overtake this record and move a row on ('delivered') before
            # it: fill what the callback could not know, keep what it set (sent_at, the SID).
            db.session.execute(
                update(table)
                .where(table.c.id == bindparam("b_id"), table.c.status != SENDING,
                       table.c.claimed_by == self.worker_id)
                .values(provider_ref=func.coalesce(table.c.provider_ref, bindparam("b_ref")),
                        segments=func.coalesce(table.c.segments, bindparam("b_segments")),
                        sent_at=func.coalesce(table.c.sent_at, bindparam("b_now"))),
                sent)
        if events:
            db.session.execute(insert(DeliveryEvent), [
                {"provider_ref": None, "error_code": None, "detail": None, "provider": None, **e} for e in events])
        db.session.commit()
        self._act_on_residents(opted_out, unreachable, gone_push)

    def _act_on_residents(self, opted_out: set[int], unreachable: dict[int, str], gone_push: list[str]) -> None:
        """Permanent provider answers change the resident, so we stop paying for failures."""
        from subscribers import service
        from subscribers.push import remove_endpoint

        origin = service.Origin("provider")
        for endpoint in gone_push:
            # By endpoint, never by resident: a freshly renewed subscription must survive.
            remove_endpoint(endpoint, origin, "the push service answered 404/410")
        for sid in opted_out:
            subscriber = db.session.get(Subscriber, sid)
            if subscriber is not None:
                service.opt_out(subscriber, origin, detail="the SMS provider reports an opt-out (21610)")
        for sid, reason in unreachable.items():
            subscriber = db.session.get(Subscriber, sid)
            if subscriber is not None and subscriber.status == ACTIVE:
                service.deactivate(subscriber, reason, origin)

    # --- the loop ----------------------------------------------------------------------------

    def run_once(self) -> int:
        """One claim-send-record cycle; returns how many deliveries it handled."""
        self.maybe_rebalance()
        with self.app.app_context():
            try:
                now = utcnow()
                ids = self.claim(now)
                if not ids:
                    return 0
                jobs = self.load(ids)
                self.prepare(jobs, now)
                to_send = [j for j in jobs if not j.skip]
                skipped = [j for j in jobs if j.skip]
                self.assign_providers(to_send)
                done = threading.Event()
                renewer = threading.Thread(target=self.renew_leases, args=([j.delivery_id for j in to_send], done),
                                           name="lease", daemon=True)
                renewer.start()
                try:
                    outcomes = list(self.pool.map(self.send, to_send))
                finally:
                    done.set()
                    renewer.join()
                self.record(outcomes, skipped, utcnow())
                return len(ids)
            finally:
                db.session.remove()

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

    def renew_leases(self, ids: list[int], done: threading.Event) -> None:
        """Runs beside a batch: renews the lease on the batch's rows this dispatcher still holds.

        One UPDATE by primary key per renewal. Only this batch: a row an earlier cycle failed
        to record must expire and be reconciled, not be kept alive by later batches. Rows a
        callback moved on or the reconciler took over are no longer ours and not renewed.
        """
        table = Delivery.__table__
        while ids and not done.wait(self.renew_every):
            try:
                with self.engine.begin() as conn:
                    conn.execute(update(table).where(table.c.id.in_(ids), table.c.status == SENDING,
                                                     table.c.claimed_by == self.worker_id)
                                 .values(lease_renewed_at=utcnow()))
            except Exception:  # noqa: BLE001 - a missed renewal is retried; the lease has slack
                log.exception("renewing the lease on our batch failed")

    def run_forever(self, stop: threading.Event, idle_seconds: float = 1.0) -> None:
        from alerts.receipts import reconcile_stuck

        log.info("dispatcher %s started (batch %d, %d threads)", self.worker_id, self.batch_size, self.concurrency)
        last_reconcile = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() - last_reconcile > self.reconcile_every:
                    with self.app.app_context():
                        reconcile_stuck()
                        db.session.remove()
                    last_reconcile = time.monotonic()
                handled = self.run_once()
            except Exception:  # noqa: BLE001 - a bad cycle must not stop alerts; logged, retried
                log.exception("dispatch cycle failed")
                handled = 0
            if not handled:
                stop.wait(idle_seconds)
        self.close()

    def maybe_rebalance(self) -> None:
        """Every SMS_FAILOVER_CHECK_SECONDS, judge the providers and shift the split
        (alerts/balance.py; with several dispatchers one of them makes each shift)."""
        if len(self.channels) < 2 or time.monotonic() - self._rebalanced < self.rebalance_every:
            return
        self._rebalanced = time.monotonic()
        from alerts.balance import rebalance

        with self.app.app_context():
            try:
                if rebalance(self.app.extensions["sms_split"]):
                    self.router.invalidate()
            except Exception:  # noqa: BLE001 - sending goes on at the split it has
                log.exception("judging the SMS providers failed")
            finally:
                db.session.remove()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self._close_check_conn()

    def _close_check_conn(self) -> None:
        with self.check_lock:
            if self.check_conn is not None:
                self.check_conn.close()
                self.check_conn = None
