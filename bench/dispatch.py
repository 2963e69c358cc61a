"""Dispatch: SMS per second through our Dispatcher vs a bare keep-alive HTTP client.

What is measured: the wall time for the production loop, the sliding window of
alerts/window.py (what `Dispatcher.run_forever` runs: small claims whenever there is room,
load, render, send through TwilioSms, i.e. the real twilio SDK, on a pool of
DISPATCH_CONCURRENCY=32 threads, outcomes recorded in small groups as they come, the
reconciler in its thread beside it) to drain 5,000 pending deliveries of a freshly
published alert from SQLite (a file in a temp dir, WAL), with no rate limit
(SMS_RATE_PER_SECOND=0). A second line times `Dispatcher.run_once()` cycles (a batch of
DISPATCH_BATCH_SIZE=200 that waits for its slowest call) on the same rows, the loop
before the window, against the same baseline. Publishing is outside the clock. Median of 3.

The gateway is tests/fakes/twilio_api.FakeTwilio (werkzeug, keep-alive, bodies not
recorded) on 127.0.0.1 in a separate process, so its request handling does not share our
GIL (it still shares the machine's 2 cores, as any loopback benchmark does).

Why the baseline is fair: it is the least a sender can do to hand the same messages to the
same fake with the same concurrency: one `requests.Session` with an `HTTPAdapter` pool of
32 keep-alive connections, 32 threads (`ThreadPoolExecutor.map`, as the Dispatcher uses),
POSTing the same form fields (To, Body, MessagingServiceSid, StatusCallback,
ValidityPeriod) with the same basic auth to the same URL, and reading the SID out of the
JSON answer, which any sender must do. Like our Twilio channel it sets
`trust_env=False`, so the baseline is not slowed by the proxy-environment scan that our
code avoids (perf-limits.md section 3). The forms are built before its clock starts. It
does no database work, no rendering and no SDK object mapping: the ratio is exactly what
the Dispatcher and the SDK add per message. Runs alternate (ours first in runs 1 and 3).

Logging is configured as in production (app.py / scheduler.py: root logger at INFO), but
written to /dev/null; see bench.common.production_logging.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from bench.common import (
    SERVICE_SID,
    FakeInfo,
    FakeTwilioProcess,
    Figure,
    app_config,
    cpu_seconds,
    free_memory,
    make_app,
    median,
    new_alert,
    production_logging,
    progress,
    runs_text,
    seed_residents,
    sqlite_url,
    temp_dir,
)

FULL_COUNT = 5_000
RUNS = 3
CONCURRENCY = 32
BATCH_SIZE = 200
TARGET_RATIO = 0.5
# Twilio's default for an alphanumeric sender is 10 segments/s; "well above" = 10x that.
PROVIDER_RATE = 10.0
TARGET_MIN_RATE = 10 * PROVIDER_RATE


@dataclass
class Sample:
    seconds: float
    client_cpu: float  # this process, all threads
    fake_cpu: float  # the fake Twilio process

    def rate(self, count: int) -> float:
        return count / self.seconds


@dataclass
class Results:
    ours: list[Sample] = field(default_factory=list)  # the window
    batches: list[Sample] = field(default_factory=list)  # run_once cycles
    raw: list[Sample] = field(default_factory=list)


class RawSender:
    """The baseline: a bare keep-alive requests client with 32 pooled connections."""

    def __init__(self, fake: FakeInfo, concurrency: int) -> None:
        self.url = f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
        self.auth = (fake.account_sid, fake.auth_token)
        self.session = requests.Session()
        self.session.trust_env = False
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=concurrency)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="raw")

    def post(self, form: dict[str, str]) -> str:
        response = self.session.post(self.url, data=form, auth=self.auth, timeout=10)
        if response.status_code != 201:
            raise AssertionError(f"fake Twilio answered {response.status_code}: {response.text[:200]}")
        return response.json()["sid"]

    def send_all(self, forms: list[dict[str, str]]) -> int:
        sids = set(self.pool.map(self.post, forms))
        return len(sids)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.session.close()


def _forms(app: Any, count: int, first_delivery_id: int) -> list[dict[str, str]]:
    """The form fields TwilioSms.send posts for a published alert, one per resident."""
    from alerts import render
    from population import phone_for

    with app.app_context():
        alert = new_alert(level=1)
        body = render.sms_body(alert, "pl")
    base = app.config["PUBLIC_BASE_URL"].rstrip("/")
    return [{
        "To": phone_for(n), "Body": body, "MessagingServiceSid": SERVICE_SID,
        "StatusCallback": f"{base}/webhooks/twilio/status?d={first_delivery_id + n}",
        "ValidityPeriod": "21599",
    } for n in range(count)]


def _clean(app: Any) -> None:
    """Delete every delivery and its events (outside the clock)."""
    from alerts.models import Delivery, DeliveryEvent
    from db import db

    with app.app_context():
        db.session.execute(db.delete(DeliveryEvent))
        db.session.execute(db.delete(Delivery))
        db.session.commit()
        raw = db.engine.raw_connection()
        raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        raw.close()
        db.session.remove()


def _publish(app: Any, count: int) -> int:
    from alerts import publish as lifecycle
    from db import db

    with app.app_context():
        alert = new_alert(level=1)
        queued = lifecycle.publish(alert)["sms"]
        db.session.remove()
    if queued != count:
        raise AssertionError(f"published to {queued}, expected {count}")
    return queued


def _drain(dispatcher: Any, window: bool) -> None:
    if window:
        import threading

        from alerts.window import SendingWindow

        SendingWindow(dispatcher).run(threading.Event(), until_idle=True)
        return
    while dispatcher.run_once():
        pass


def _sent(app: Any) -> int:
    from sqlalchemy import func, select

    from alerts.models import SENT, Delivery
    from db import db

    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == SENT))
        db.session.remove()
        return int(n or 0)


def _time_ours(app: Any, dispatcher: Any, fake: FakeTwilioProcess, count: int, window: bool) -> Sample:
    _clean(app)
    fake.reset()
    _publish(app, count)
    free_memory()
    fake_before = fake.stats()["cpu_seconds"]
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    _drain(dispatcher, window)
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
    stats = fake.stats()
    sent = _sent(app)
    if stats["messages"] != count or sent != count:
        raise AssertionError(f"dispatcher recorded {sent} sent, fake got {stats['messages']}, expected {count}")
    return Sample(elapsed, cpu, stats["cpu_seconds"] - fake_before)


def _time_raw(sender: RawSender, forms: list[dict[str, Any]], fake: FakeTwilioProcess,
              counted: str = "messages") -> Sample:
    """The baseline's run: `forms` posted by `sender`; the fake must count each once (its
    `counted` figure: messages, or calls)."""
    fake.reset()
    free_memory()
    fake_before = fake.stats()["cpu_seconds"]
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    distinct = sender.send_all(forms)
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
    stats = fake.stats()
    if distinct != len(forms) or stats[counted] != len(forms):
        raise AssertionError(
            f"raw sent {distinct} distinct SIDs, fake got {stats[counted]} {counted}, expected {len(forms)}")
    return Sample(elapsed, cpu, stats["cpu_seconds"] - fake_before)


def measure(count: int, *, runs: int = RUNS) -> Results:
    """`runs` interleaved runs of ours and of the baseline, each sending `count` SMS."""
    from alerts.dispatcher import Dispatcher

    production_logging()
    results = Results()
    with FakeTwilioProcess(record_bodies=False) as fake, temp_dir() as directory:
        assert fake.info is not None
        app = make_app(app_config(sqlite_url(directory, "dispatch.db"), twilio=fake.info,
                                  DISPATCH_CONCURRENCY=CONCURRENCY, DISPATCH_BATCH_SIZE=BATCH_SIZE))
        with app.app_context():
            progress(f"dispatch: seeding {count:,} residents")
            seed_residents(count, categories={"weather": 1}, areas=["KOZY"])
        dispatcher = Dispatcher(app)
        sender = RawSender(fake.info, CONCURRENCY)
        forms = _forms(app, count, first_delivery_id=1)
        try:
            # Warm-up, untimed: opens every keep-alive connection and builds the per-thread
            # SDK clients, as a long-running dispatcher process would have done already.
            _publish(app, count)
            for _ in range(3):
                dispatcher.run_once()
            sender.send_all(forms[: 3 * BATCH_SIZE])
            for run in range(runs):
                order = ("ours", "batches", "raw") if run % 2 == 0 else ("raw", "batches", "ours")
                for which in order:
                    if which == "ours":
                        sample = _time_ours(app, dispatcher, fake, count, window=True)
                        results.ours.append(sample)
                    elif which == "batches":
                        sample = _time_ours(app, dispatcher, fake, count, window=False)
                        results.batches.append(sample)
                    else:
                        sample = _time_raw(sender, forms, fake)
                        results.raw.append(sample)
                    progress(f"dispatch run {run + 1} {which}: {sample.rate(count):,.0f} msg/s "
                             f"({sample.seconds:.2f} s, client CPU {sample.client_cpu / count * 1e6:.0f} "
                             f"us/msg, fake CPU {sample.fake_cpu / count * 1e6:.0f} us/msg)")
        finally:
            dispatcher.close()
            sender.close()
            with app.app_context():
                from db import db

                db.engine.dispose()
    return results


def _describe(samples: list[Sample], count: int) -> str:
    rates = [s.rate(count) for s in samples]
    cpu = median([s.client_cpu / count * 1e6 for s in samples])
    fake_cpu = median([s.fake_cpu / count * 1e6 for s in samples])
    return (f"{median(rates):,.0f} msg/s (runs {runs_text(rates, '{:,.0f}')}; "
            f"client CPU {cpu:,.0f} us/msg, fake {fake_cpu:,.0f} us/msg)")


def main(quick: bool = False) -> list[str]:
    """Two lines: our msg/s (the window; run_once batches) vs the bare client's, with the
    provider-rate check."""
    count = FULL_COUNT // 10 if quick else FULL_COUNT
    results = measure(count)
    raw = median([s.rate(count) for s in results.raw])
    lines = []
    for label, samples in ((f"window of {4 * CONCURRENCY}", results.ours), (f"run_once batches of {BATCH_SIZE}",
                                                                            results.batches)):
        ours = median([s.rate(count) for s in samples])
        ratio = ours / raw
        lines.append(Figure(
            name=f"dispatch   Dispatcher ({label}) + twilio SDK, {count:,} SMS, {CONCURRENCY} threads",
            ours=_describe(samples, count) + f" = {ours / PROVIDER_RATE:,.0f}x Twilio's 10 seg/s",
            baseline="bare requests.Session, 32 conns/threads, same forms " + _describe(results.raw, count),
            ratio=ratio,
            ratio_text="our msg/s / raw msg/s",
            target=f">= {TARGET_RATIO:.2f}x and >= {TARGET_MIN_RATE:,.0f} msg/s",
            passed=ratio >= TARGET_RATIO and ours >= TARGET_MIN_RATE,
        ).line())
    return lines


if __name__ == "__main__":
    for output in main(quick="--quick" in sys.argv):
        print(output, flush=True)
