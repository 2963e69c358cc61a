"""The dispatcher: takes due deliveries from the outbox and hands them to the channels.

The pieces (each in its module): claim and load (here), prepare and send
(alerts/sending.py), record (alerts/recording.py), reconcile (alerts/reconcile.py). Two
loops put them together:
- `run_forever`, the production loop (`flask dispatch`, the scheduler), is a sliding window
  (alerts/window.py): up to DISPATCH_CONCURRENCY calls out at once, refilled by small claims
  as soon as there is room, outcomes recorded in small groups as they come, reconciliation
  in a thread beside it. A hung provider call holds one place, not a batch.
- `run_once`, one batch that waits for all its calls (`flask dispatch --once`, tests):
1. Claim a batch: one UPDATE ... WHERE id IN (SELECT ... ORDER BY priority DESC, id LIMIT n)
   sets status 'sending' and is committed *before* any provider call. On PostgreSQL the
   inner SELECT uses FOR UPDATE SKIP LOCKED, so several dispatchers on several machines
   share the work and never claim the same row; on SQLite the single writer serialises
   claims, so one dispatcher (or several) is safe too.
2. Send the batch concurrently (a thread pool; providers never touch the database), within
   each channel's rate limit.
3. Record every outcome in one transaction (bulk UPDATE + delivery events).

A claim is a lease: while its rows are out, the dispatcher renews `lease_renewed_at` on the
rows it still holds every third of DISPATCH_STALE_SECONDS, so a slow but live batch is
never taken for a dead one. Right before each provider call the resident's state is checked
again (alerts/optout.py: read at most 0.2 s before), so an opt-out committed during a long
(rate-limited) send stops their message.
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
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Callable, Collection
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy import select, text, update

from alerts.models import PENDING, SENDING, SKIPPED, Alert, Delivery
from alerts.optout import OptOutCheck
from alerts.outbox import QUIET_HOURS_MIN_PRIORITY
from alerts.recording import Recording
from alerts.sending import Job, Outcome, RateLimiter, Sending, worker_name
from db import db, utcnow
from municipality import in_quiet_hours, quiet_hours
from subscribers.models import ACTIVE, Subscriber

# Re-exported: callers and tests import them from here.
__all__ = ["Dispatcher", "Job", "Outcome", "RateLimiter", "worker_name"]

log = logging.getLogger(__name__)


def claim_plan_guard() -> None:
    """PostgreSQL: walk ix_delivery_claim in order and stop after one batch, whatever the
    table's statistics say. On an outbox filled since the last ANALYZE the planner believes
    in a few pending rows and reads every one of them to sort them (100 ms at 200,000 rows, a
    second at a million, per claim) instead of the batch it needs (bench/claim.py). For the
    claim's transaction only (SET LOCAL: also right behind PgBouncer in transaction mode)."""
    if db.engine.dialect.name == "postgresql":
        # set_config(..., true) is SET LOCAL; both in one round trip.
        db.session.execute(text("SELECT set_config('enable_bitmapscan', 'off', true), "
                                "set_config('enable_sort', 'off', true)"))


