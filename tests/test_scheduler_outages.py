"""Drills with real scheduler processes: a leader frozen by SIGSTOP is replaced and, woken up,
runs nothing; a PostgreSQL outage mid-send stops neither the scheduler nor `flask dispatch`,
and loses nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, make_url, select
from werkzeug.wrappers import Request

from alerts import publish as lifecycle
from alerts.models import Delivery
from db import db
from population import phone_for, seed
from tests.fakes.feed_server import FeedServer
from tests.test_crash_safety import start_dispatcher
from tests.test_delivery import alert
from tests.test_scheduler import ACQUIRED, STANDING_BY, scheduler_env, start_scheduler, stop_all, wait_until

TAKEN_OVER = "another scheduler took the lease over; this one stops leading"
LEASE = 3.0
POLL = 0.5


class FeedsByAgent(FeedServer):
    """The fake feeds, also counting which scheduler asked (each sends its own User-Agent)."""

    def __init__(self) -> None:
        super().__init__()
        self.agents: list[str] = []

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self._lock:
            self.agents.append(Request(environ).headers.get("User-Agent", ""))
        return super()._wsgi(environ, start_response)

    def by(self, agent: str) -> int:
        with self._lock:
            return self.agents.count(agent)


def polling_env(app, feeds: FeedsByAgent, agent: str) -> dict[str, str]:
    env = scheduler_env(app)
    env.update({"FEEDS": "imgw-meteo", "IMGW_API_BASE": feeds.base_url, "FEED_INTERVAL_SECONDS": "1", "IMGW_INTERVAL_SECONDS": "1",
                "FEED_USER_AGENT": agent, "SCHEDULER_LEASE_SECONDS": str(LEASE),
                "SCHEDULER_POLL_SECONDS": str(POLL)})
    return env


def test_a_frozen_leader_is_replaced_within_the_lease_and_polls_nothing_when_it_wakes(app, tmp_path):
    feeds = FeedsByAgent().__enter__()
    feeds.reset()
    logs = {name: tmp_path / f"{name}.log" for name in ("first", "second")}
    processes: list[subprocess.Popen] = []
    first = second = None
    try:
        first = start_scheduler(polling_env(app, feeds, "first"), logs["first"])
        processes.append(first)
        wait_until(lambda: feeds.by("first") >= 1, 20, "the first scheduler to lead and poll")
        second = start_scheduler(polling_env(app, feeds, "second"), logs["second"])
        processes.append(second)
        wait_until(lambda: STANDING_BY in logs["second"].read_text(), 20, "the second to stand by")
        assert feeds.by("second") == 0

        first.send_signal(signal.SIGSTOP)  # frozen: its connections stay open, nothing renews
        took = wait_until(lambda: ACQUIRED in logs["second"].read_text(), 15, "the standby to take over")
        assert took < LEASE + POLL + 1.5, f"took {took:.1f} s with a {LEASE} s lease"
        wait_until(lambda: feeds.by("second") >= 2, 10, "the new leader's polls")
        time.sleep(1.5)  # the frozen one's feed job is overdue by several runs now
        polled_by_first = feeds.by("first")

        first.send_signal(signal.SIGCONT)
        wait_until(lambda: TAKEN_OVER in logs["first"].read_text(), 10, "the old leader to notice")
        polled_by_second = feeds.by("second")
        time.sleep(2.5)  # two and a half feed intervals
        assert feeds.by("first") == polled_by_first, "a leader woken from a freeze must not poll: " \
                                                     + logs["first"].read_text()
        assert feeds.by("second") > polled_by_second, "the new leader goes on polling"
        assert first.poll() is None and second.poll() is None
        assert STANDING_BY in logs["first"].read_text().split(TAKEN_OVER, 1)[1]
    finally:
        if first is not None and first.poll() is None:
            first.send_signal(signal.SIGCONT)  # a stopped process would ignore SIGTERM
        stop_all(processes)
        feeds.__exit__()


# --- PostgreSQL stopped for 15 s -------------------------------------------------------------


def local_cluster() -> str | None:
    """The local PostgreSQL's version (as .ci/run finds it), if this machine can stop it."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url.startswith("postgresql") or make_url(url).host not in ("127.0.0.1", "localhost"):
        return None
    if not shutil.which("pg_ctlcluster") or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(os.listdir("/etc/postgresql"))
    return versions[0] if versions else None


