"""Dispatchers as real processes: killed mid-send, or two at once, nobody is texted twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from alerts import publish as lifecycle
from alerts.models import Delivery, DeliveryEvent
from db import db
from population import phone_for, seed
from tests.test_delivery import alert

ROOT = Path(__file__).resolve().parents[1]


def dispatcher_env(app, twilio, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "DATABASE_URL"))}
    env.update({
        "SYRENA_ENV": "testing",
        "SECRET_KEY": app.config["SECRET_KEY"],
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "SYRENA_MUNICIPALITY": app.config["SYRENA_MUNICIPALITY"],
        "PUBLIC_BASE_URL": app.config["PUBLIC_BASE_URL"],
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_MESSAGING_SERVICE_SID": "MG" + "0" * 32,
        "TWILIO_API_BASE": twilio.base_url,
        "SMS_RATE_PER_SECOND": "0",
        "QUIET_HOURS": "off",
        **extra,
    })
    return env


def start_dispatcher(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen:
    # Output goes to a file: an unread pipe would fill up and block the dispatcher.
    out = log.open("w")
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "dispatch", *args], cwd=ROOT, env=env,
                            stdout=out, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, log: Path, timeout: float) -> str:
    process.wait(timeout=timeout)
    return log.read_text()


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.slow
def test_a_dispatcher_killed_in_the_middle_of_a_10000_recipient_send_texts_everyone_exactly_once(app, twilio,
                                                                                                  tmp_path):
    seed(10_000, categories={"weather": 1}, areas=["KOZY"])
    assert lifecycle.publish(alert(level=2)) == {"sms": 10_000}
    # A little latency keeps many requests in flight, so the kill lands between "Twilio
    # accepted it" and "we recorded it" for some of them: the case that causes duplicates.
    twilio.delay(0.02)
    env = dispatcher_env(app, twilio, DISPATCH_CONCURRENCY="32", DISPATCH_BATCH_SIZE="200")
    first = start_dispatcher(env, log=tmp_path / "first.log")
    try:
        # Kill in the middle of a batch of 200: part of it accepted by Twilio, none recorded.
        wait_until(lambda: (len(twilio.messages) >= 3000 and 40 <= len(twilio.messages) % 200 <= 160)
                   or first.poll() is not None, 120, "3000 messages and a batch half sent")
    finally:
        first.send_signal(signal.SIGKILL)
        output = finish(first, tmp_path / "first.log", 10)
    assert first.returncode == -signal.SIGKILL, output
    twilio.delay(0)
    sent_before_restart = len(twilio.messages)
    db.session.expire_all()
    stuck = db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sending"))
    by_status = dict(db.session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
    assert stuck > 0, f"the kill should leave deliveries claimed but not recorded: {by_status}, " \
                      f"{sent_before_restart} sent"
    assert sent_before_restart < 10_000

    second = start_dispatcher({**env, "DISPATCH_STALE_SECONDS": "0"}, "--once", log=tmp_path / "second.log")
    output = finish(second, tmp_path / "second.log", 300)
    assert second.returncode == 0, output

    per_phone = Counter(m["To"] for m in twilio.messages)
    assert len(per_phone) == 10_000
    assert max(per_phone.values()) == 1, [p for p, n in per_phone.items() if n > 1][:5]
    assert set(per_phone) == {phone_for(n) for n in range(10_000)}
    db.session.expire_all()
    assert set(db.session.scalars(select(Delivery.status).distinct())) == {"sent"}
    # Some of the stuck ones had in fact been sent: found at the provider, not sent again.
    found = db.session.scalar(select(func.count()).select_from(DeliveryEvent).where(
        DeliveryEvent.source == "reconcile", DeliveryEvent.status == "sent"))
    requeued = db.session.scalar(select(func.count()).select_from(DeliveryEvent).where(
        DeliveryEvent.source == "reconcile", DeliveryEvent.status == "pending"))
    assert found + requeued == stuck
    assert found > 0


@pytest.mark.slow
def test_two_dispatchers_at_once_never_send_one_delivery_twice(app, twilio, tmp_path):
    seed(3000, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert(level=2))
    twilio.delay(0.005)
    env = dispatcher_env(app, twilio, DISPATCH_CONCURRENCY="16", DISPATCH_BATCH_SIZE="50")
    workers = [start_dispatcher(env, "--once", log=tmp_path / f"w{i}.log") for i in range(2)]
    outputs = [finish(w, tmp_path / f"w{i}.log", 300) for i, w in enumerate(workers)]
    assert [w.returncode for w in workers] == [0, 0], outputs
    per_phone = Counter(m["To"] for m in twilio.messages)
    assert len(per_phone) == 3000 and max(per_phone.values()) == 1
    db.session.expire_all()
    claimed_by = db.session.scalars(select(Delivery.claimed_by).distinct()).all()
    assert len(claimed_by) == 2, "both dispatchers should have taken a share of the work"
    assert set(db.session.scalars(select(Delivery.status).distinct())) == {"sent"}


@pytest.mark.slow
def test_a_dispatcher_killed_in_the_middle_of_a_call_batch_calls_everyone_exactly_once(make_app, twilio, tmp_path):
    app = make_app(VOICE_BACKEND="twilio", TWILIO_VOICE_FROM="+48338100200")
    seed(2_000, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2}, voice_only=True)
    assert lifecycle.publish(alert(level=2, channels=("sms", "voice"))) == {"sms": 0, "voice": 2_000}
    twilio.delay(0.02)
    env = dispatcher_env(app, twilio, DISPATCH_CONCURRENCY="32", DISPATCH_BATCH_SIZE="200",
                         VOICE_BACKEND="twilio", TWILIO_VOICE_FROM="+48338100200", VOICE_CALLS_PER_SECOND="0")
    first = start_dispatcher(env, log=tmp_path / "first.log")
    try:
        wait_until(lambda: (len(twilio.calls) >= 600 and 40 <= len(twilio.calls) % 200 <= 160)
                   or first.poll() is not None, 120, "600 calls and a batch half placed")
    finally:
        first.send_signal(signal.SIGKILL)
        output = finish(first, tmp_path / "first.log", 10)
    assert first.returncode == -signal.SIGKILL, output
    twilio.delay(0)
    placed_before_restart = len(twilio.calls)
    db.session.expire_all()
    stuck = db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sending"))
    assert stuck > 0 and placed_before_restart < 2_000

    second = start_dispatcher({**env, "DISPATCH_STALE_SECONDS": "0"}, "--once", log=tmp_path / "second.log")
    output = finish(second, tmp_path / "second.log", 300)
    assert second.returncode == 0, output

    per_phone = Counter(c["To"] for c in twilio.calls)
    assert set(per_phone) == {phone_for(n) for n in range(2_000)}  # nobody lost
    assert max(per_phone.values()) == 1, [p for p, n in per_phone.items() if n > 1][:5]  # nobody twice
    db.session.expire_all()
    assert set(db.session.scalars(select(Delivery.status).distinct())) == {"sent"}
    # Every row holds the SID of its own call.
    refs = dict(db.session.execute(select(Delivery.provider_ref, Delivery.id)).all())
    assert set(refs) == {c["sid"] for c in twilio.calls}
    found = db.session.scalar(select(func.count()).select_from(DeliveryEvent).where(
        DeliveryEvent.source == "reconcile", DeliveryEvent.status == "sent"))
    assert found > 0
    # A call found at Twilio counted as the attempt it was; one never placed did not count.
    assert set(db.session.scalars(select(Delivery.attempts).distinct())) == {1}