class Dispatcher(Sending, Recording):
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
        # The sliding window (run_forever): calls handed to the pool and not yet returned. Four
        # times the threads, so the pool has the next sends queued while the loop claims or
        # records, and a claim (half the window) spreads its fixed cost over enough rows.
        self.window_size = max(1, int(cfg.get("DISPATCH_WINDOW", 4 * self.concurrency)))
        self.retry_base = float(cfg.get("DISPATCH_RETRY_BASE_SECONDS", 5))
        self.retry_cap = float(cfg.get("DISPATCH_RETRY_MAX_SECONDS", 600))
        # No longer ends a delivery (transient errors are retried while the alert is valid):
        # past this many attempts each retry is logged as a warning, for the operators.
        self.max_attempts = int(cfg.get("DISPATCH_MAX_ATTEMPTS", 8))
        with app.app_context():
            # The pool threads re-read residents through it (they have no app context).
            self.engine = db.engine
        # Right before each provider call: is the resident still subscribed (alerts/optout.py)?
        self.optout = OptOutCheck(self.engine, float(cfg.get("DISPATCH_OPTOUT_CHECK_SECONDS", 0.2)))
        self.limits = {"sms": RateLimiter(float(cfg.get("SMS_RATE_PER_SECOND", 10))),
                       "push": RateLimiter(float(cfg.get("PUSH_RATE_PER_SECOND", 100))),
                       "voice": RateLimiter(float(cfg.get("VOICE_CALLS_PER_SECOND", 1)))}
        self.pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="send")
        from alerts.routing import ProviderRouter

        self.channels = app.extensions["sms_channels"]
        self.router = ProviderRouter(self.engine, list(self.channels), app.extensions["sms_split"])
        self.rebalance_every = float(cfg.get("SMS_FAILOVER_CHECK_SECONDS", 5))
        self._rebalanced = 0.0
        self._started_at = utcnow()
        self._beat = 0.0  # time.monotonic() of the last heartbeat (metrics.py)
        self.webpush = app.extensions.get("webpush")
        self.voice = app.extensions.get("voice")
        self.ring_seconds = int(cfg.get("VOICE_RING_SECONDS", 30))
        # Calls out at once: two seconds' worth at the call rate (a thread waits at most that
        # long for its turn); without a call rate nothing waits, and the window is the cap.
        call_rate = float(cfg.get("VOICE_CALLS_PER_SECOND", 1))
        self.calls_cap = min(self.concurrency, max(1, int(call_rate * 2))) if call_rate > 0 else self.window_size
        municipality = app.extensions["municipality"]
        self.municipality = municipality
        self.zone = ZoneInfo(municipality.timezone)
        self.quiet_hours = quiet_hours(cfg.get("QUIET_HOURS"), municipality)
        self.public_base = cfg["PUBLIC_BASE_URL"].rstrip("/")

    # --- 1. claim -----------------------------------------------------------------------

    def in_quiet_hours(self, now: datetime) -> bool:
        return in_quiet_hours(self.quiet_hours, now.astimezone(self.zone).time())

    def due(self, now: datetime, limit: int | None = None, calls: bool | None = None,
            lock: bool = True):  # noqa: ANN201
        """The next batch (up to `limit`, default batch_size) of due deliveries, most urgent
        first: a Select of ids. `calls`: True for calls only, False for everything but calls.
        `lock` (PostgreSQL): FOR UPDATE SKIP LOCKED, for a claim."""
        due = select(Delivery.id).where(Delivery.status == PENDING, Delivery.next_attempt_at <= now)
        if calls is not None:
            due = due.where(Delivery.channel == "voice" if calls else Delivery.channel != "voice")
        if self.in_quiet_hours(now):
            # A range of the claim index: the deferred routine messages are not even read.
            due = due.where(Delivery.priority >= QUIET_HOURS_MIN_PRIORITY)
        # Exactly the order of ix_delivery_claim, so the database reads one batch and stops.
        due = due.order_by(Delivery.priority.desc(), Delivery.id).limit(limit or self.batch_size)
        if lock and db.engine.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        return due

    def claim(self, now: datetime, limit: int | None = None, calls: int | None = None) -> list[int]:
        """Mark up to `limit` (default batch_size) due deliveries as ours ('sending') and commit.

        `calls` caps the calls among them: a call waits for VOICE_CALLS_PER_SECOND in a
        sending thread, so a backlog of calls claimed at once would hold every thread and
        hold up the SMS behind it. Then SMS and push are claimed first, and calls after them
        up to the cap. None: no cap (calls are off, or the caller counts for itself)."""
        limit = limit or self.batch_size
        if calls is None or self.voice is None:
            return self._claim(self.due(now, limit), now)
        ids = self._claim(self.due(now, limit, calls=False), now)
        room = min(calls, limit - len(ids))
        if room > 0:
            ids += self._claim(self.due(now, room, calls=True), now)
        return ids

    def _claim(self, due, now: datetime) -> list[int]:  # noqa: ANN001 - a Select of ids
        claim_plan_guard()
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
                   Delivery.provider, Delivery.error_code, Delivery.error, Subscriber.voice)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id, isouter=True)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.priority.desc(), Delivery.id)  # the most urgent leave first
        ).all()
        alert_ids = {r[3] for r in rows}
        alerts = {a.id: a for a in db.session.scalars(select(Alert).where(Alert.id.in_(alert_ids)))}
        jobs = []
        for d_id, channel, attempts, alert_id, s_id, phone, lang, s_status, provider, code, error, voice in rows:
            job = Job(d_id, channel, attempts, alerts[alert_id], s_id, phone, lang or "pl")
            if provider is not None and (code is not None or error is not None):
                job.failed_at = provider  # still pending, so that error was transient
            if s_id is None or s_status != ACTIVE:
                job.skip = (SKIPPED, "resident left")
            elif channel == "voice" and not voice:
                job.skip = (SKIPPED, "resident turned calls off")
            jobs.append(job)
        return jobs


    def run_once(self) -> int:
        """One claim-send-record cycle; returns how many deliveries it handled."""
        self.maybe_rebalance()
        with self.app.app_context():
            try:
                now = utcnow()
                ids = self.claim(now, calls=self.calls_cap)
                if not ids:
                    return 0
                jobs = self.load(ids)
                self.prepare(jobs, now)
                to_send = [j for j in jobs if not j.skip]
                skipped = [j for j in jobs if j.skip]
                self.assign_providers(to_send)
                self.optout.expect(j.subscriber_id for j in to_send)
                done = threading.Event()
                held = [j.delivery_id for j in to_send]
                renewer = threading.Thread(target=self.renew_leases, args=(lambda: held, done),
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

    def renew_leases(self, held: Callable[[], Collection[int]], done: threading.Event) -> None:
        """Runs beside the sending: renews the lease on the rows `held()` names (read afresh
        at every renewal) that this dispatcher still holds.

        One UPDATE by primary key per renewal. Only rows still out: a row whose record failed
        is dropped from `held()` by its loop, so it expires and is reconciled rather than
        being kept alive by later sends. Rows a callback moved on or the reconciler took
        over are no longer ours and not renewed.
        """
        table = Delivery.__table__
        while not done.wait(self.renew_every):
            ids = list(held())
            if not ids:
                continue
            try:
                with self.engine.begin() as conn:
                    conn.execute(update(table).where(table.c.id.in_(ids), table.c.status == SENDING,
                                                     table.c.claimed_by == self.worker_id)
                                 .values(lease_renewed_at=utcnow()))
            except Exception:  # noqa: BLE001 - a missed renewal is retried; the lease has slack
                log.exception("renewing the lease on our deliveries in flight failed")

    def run_forever(self, stop: threading.Event, idle_seconds: float = 1.0) -> None:
        """The production loop (`flask dispatch`, the scheduler): a sliding window of sends
        with reconciliation beside it (alerts/window.py), until `stop`; then closes."""
        from alerts.window import SendingWindow

        log.info("dispatcher %s started (window of %d, %d threads)", self.worker_id, self.window_size,
                 self.concurrency)
        try:
            SendingWindow(self).run(stop, idle_seconds)
        finally:
            self.close()

    def maybe_rebalance(self) -> None:
        """Every SMS_FAILOVER_CHECK_SECONDS, judge the providers and shift the split
        (alerts/balance.py; with several dispatchers one of them makes each shift). Also
        says this dispatcher is alive, every HEARTBEAT_SECONDS (metrics.py)."""
        self.heartbeat()
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

    def heartbeat(self) -> None:
        import metrics

        if time.monotonic() - self._beat < metrics.HEARTBEAT_SECONDS:
            return
        self._beat = time.monotonic()
        try:
            metrics.heartbeat(self.engine, self.worker_id, self._started_at)
        except Exception:  # noqa: BLE001 - a missed heartbeat shows as an old one; sending goes on
            log.warning("the dispatcher's heartbeat could not be written", exc_info=True)

    def close(self) -> None:
        import metrics

        self.pool.shutdown(wait=True)
        self.optout.close()
        if self._beat:
            metrics.forget(self.engine, self.worker_id)
