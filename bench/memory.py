"""Memory: fanning out 1,000,000 deliveries and dispatching them stays under 300 MB.

What is measured: the peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`) of one fresh
process that creates the app on a SQLite file (WAL) holding 1,000,000 active residents,
publishes one alert to all of them (`publish()`: a 1,000,000-row INSERT ... SELECT in one
transaction), then runs `Dispatcher.run_once()` cycles (batches of 200, 32 threads, the real
twilio SDK) to a fake Twilio API in another process (bodies not recorded, answers at once).

Sending all 1,000,000 through the SDK would take ~15-20 minutes on this machine, so the
dispatch phase covers the first 100,000 deliveries (500 batches) and prints the peak RSS after
20k, 50k and 100k. The Dispatcher holds one batch at a time (claim 200 ids, load, send,
record, commit, `db.session.remove()`), so memory per batch is bounded: if the three readings
are flat, the remaining 900,000 go through the same 200-row cycles on the same footprint.

Why the baseline is fair: a bare app process (same interpreter start-up, same imports,
`create_app` with the same config, one empty query on the same 1,000,000-resident database),
measured in the same run, is the floor any Syrena process pays; the ratio shows what
fan-out and dispatch add on top of it. Seeding runs in its own process beforehand (it is a
fixture, not what is measured), and every measured process is freshly spawned, so ru_maxrss
is never inflated by an earlier benchmark.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from bench.common import (
    FakeInfo,
    FakeTwilioProcess,
    Figure,
    app_config,
    current_rss_mb,
    make_app,
    peak_rss_from_proc_mb,
    peak_rss_mb,
    production_logging,
    progress,
    run_in_fresh_process,
    seed_residents,
    sqlite_url,
    temp_dir,
)

FULL_RESIDENTS = 1_000_000
FULL_DISPATCHED = 100_000
CHECKPOINTS = (0.2, 0.5, 1.0)  # of the dispatched count: 20k, 50k, 100k
TARGET_MB = 300.0
# Growth of peak RSS between the first and the last dispatch reading still called flat.
FLAT_MB = 5.0
CONCURRENCY = 32
BATCH_SIZE = 200


def _config(url: str, fake: FakeInfo) -> dict[str, Any]:
    return app_config(url, twilio=fake, DISPATCH_CONCURRENCY=CONCURRENCY, DISPATCH_BATCH_SIZE=BATCH_SIZE)


def _seed(url: str, fake: FakeInfo, count: int) -> float:
    """Fixture, in its own process: the schema and `count` residents (weather >= 1, KOZY)."""
    from db import db

    started = time.perf_counter()
    app = make_app(_config(url, fake))
    with app.app_context():
        seed_residents(count, categories={"weather": 1}, areas=["KOZY"])
        db.engine.dispose()
    return time.perf_counter() - started


def _bare_app(url: str, fake: FakeInfo) -> dict[str, float]:
    """Baseline, in a fresh process: create_app + one empty query."""
    from sqlalchemy import select

    from app import create_app
    from db import db
    from subscribers.models import Subscriber

    production_logging()
    app = create_app(_config(url, fake))
    with app.app_context():
        db.session.execute(select(Subscriber.id).limit(0)).all()
        db.session.remove()
    return {"peak_mb": peak_rss_mb(), "rss_mb": current_rss_mb(), "hwm_mb": peak_rss_from_proc_mb()}


def _fan_out_and_dispatch(url: str, fake: FakeInfo, residents: int, dispatched: int) -> dict[str, Any]:
    """Measured, in a fresh process: publish to everyone, then dispatch `dispatched`."""
    from alerts import publish as lifecycle
    from alerts.dispatcher import Dispatcher
    from app import create_app
    from bench.common import new_alert
    from db import db

    class ClaimTimingDispatcher(Dispatcher):
        """The product's Dispatcher, unchanged, with a stopwatch around claim()."""

        claim_seconds = 0.0
        claims = 0

        def claim(self, now):  # noqa: ANN001, ANN202
            started = time.perf_counter()
            try:
                return super().claim(now)
            finally:
                self.claim_seconds += time.perf_counter() - started
                self.claims += 1

    production_logging()
    app = create_app(_config(url, fake))
    out: dict[str, Any] = {}
    with app.app_context():
        alert = new_alert(level=1)
        out["before_mb"] = peak_rss_mb()
        started = time.perf_counter()
        queued = lifecycle.publish(alert)["sms"]
        out["fanout_seconds"] = time.perf_counter() - started
        db.session.remove()
    if queued != residents:
        raise AssertionError(f"published to {queued}, expected {residents}")
    out["fanout_peak_mb"] = peak_rss_mb()
    out["fanout_rss_mb"] = current_rss_mb()

    dispatcher = ClaimTimingDispatcher(app)
    marks = [round(dispatched * f) for f in CHECKPOINTS]
    readings: list[tuple[int, float, float]] = []
    handled = 0
    started = time.perf_counter()
    try:
        while handled < dispatched:
            n = dispatcher.run_once()
            if not n:
                break
            handled += n
            while marks and handled >= marks[0]:
                readings.append((marks.pop(0), peak_rss_mb(), current_rss_mb()))
    finally:
        dispatcher.close()
    out["dispatch_seconds"] = time.perf_counter() - started
    out["handled"] = handled
    out["readings"] = readings
    out["claim_ms"] = dispatcher.claim_seconds / max(1, dispatcher.claims) * 1000
    out["claim_share"] = dispatcher.claim_seconds / out["dispatch_seconds"]
    out["peak_mb"] = peak_rss_mb()
    out["hwm_mb"] = peak_rss_from_proc_mb()
    with app.app_context():
        db.engine.dispose()
    return out


