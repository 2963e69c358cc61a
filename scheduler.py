"""The one clock: ``python scheduler.py`` runs periodic jobs in a process of its own.

APScheduler 3 job stores cannot be shared between processes, so exactly one scheduler may
poll at a time. Leadership is a lease in the database (leader_lease.py) that the leader
renews three times per SCHEDULER_LEASE_SECONDS; a second scheduler (started by mistake, or
on a second machine) stands by and takes the lease over when it runs out: after the leader
died, hung, or was frozen. A leader that finds its lease gone stops leading at once, and its
jobs check the lease before each run, so a leader woken from a freeze runs nothing.

A database outage (a PostgreSQL restart, a cut network) stops nothing for good: the lease
loop, every job and the dispatcher log it once, wait with capped backoff
(DB_RECONNECT_MAX_SECONDS) and carry on when it is back; nothing is lost, because every step
is a transaction.

Every job runs in a fresh app context; a job that fails is logged and runs again next time;
jobs run in a thread pool so a slow one never holds the others up.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from db_outage import DatabaseOutage, QuietDuringOutage, is_database_outage
from leader_lease import LeaderLease

log = logging.getLogger("syrena.scheduler")


@dataclass(frozen=True)
class Job:
    id: str
    func: Callable[[], Any]
    seconds: float
    jitter: float = 0.0


def housekeeping() -> str:
    """Drop expired rate-limit windows and old verification codes."""
    from db import db, utcnow
    from subscribers import ratelimit
    from subscribers.models import (
        INBOUND_SMS_RETENTION_DAYS,
        VERIFICATION_RETENTION_DAYS,
        InboundSms,
        Subscriber,
        Verification,
    )

    now = utcnow()
    counters = ratelimit.purge_old(now - timedelta(days=2))
    codes = db.session.execute(
        db.delete(Verification).where(Verification.created_at < now - timedelta(days=VERIFICATION_RETENTION_DAYS))
    ).rowcount
    # Texts from numbers that are not residents (a wrong number, "Dzien dobry..."): nobody
    # can ask for them to be erased, so they do not stay for ever.
    strangers = db.session.execute(
        db.delete(InboundSms).where(
            InboundSms.received_at < now - timedelta(days=INBOUND_SMS_RETENTION_DAYS),
            InboundSms.from_phone.not_in(db.select(Subscriber.phone).where(Subscriber.phone.is_not(None))))
    ).rowcount
    db.session.commit()
    return f"purged {counters} rate counters, {codes} old codes, {strangers} old texts from non-residents"


def send_queued_sms() -> str | None:
    from subscribers.outbox import drain

    n = drain()
    return f"sent {n} queued texts to residents" if n else None


def privacy() -> str | None:
    """Purge unconfirmed sign-ups after 24 h, retry deletions at the SMS provider that an
    erasure could not finish, drop expired hint windows (subscribers/erasure.py)."""
    from subscribers.erasure import housekeeping as privacy_housekeeping

    return privacy_housekeeping()


def publish_scheduled() -> str | None:
    from alerts.publish import publish_due

    n = publish_due()
    return f"published {n} scheduled alerts" if n else None


def expire() -> str | None:
    from alerts.publish import expire_alerts

    n = expire_alerts()
    return f"{n} alerts expired" if n else None


def poll_statuses() -> str | None:
    from alerts.receipts import poll_statuses as poll

    n = poll()
    return f"{n} delivery statuses updated from the provider" if n else None


def poll_calls() -> str | None:
    from alerts.call_outcome import poll_calls as poll

    n = poll()
    return f"{n} calls settled from the provider (their status callback was lost)" if n else None


def poll_feed(name: str) -> str | None:
    """One feed's poll; a failed read is logged in one line (it is recorded in feed health)."""
    from alerts.feeds import FEEDS
    from providers.feeds import FeedError

    try:
        report = FEEDS[name].poll()
    except FeedError as exc:
        log.warning("feed %s failed, nothing changed: %s", name, exc)
        return None
    return f"{name}: {report.summary()}"


def jobs(app: Flask) -> list[Job]:
    """Everything the clock runs, with its interval (the dispatcher runs beside them).

    Each feed is a job of its own, so a slow feed never holds the others up."""
    from functools import partial

    from alerts.feeds import FEEDS, enabled_feeds

    with app.app_context():
        feeds = enabled_feeds()
    feed_jobs = []
    for name in feeds:
        seconds = app.config[FEEDS[name].interval_setting]
        feed_jobs.append(Job(f"feed:{name}", partial(poll_feed, name), seconds=seconds, jitter=seconds / 10))
    return [*feed_jobs,
        # Residents' codes and manage links, queued by web requests: every second, in a
        # thread of its own, so a code never waits behind an alert's fan-out.
        Job("sms_outbox", send_queued_sms, seconds=1),
        Job("publish_scheduled", publish_scheduled, seconds=15),
        Job("expire_alerts", expire, seconds=60, jitter=5),
        Job("poll_statuses", poll_statuses, seconds=300, jitter=30),
        Job("poll_calls", poll_calls, seconds=120, jitter=10),
        Job("housekeeping", housekeeping, seconds=3600, jitter=60),
        Job("privacy", privacy, seconds=3600, jitter=60),
    ]


