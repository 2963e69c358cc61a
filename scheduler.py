"""The one clock: ``python scheduler.py`` runs periodic jobs in a process of its own.

APScheduler 3 job stores cannot be shared between processes, so exactly one scheduler may
poll at a time. A second scheduler (started by mistake, or on a second machine) waits idle
while the first holds the leader lock, and takes over when the first dies:

- PostgreSQL: a session-level advisory lock, held by one connection for the life of the
  process; the server releases it when that connection dies.
- SQLite: an exclusive ``flock`` on a file beside the database file (one lock per database,
  like the advisory lock; SQLite is single-machine anyway).

Every job runs in a fresh app context; a job that fails is logged and runs again next time;
jobs run in a thread pool so a slow one never holds the others up.
"""

from __future__ import annotations

import fcntl
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

log = logging.getLogger("syrena.scheduler")

# An arbitrary constant shared by every Syrena process: "the scheduler leader".
ADVISORY_LOCK_KEY = 0x5359_5245  # "SYRE"


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
        Job("housekeeping", housekeeping, seconds=3600, jitter=60),
        Job("privacy", privacy, seconds=3600, jitter=60),
    ]


class LeaderLock:
    """Held by at most one scheduler process at a time (see module docstring)."""

    def __init__(self, database_url: str, lock_dir: Path) -> None:
        self.database_url = database_url
        database = make_url(database_url).database if database_url.startswith("sqlite") else None
        if database and database != ":memory:":
            self.lock_path = Path(f"{database}.scheduler-lock")
        else:
            self.lock_path = lock_dir / "scheduler.lock"
        self._conn = None
        self._engine = None
        self._file = None

    @property
    def postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    def try_acquire(self) -> bool:
        if self.postgres:
            if self._engine is None:
                # NullPool: closing the connection must really close it, or the server keeps
                # the session (and the lock) alive in the pool.
                self._engine = create_engine(self.database_url, poolclass=NullPool)
            conn = self._engine.connect()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}).scalar()
            conn.commit()
            if got:
                self._conn = conn
                return True
            conn.close()
            return False
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.lock_path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        self._file = fh
        return True

    def still_held(self) -> bool:
        """False when the lock connection died (the server then released the lock)."""
        if not self.postgres:
            return self._file is not None
        try:
            assert self._conn is not None
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
            return True
        except Exception:  # noqa: BLE001 - any failure means we can no longer trust the lock
            log.exception("lost the scheduler lock connection")
            self.release()
            return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
                self._conn.commit()
            except Exception:  # noqa: BLE001 - the connection may be dead already; closing frees it too
                pass
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001
                pass
            self._conn = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _run_in_context(app: Flask, job: Job) -> None:
    from db import db

    with app.app_context():
        try:
            result = job.func()
            if result:
                log.info("%s: %s", job.id, result)
        except Exception:  # noqa: BLE001 - logged; the job runs again at its next time
            log.exception("job %s failed", job.id)
            db.session.rollback()
        finally:
            db.session.remove()


def build_scheduler(app: Flask, job_list: list[Job]) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=max(4, len(job_list) + 1))},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        timezone="UTC",
    )
    for job in job_list:
        scheduler.add_job(_run_in_context, "interval", args=(app, job), id=job.id, name=job.id,
                          seconds=job.seconds, jitter=job.jitter or None, next_run_time=None)
    return scheduler


def _start_dispatcher(app: Flask, stop: threading.Event) -> threading.Thread:
    from alerts.dispatcher import Dispatcher

    dispatcher = Dispatcher(app)
    thread = threading.Thread(target=dispatcher.run_forever, args=(stop,), name="dispatcher", daemon=True)
    thread.start()
    return thread


def run(app: Flask, stop: threading.Event, poll_lock_seconds: float = 5.0,
        on_leader: Callable[[], None] | None = None, with_dispatcher: bool = True) -> None:
    """Wait for the leader lock, run the jobs (and a dispatcher) while holding it, stop when
    `stop` is set. More dispatchers can run beside it with `flask dispatch`."""
    lock = LeaderLock(app.config["SQLALCHEMY_DATABASE_URI"], Path(app.instance_path))
    job_list = jobs(app)
    standing_by = False
    try:
        while not stop.is_set():
            if not lock.try_acquire():
                if not standing_by:  # once, not every poll
                    log.info("another scheduler holds the lock; standing by")
                    standing_by = True
                stop.wait(poll_lock_seconds)
                continue
            standing_by = False
            log.info("scheduler lock acquired; running %d jobs", len(job_list))
            if on_leader:
                on_leader()
            scheduler = build_scheduler(app, job_list)
            scheduler.start()
            # Run every job once at start, then on its interval.
            for job in scheduler.get_jobs():
                job.modify(next_run_time=_now())
            dispatching = threading.Event()
            dispatcher = _start_dispatcher(app, dispatching) if with_dispatcher else None
            while not stop.wait(poll_lock_seconds):
                if not lock.still_held():
                    break
            dispatching.set()
            if dispatcher is not None:
                dispatcher.join(timeout=60)
            scheduler.shutdown(wait=True)
    finally:
        lock.release()


def _now():  # noqa: ANN202
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def main() -> None:
    from app import create_app_or_exit

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # APScheduler logs every run of every job at INFO; our jobs log what they did instead.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    app = create_app_or_exit()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run(app, stop, poll_lock_seconds=app.config["SCHEDULER_POLL_SECONDS"])


if __name__ == "__main__":
    main()