def main(quick: bool = False) -> list[str]:
    """Two lines: the peak-RSS figure vs a bare app, and the per-batch readings."""
    residents = FULL_RESIDENTS // 10 if quick else FULL_RESIDENTS
    dispatched = FULL_DISPATCHED // 10 if quick else FULL_DISPATCHED
    with FakeTwilioProcess(record_bodies=False) as fake, temp_dir() as directory:
        assert fake.info is not None
        url = sqlite_url(directory, "memory.db")
        progress(f"memory: seeding {residents:,} residents (own process)")
        seed_seconds = run_in_fresh_process(_seed, url, fake.info, residents)
        progress(f"memory: seeded in {seed_seconds:.1f} s; bare app process")
        bare = run_in_fresh_process(_bare_app, url, fake.info)
        progress(f"memory: bare app peak {bare['peak_mb']:.0f} MB; "
                 f"fan-out {residents:,} + dispatch {dispatched:,}")
        ours = run_in_fresh_process(_fan_out_and_dispatch, url, fake.info, residents, dispatched)
        fake_stats = fake.stats()
    if ours["handled"] != dispatched or fake_stats["messages"] != dispatched:
        raise AssertionError(
            f"dispatched {ours['handled']}, fake got {fake_stats['messages']}, expected {dispatched}")
    peak = ours["peak_mb"]
    ratio = peak / bare["peak_mb"]
    figure = Figure(
        name=f"memory     fan-out {residents:,} + dispatch first {dispatched:,} (real SDK)",
        ours=f"peak RSS {peak:.0f} MB (VmHWM {ours['hwm_mb']:.0f})",
        baseline=f"bare app process (create_app + empty query) peak RSS {bare['peak_mb']:.0f} MB "
                 f"(VmHWM {bare['hwm_mb']:.0f}; RSS after the query {bare['rss_mb']:.0f})",
        ratio=ratio,
        ratio_text="our peak / bare app peak",
        target=f"peak < {TARGET_MB:.0f} MB",
        passed=peak < TARGET_MB,
    )
    readings: list[tuple[int, float, float]] = ours["readings"]
    marks = ", ".join(f"{n // 1000:,}k: peak {p:.0f} / now {r:.0f} MB" for n, p, r in readings)
    # Flat = neither the peak nor the current RSS grows from the first reading to the last.
    growth = max(readings[-1][1] - readings[0][1], readings[-1][2] - readings[0][2])
    if growth <= FLAT_MB:
        verdict = (f"flat per batch ({growth:+.0f} MB from the first reading to the last), so the other "
                   f"{residents - dispatched:,} go through the same 200-row cycle on the same footprint")
    else:
        verdict = f"NOT flat: {growth:+.0f} MB from the first reading to the last"
    detail = (f"memory     RSS: app + alert peak {ours['before_mb']:.0f} MB; after fan-out peak "
              f"{ours['fanout_peak_mb']:.0f} / now {ours['fanout_rss_mb']:.0f} MB "
              f"({ours['fanout_seconds']:.1f} s, "
              f"{residents / ours['fanout_seconds']:,.0f} rows/s); dispatched {marks}; {verdict}")
    rate = ours["handled"] / ours["dispatch_seconds"]
    speed = (f"memory     (info) dispatch with {residents:,} rows pending: {rate:,.0f} msg/s; claim() took "
             f"{ours['claim_ms']:.1f} ms per batch of {BATCH_SIZE}, "
             f"{ours['claim_share']:.0%} of the dispatch time")
    return [figure.line(), detail, speed]


if __name__ == "__main__":
    for output in main(quick="--quick" in sys.argv):
        print(output, flush=True)