def _run_in_context(app: Flask, job: Job, lease: LeaderLease | None = None,
                    outage: DatabaseOutage | None = None) -> None:
    """Run one job in a fresh app context, if this process still leads (``lease``).

    A leader that was frozen (SIGSTOP, a hung VM) wakes up with jobs overdue; the lease
    check comes first, so none of them runs before the main loop has found out whether
    another scheduler took over. A database outage is logged once (``outage``), any other
    failure with its traceback; either way the job runs again at its next time."""
    from db import db

    if lease is not None and not lease.held():
        log.debug("job %s skipped: this scheduler does not hold the lease now", job.id)
        return
    with app.app_context():
        try:
            result = job.func()
            if outage is not None:
                outage.succeeded()
            if result:
                log.info("%s: %s", job.id, result)
        except Exception as exc:  # logged; the job runs again at its next time
            if outage is not None and is_database_outage(exc):
                outage.failed(exc)
            else:
                log.exception("job %s failed", job.id)
            try:
                db.session.rollback()
            except Exception:  # noqa: BLE001 - the connection is gone; remove() discards it
                pass
        finally:
            db.session.remove()


# The dispatcher's loggers (its window and the reconciler beside it log each failure too).
QUIET_LOGGERS = ("alerts.dispatcher", "alerts.window", "alerts.reconcile", "alerts.receipts")


def build_scheduler(app: Flask, job_list: list[Job], lease: LeaderLease | None = None,
                    outage: DatabaseOutage | None = None) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=max(4, len(job_list) + 1))},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        timezone="UTC",
    )
    for job in job_list:
        scheduler.add_job(_run_in_context, "interval", args=(app, job, lease, outage), id=job.id, name=job.id,
                          seconds=job.seconds, jitter=job.jitter or None, next_run_time=None)
    return scheduler


def _start_dispatcher(app: Flask, stop: threading.Event) -> threading.Thread:
    from alerts.dispatcher import Dispatcher

    dispatcher = Dispatcher(app)
    thread = threading.Thread(target=dispatcher.run_forever, args=(stop,), name="dispatcher", daemon=True)
    thread.start()
    return thread


class _Leading:
    """What the leader runs: the jobs' clock, and a dispatcher beside it."""

    def __init__(self, app: Flask, job_list: list[Job], lease: LeaderLease, outage: DatabaseOutage,
                 with_dispatcher: bool) -> None:
        self.scheduler = build_scheduler(app, job_list, lease, outage)
        self.scheduler.start()
        # Run every job once at start, then on its interval.
        for job in self.scheduler.get_jobs():
            job.modify(next_run_time=_now())
        self.dispatching = threading.Event()
        self.dispatcher = _start_dispatcher(app, self.dispatching) if with_dispatcher else None

    def stop(self) -> None:
        self.dispatching.set()
        if self.dispatcher is not None:
            self.dispatcher.join(timeout=60)
        self.scheduler.shutdown(wait=True)


def run(app: Flask, stop: threading.Event, poll_lock_seconds: float = 5.0,
        on_leader: Callable[[], None] | None = None, with_dispatcher: bool = True) -> None:
    """Take or renew the lease in a loop; run the jobs (and a dispatcher) while holding it;
    stop when `stop` is set. More dispatchers can run beside it with `flask dispatch`.

    A standby tries every `poll_lock_seconds`; so a dead or frozen leader is replaced within
    SCHEDULER_LEASE_SECONDS + `poll_lock_seconds`. Never exits on a database error."""
    from db import db

    with app.app_context():
        engine = db.engine
    lease = LeaderLease(engine, app.config["SCHEDULER_LEASE_SECONDS"])
    outage = DatabaseOutage("scheduler", app.config["DB_RECONNECT_MAX_SECONDS"])
    # The dispatcher's cycle logs each failure with a traceback, every second: one line per
    # outage is enough.
    quiet = QuietDuringOutage(outage)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).addFilter(quiet)
    # Three renewals per lease: one slow or lost renewal does not cost the lead.
    renew_every = min(poll_lock_seconds, lease.seconds / 3)
    job_list = jobs(app)
    leading: _Leading | None = None
    standing_by = False
    try:
        while not stop.is_set():
            try:
                won = lease.claim()
            except Exception as exc:  # whatever it is, retry: exiting stops every job
                if is_database_outage(exc):
                    wait = outage.failed(exc)
                else:
                    log.exception("could not take or renew the scheduler lease")
                    wait = poll_lock_seconds
                # A leader keeps its clock and dispatcher running: the jobs check the lease
                # themselves and pause when it runs out; several dispatchers may run anyway.
                stop.wait(min(wait, renew_every) if leading else wait)
                continue
            outage.succeeded()
            if won and leading is None:
                standing_by = False
                log.info("scheduler lease acquired; running %d jobs", len(job_list))
                if on_leader:
                    on_leader()
                leading = _Leading(app, job_list, lease, outage, with_dispatcher)
            elif not won:
                if leading is not None:
                    log.warning("another scheduler took the lease over; this one stops leading")
                    leading.stop()
                    leading = None
                if not standing_by:  # once, not every poll
                    log.info("another scheduler holds the lease; standing by")
                    standing_by = True
            stop.wait(renew_every if leading else poll_lock_seconds)
    finally:
        if leading is not None:
            leading.stop()
        lease.release()
        for name in QUIET_LOGGERS:
            logging.getLogger(name).removeFilter(quiet)


def _now():
    from datetime import datetime

    return datetime.now(UTC)


def main() -> None:
    from app import create_app_or_exit

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # APScheduler logs every run of every job at INFO; our jobs log what they did instead.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    app = create_app_or_exit()
    import metrics

    metrics.metrics_server(app)  # METRICS_ADDRESS, if set
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run(app, stop, poll_lock_seconds=app.config["SCHEDULER_POLL_SECONDS"])


if __name__ == "__main__":
    main()