def pg_ctl(version: str, action: str) -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True,
                   capture_output=True, timeout=60)


def pg_ready() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"], check=False, timeout=10).returncode == 0


def twilio_env(twilio) -> dict[str, str]:
    return {"SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": twilio.auth_token, "TWILIO_MESSAGING_SERVICE_SID": "MG" + "0" * 32,
            "TWILIO_API_BASE": twilio.base_url}


# Stops the PostgreSQL that every other test run on this machine uses: only when
# TEST_DATABASE_URL names a local cluster, and marked slow. It is restarted in `finally`.
@pytest.mark.slow
@pytest.mark.postgres_only
@pytest.mark.skipif(local_cluster() is None, reason="needs TEST_DATABASE_URL on a local PostgreSQL cluster")
def test_the_scheduler_and_flask_dispatch_ride_out_a_15_second_postgresql_outage_and_lose_nothing(
        app, twilio, tmp_path):
    version = local_cluster()
    assert version is not None
    seed(200, categories={"weather": 1}, areas=["KOZY"])
    assert lifecycle.publish(alert(level=2)) == {"sms": 200}
    feeds = FeedsByAgent().__enter__()
    feeds.reset()
    env = polling_env(app, feeds, "leader")
    # Two dispatchers: the scheduler's own and a `flask dispatch` beside it.
    env.update({**twilio_env(twilio), "SMS_RATE_PER_SECOND": "10", "DISPATCH_STALE_SECONDS": "3",
                "SCHEDULER_LEASE_SECONDS": "5", "DB_RECONNECT_MAX_SECONDS": "2"})
    log, dispatch_log = tmp_path / "scheduler.log", tmp_path / "dispatch.log"
    process = start_scheduler(env, log)
    dispatch = start_dispatcher(env, log=dispatch_log)
    try:
        wait_until(lambda: len(twilio.messages) >= 40 or process.poll() is not None or dispatch.poll() is not None,
                   30, "the send to be under way")
        assert process.poll() is None, log.read_text()
        assert dispatch.poll() is None, dispatch_log.read_text()
        pg_ctl(version, "stop")
        try:
            stopped_at = time.monotonic()
            while time.monotonic() - stopped_at < 15:
                assert process.poll() is None, "the scheduler exited during the outage: " + log.read_text()
                assert dispatch.poll() is None, "flask dispatch exited during the outage: " + dispatch_log.read_text()
                time.sleep(0.5)
            sent_during_outage = len(twilio.messages)
        finally:
            pg_ctl(version, "start")
            wait_until(pg_ready, 30, "PostgreSQL to be back")
        polls_at_restart = feeds.by("leader")
        assert sent_during_outage < 200, "the outage should land mid-send"

        wait_until(lambda: feeds.by("leader") > polls_at_restart, 20, "the scheduler to poll the feed again")
        wait_until(lambda: len({m["To"] for m in twilio.messages}) == 200, 60, "every resident's SMS")

        def all_recorded() -> bool:
            db.session.expire_all()
            return set(db.session.scalars(select(Delivery.status).distinct())) == {"sent"}

        wait_until(all_recorded, 30, "every delivery recorded as sent")
        per_phone = Counter(m["To"] for m in twilio.messages)
        assert set(per_phone) == {phone_for(n) for n in range(200)}
        assert max(per_phone.values()) == 1, [p for p, n in per_phone.items() if n > 1][:5]
        assert db.session.scalar(select(func.count()).select_from(Delivery)) == 200
        assert process.poll() is None and dispatch.poll() is None
        wait_until(lambda: "database reachable again" in dispatch_log.read_text(), 10, "flask dispatch to see it back")
        for output in (log.read_text(), dispatch_log.read_text()):
            assert output.count("database unreachable") == 1, output  # one line per outage
            assert output.count("database reachable again") == 1, output
            assert "Traceback" not in output, output

        for each, each_log in ((process, log), (dispatch, dispatch_log)):
            each.send_signal(signal.SIGTERM)
            each.wait(timeout=30)
            assert each.returncode == 0, each_log.read_text()
    finally:
        if not pg_ready():
            pg_ctl(version, "start")
        stop_all([process, dispatch])
        feeds.__exit__()
