"""The one clock: exactly one scheduler runs the jobs, a second one stands by and takes over,
and every job runs in a fresh app context where a failure is logged, rolled back and retried."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import flask
from flask import Flask
from sqlalchemy import select

import scheduler
from db import db, utcnow
from leader_lease import LeaderLease, LeaderLeaseRow
from scheduler import Job
from subscribers.models import RateCounter

ROOT = Path(__file__).resolve().parents[1]
ACQUIRED = "scheduler lease acquired"
STANDING_BY = "another scheduler holds the lease; standing by"


# --- helpers -----------------------------------------------------------------------------


def scheduler_env(app: Flask) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "DATABASE_URL"))}
    env.update({
        "SYRENA_ENV": "testing",
        "SECRET_KEY": app.config["SECRET_KEY"],
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "SYRENA_MUNICIPALITY": app.config["SYRENA_MUNICIPALITY"],
        "PUBLIC_BASE_URL": app.config["PUBLIC_BASE_URL"],
        "SMS_BACKEND": "console",
        "QUIET_HOURS": "off",
        "PYTHONUNBUFFERED": "1",
        # No feed polls from these schedulers: nothing may reach the internet in tests.
        "FEEDS": "none",
        "SCHEDULER_POLL_SECONDS": "1",
        # A dead leader is replaced within the lease plus one poll: seconds, not half a minute.
        "SCHEDULER_LEASE_SECONDS": "3",
    })
    return env


def start_scheduler(env: dict[str, str], log: Path) -> subprocess.Popen:
    # Output goes to a file: an unread pipe would fill up and block the scheduler.
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "scheduler.py"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, text=True)


def stop_all(processes: list[subprocess.Popen]) -> None:
    """SIGTERM, then SIGKILL whatever is still running: never leave a scheduler behind."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_until(predicate, timeout: float, what: str) -> float:
    """Poll `predicate`; return the seconds it took, or fail with `what`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def old_rate_counter(key: str) -> None:
    db.session.add(RateCounter(key=key, window_start=utcnow() - timedelta(days=3), count=1))
    db.session.commit()


def rate_counters() -> list[str]:
    db.session.expire_all()
    return db.session.scalars(select(RateCounter.key).order_by(RateCounter.key)).all()


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


# --- two real scheduler processes ------------------------------------------------------------


def test_only_one_scheduler_runs_the_jobs_and_a_second_takes_over_when_the_first_dies(app, tmp_path):
    from tests.fakes.feed_server import METEO, FeedServer

    old_rate_counter("before-first-leader")
    feeds = FeedServer().__enter__()
    feeds.reset()
    env = scheduler_env(app)
    # Both schedulers are told to poll IMGW (the fake) once an hour: a leader polls once at
    # start, a scheduler standing by never.
    env.update({"FEEDS": "imgw-meteo", "IMGW_API_BASE": feeds.base_url, "FEED_INTERVAL_SECONDS": "3600",
                "IMGW_INTERVAL_SECONDS": "3600"})
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    processes: list[subprocess.Popen] = []
    try:
        for log in logs:
            processes.append(start_scheduler(env, log))
        read = [lambda i=i: logs[i].read_text() for i in range(2)]

        def roles_settled() -> bool:
            outputs = [r() for r in read]
            assert all(p.poll() is None for p in processes), f"a scheduler exited early: {outputs}"
            return any(ACQUIRED in o for o in outputs) and any(STANDING_BY in o for o in outputs)

        wait_until(roles_settled, 20, "one scheduler to lead and the other to stand by")
        leader = 0 if ACQUIRED in read[0]() else 1
        standby = 1 - leader
        # The leader runs every job once at start: housekeeping purges the old counter.
        wait_until(lambda: "housekeeping:" in read[leader](), 10, "the leader's housekeeping")
        assert "housekeeping: purged 1 rate counters" in read[leader](), read[leader]()
        assert "dispatcher" in read[leader]() and "started" in read[leader]()
        assert rate_counters() == []
        wait_until(lambda: "imgw-meteo:" in read[leader](), 10, "the leader's first IMGW poll")
        time.sleep(1.5)  # give a wrongly active standby the time to poll too
        assert feeds.count(METEO) == 1, "only the leader may poll"
        standby_log = read[standby]()
        assert ACQUIRED not in standby_log and "housekeeping" not in standby_log, standby_log
        assert "dispatcher" not in standby_log, standby_log

        # Something for the next leader to do; the first one would not purge again for an hour.
        old_rate_counter("after-first-leader")
        processes[leader].send_signal(signal.SIGKILL)
        processes[leader].wait(timeout=10)
        assert processes[leader].returncode == -signal.SIGKILL
        took = wait_until(lambda: ACQUIRED in read[standby](), 15, "the standby to take the lease over")
        wait_until(lambda: "housekeeping:" in read[standby](), 10, "the new leader's housekeeping")
        assert "housekeeping: purged 1 rate counters" in read[standby](), read[standby]()
        assert rate_counters() == []
        assert took < 3 + 1 + 2, f"the lease (3 s) and one poll (1 s) bound the takeover, took {took:.1f} s"
        wait_until(lambda: feeds.count(METEO) == 2, 10, "the new leader's IMGW poll")

        # A clean stop: SIGTERM ends the new leader (its jobs and dispatcher) with exit code 0.
        processes[standby].send_signal(signal.SIGTERM)
        processes[standby].wait(timeout=15)
        assert processes[standby].returncode == 0, read[standby]()
    finally:
        stop_all(processes)
        feeds.__exit__()


# --- the leader lease in-process --------------------------------------------------------------


def claim_all_at_once(leases: list[LeaderLease]) -> list[bool]:
    """Every lease claims at the same moment, each from a thread of its own."""
    barrier = threading.Barrier(len(leases))
    results: list[bool | None] = [None] * len(leases)

    def claim(i: int) -> None:
        barrier.wait()
        results[i] = leases[i].claim()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(leases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert None not in results, "a claim did not finish"
    return results  # type: ignore[return-value]


def lease_row() -> LeaderLeaseRow | None:
    db.session.expire_all()
    return db.session.get(LeaderLeaseRow, "scheduler")


def test_a_scheduler_started_by_mistake_stays_idle(app):
    first, second = LeaderLease(db.engine, 30), LeaderLease(db.engine, 30)
    assert first.claim() and first.held()
    assert not second.claim() and not second.held()
    assert not second.claim(), "asking again changes nothing"
    assert first.claim(), "the holder renews"
    row = lease_row()
    assert row is not None and row.holder == first.holder
    assert row.expires_at > utcnow() + timedelta(seconds=25)


def test_a_lease_that_runs_out_goes_to_the_one_standing_by_and_the_old_holder_knows_it(app):
    first, second = LeaderLease(db.engine, 0.5), LeaderLease(db.engine, 0.5)
    assert first.claim()
    assert not second.claim()
    time.sleep(0.6)  # the holder is frozen, hung or cut off: no renewal
    assert not first.held(), "the holder stops trusting its lease on its own clock"
    assert second.claim() and second.held()
    assert not first.claim(), "the old holder must now stand by"
    assert not first.held()
    assert lease_row().holder == second.holder


def test_the_holder_trusts_its_lease_for_less_than_the_others_wait(app):
    first = LeaderLease(db.engine, 4.0)
    assert first.claim()
    time.sleep(3.7)
    # Past nine tenths of the lease: the holder has stopped acting on it, and the others
    # still see it valid (the margin is for clocks a little apart).
    assert not first.held()
    assert not LeaderLease(db.engine, 4.0).claim()


def test_a_scheduler_that_stops_hands_the_lease_to_the_one_standing_by(app):
    first, second = LeaderLease(db.engine, 30), LeaderLease(db.engine, 30)
    assert first.claim()
    assert not second.claim()
    first.release()
    assert not first.held()
    assert second.claim()
    assert not first.claim()
    second.release()
    second.release()  # twice is harmless
    assert lease_row() is None


def test_only_one_of_many_schedulers_takes_a_free_or_expired_lease_at_once(app):
    # A lease far longer than the race: twenty threads opening connections on a loaded CI
    # machine can take over a second, and a lease that ran out *during* the race may
    # rightly go to a second taker. Expiry is made by moving expires_at back, not by sleeping.
    leases = [LeaderLease(db.engine, 60) for _ in range(20)]
    won = claim_all_at_once(leases)
    assert won.count(True) == 1, won
    leader = leases[won.index(True)]
    assert lease_row().holder == leader.holder
    with db.engine.begin() as conn:  # it expires: all twenty race for it again
        conn.execute(LeaderLeaseRow.__table__.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    won = claim_all_at_once(leases)
    assert won.count(True) == 1, won
    assert lease_row().holder == leases[won.index(True)].holder


# --- jobs ------------------------------------------------------------------------------------


def test_a_failing_job_is_logged_and_runs_again(app, caplog):
    runs: list[int] = []

    def flaky() -> str:
        runs.append(1)
        db.session.add(RateCounter(key=f"half-{len(runs)}", window_start=utcnow(), count=1))
        db.session.flush()  # written to the database, inside the job's transaction
        if len(runs) == 1:
            raise RuntimeError("the provider is down")
        db.session.add(RateCounter(key=f"whole-{len(runs)}", window_start=utcnow(), count=1))
        db.session.commit()
        return "done"

    job = Job("flaky", flaky, seconds=60)
    with caplog.at_level(logging.INFO, logger="syrena.scheduler"):
        scheduler._run_in_context(app, job)  # must not raise
        [failure] = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert failure.getMessage() == "job flaky failed"
        assert failure.exc_info and failure.exc_info[0] is RuntimeError
        assert "the provider is down" in caplog.text
        assert rate_counters() == [], "the failed run's writes were rolled back"

        caplog.clear()
        scheduler._run_in_context(app, job)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert "flaky: done" in caplog.messages
    assert rate_counters() == ["half-2", "whole-2"]

    # Through a real scheduler too: the failure does not unschedule the job.
    runs.clear()
    db.session.execute(db.delete(RateCounter))
    db.session.commit()
    clock = scheduler.build_scheduler(app, [Job("flaky", flaky, seconds=0.2)])
    clock.start()
    try:
        clock.get_job("flaky").modify(next_run_time=scheduler._now())
        wait_until(lambda: len(runs) >= 2, 10, "the job to run again after failing")
    finally:
        clock.shutdown(wait=True)
    assert "half-1" not in rate_counters() and "whole-2" in rate_counters()


def test_each_job_runs_in_a_fresh_app_context(app):
    seen: list[tuple[object, object, object, bool]] = []

    def job() -> None:
        ctx = flask.globals.app_ctx._get_current_object()
        g = flask.g._get_current_object()
        seen.append((ctx, g, db.session(), hasattr(g, "marker")))
        g.marker = "left behind by an earlier run"

    test_ctx = flask.globals.app_ctx._get_current_object()
    test_session = db.session()
    for _ in range(2):
        scheduler._run_in_context(app, Job("ctx", job, seconds=60))
    (ctx1, g1, session1, marked1), (ctx2, g2, session2, marked2) = seen  # kept alive: ids not reused
    assert ctx1 is not ctx2 and g1 is not g2 and session1 is not session2
    assert test_ctx not in (ctx1, ctx2) and test_session not in (session1, session2)
    assert not marked1 and not marked2, "nothing on g survives from one run to the next"
    assert flask.globals.app_ctx._get_current_object() is test_ctx, "the caller's context is restored"
