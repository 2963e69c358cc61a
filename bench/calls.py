"""Calls: voice calls placed per second through our Dispatcher vs a bare keep-alive client,
with the SMS rate of the same dispatcher to the same fake beside it.

What is measured: the wall time for the production loop (the sliding window of
alerts/window.py, as in bench/dispatch.py) to place 2,000 calls of a freshly published
warning to residents who take calls only: claim, load, build the call (TwiML URL, status
callback, answering-machine detection) and `calls.create` through TwilioVoice (the real
twilio SDK) on 32 threads, outcomes recorded as they come, with no rate limit
(VOICE_CALLS_PER_SECOND=0). Beside it, the same dispatcher sends 2,000 SMS of the same
warning to the same fake (the dispatch figure at this size). Publishing is outside the
clock. Median of 3.

The fake is tests/fakes/twilio_voice.FakeTwilioVoice (the fake Twilio API with the Calls
resource) in its own process. The baseline is bench/dispatch.py's, aimed at Calls.json: one
`requests.Session` with 32 pooled keep-alive connections and 32 threads POSTing the same
form fields (To, From, Url, Method, StatusCallback, StatusCallbackMethod,
StatusCallbackEvent, MachineDetection, Timeout, TimeLimit) with the same basic auth, reading
the SID from the JSON answer. Its forms are built before its clock starts.

Twilio itself starts 1 call per second per account unless support raises it: the figure
shows what the dispatcher could do, not what an account will be allowed.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from bench.common import (
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
    sqlite_url,
    temp_dir,
)
from bench.dispatch import CONCURRENCY, RawSender, Sample, _time_raw

FULL_COUNT = 2_000
RUNS = 3
TARGET_RATIO = 0.5
FROM = "+48338100200"


class RawCaller(RawSender):
    """The baseline: bench/dispatch.py's bare client, posting to Calls.json."""

    def __init__(self, fake: Any, concurrency: int) -> None:
        super().__init__(fake, concurrency)
        self.url = f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Calls.json"


def _forms(app: Any, count: int) -> list[dict[str, Any]]:
    from population import phone_for

    base = app.config["PUBLIC_BASE_URL"].rstrip("/")
    return [{"To": phone_for(n), "From": FROM, "Url": f"{base}/webhooks/twilio/voice/answer?d={n + 1}",
             "Method": "POST", "StatusCallback": f"{base}/webhooks/twilio/voice/status?d={n + 1}",
             "StatusCallbackMethod": "POST", "StatusCallbackEvent": "completed",
             "MachineDetection": "DetectMessageEnd", "Timeout": "30", "TimeLimit": "300"} for n in range(count)]


def _reset(app: Any) -> None:
    from alerts.models import Delivery, DeliveryEvent
    from db import db

    with app.app_context():
        db.session.execute(db.delete(DeliveryEvent))
        db.session.execute(db.delete(Delivery))
        db.session.commit()
        db.session.remove()


def _time(app: Any, dispatcher: Any, fake: FakeTwilioProcess, count: int, channel: str) -> Sample:
    import threading

    from sqlalchemy import func, select

    from alerts import publish as lifecycle
    from alerts.models import SENT, Delivery
    from alerts.window import SendingWindow
    from db import db

    _reset(app)
    fake.reset()
    with app.app_context():
        queued = lifecycle.publish(new_alert(level=2, channels=(channel,)))[channel]
        db.session.remove()
    assert queued == count, (queued, count)
    free_memory()
    fake_before = fake.stats()["cpu_seconds"]
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    SendingWindow(dispatcher).run(threading.Event(), until_idle=True)
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
    stats = fake.stats()
    with app.app_context():
        sent = db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == SENT))
        db.session.remove()
    placed = stats["calls"] if channel == "voice" else stats["messages"]
    if placed != count or sent != count:
        raise AssertionError(f"{channel}: recorded {sent} sent, the fake got {placed}, expected {count}")
    return Sample(elapsed, cpu, stats["cpu_seconds"] - fake_before)


def measure(count: int, runs: int = RUNS) -> dict[str, list[Sample]]:
    from alerts.dispatcher import Dispatcher
    from population import seed

    production_logging()
    results: dict[str, list[Sample]] = {"voice": [], "sms": [], "raw": []}
    with FakeTwilioProcess(record_bodies=False) as fake, temp_dir() as directory:
        app = make_app(app_config(sqlite_url(directory, "calls.db"), twilio=fake.info,
                                  DISPATCH_CONCURRENCY=CONCURRENCY, VOICE_BACKEND="twilio", TWILIO_VOICE_FROM=FROM,
                                  VOICE_CALLS_PER_SECOND=0))
        with app.app_context():
            progress(f"calls: seeding {count:,} residents with calls (and SMS)")
            # Calls and SMS both: the same residents take the SMS run and the calls run.
            seed(count, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
        dispatcher = Dispatcher(app)
        caller = RawCaller(fake.info, CONCURRENCY)
        forms = _forms(app, count)
        try:
            _time(app, dispatcher, fake, count, "voice")  # warm-up, untimed
            caller.send_all(forms[:200])
            for run in range(runs):
                order = ("voice", "sms", "raw") if run % 2 == 0 else ("raw", "sms", "voice")
                for which in order:
                    sample = (_time_raw(caller, forms, fake, counted="calls") if which == "raw"
                              else _time(app, dispatcher, fake, count, which))
                    results[which].append(sample)
                    progress(f"calls run {run + 1} {which}: {sample.rate(count):,.0f}/s ({sample.seconds:.2f} s)")
        finally:
            dispatcher.close()
            caller.close()
            with app.app_context():
                from db import db

                db.engine.dispose()
    return results


def main(quick: bool = False) -> list[str]:
    count = FULL_COUNT // 10 if quick else FULL_COUNT
    results = measure(count)
    rate = {k: median([s.rate(count) for s in v]) for k, v in results.items()}
    runs = {k: runs_text([s.rate(count) for s in v], "{:,.0f}") for k, v in results.items()}
    ratio = rate["voice"] / rate["raw"]
    return [Figure(
        name=f"calls      Dispatcher (window) + twilio SDK calls.create, {count:,} calls, {CONCURRENCY} threads",
        ours=(f"{rate['voice']:,.0f} calls/s (runs {runs['voice']}) = {rate['voice']:,.0f}x Twilio's default 1 call/s;"
              f" SMS beside it, same dispatcher and fake: {rate['sms']:,.0f} msg/s (runs {runs['sms']})"),
        baseline=f"bare requests.Session, 32 conns/threads, same Calls forms {rate['raw']:,.0f} calls/s "
                 f"(runs {runs['raw']})",
        ratio=ratio,
        ratio_text="our calls/s / raw calls/s",
        target=f">= {TARGET_RATIO:.2f}x",
        passed=ratio >= TARGET_RATIO,
    ).line()]


if __name__ == "__main__":
    for output in main(quick="--quick" in sys.argv):
        print(output, flush=True)
