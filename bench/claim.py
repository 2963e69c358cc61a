"""The claim on a freshly filled outbox, before any ANALYZE, alone and 8 at once (PostgreSQL).

What is measured: the claim's query (`Dispatcher.due(now)`: the next 200 due rows, FOR
UPDATE SKIP LOCKED, most urgent first) under the dispatcher's plan guard
(`alerts.dispatcher.claim_plan_guard`: SET LOCAL enable_bitmapscan/enable_sort off), 20
times, each in its own transaction rolled back, on an outbox just filled by `publish()`
with 300,000 due SMS while the table's statistics are still those of an empty outbox
(autovacuum off on `delivery` for the run): what a gmina-wide warning meets before
autovacuum comes by. The query is what depends on the statistics; the UPDATE of the 200
rows and the COMMIT around it cost the same either way.

Baseline, same run: the same query after `ANALYZE delivery`, without the guard, when the
planner knows. The unguarded query on the stale statistics is timed beside ours, to show
what the guard saves. Then 8 dispatchers run whole claims (`Dispatcher.claim`, UPDATE and
COMMIT included) at once until the outbox is empty: the median and 95th percentile claim,
and that no row was claimed twice.
"""

from __future__ import annotations

import statistics
import threading
import time

from bench.common import Figure, app_config, make_app, median, pg_scratch_database, progress, seed_residents, skipped

FULL_COUNT = 300_000
CLAIMS = 20
TARGET_RATIO = 2.0


def _due(dispatcher, guarded: bool) -> list[int]:  # noqa: ANN001
    """The claim's query in a transaction of its own, rolled back (nothing is claimed)."""
    from alerts.dispatcher import claim_plan_guard
    from db import db, utcnow

    try:
        if guarded:
            claim_plan_guard()
        return list(db.session.execute(dispatcher.due(utcnow())).scalars())
    finally:
        db.session.rollback()


def _outside_a_transaction(sql: str) -> None:
    """ANALYZE and the like, on a pooled connection given back as it was (not autocommit:
    a SET LOCAL on an autocommit connection does nothing)."""
    from db import db

    raw = db.engine.raw_connection()
    try:
        raw.driver_connection.autocommit = True
        raw.driver_connection.execute(sql)
    finally:
        raw.driver_connection.autocommit = False
        raw.close()


def _timed(call) -> float:  # noqa: ANN001
    started = time.perf_counter()
    ids = call()
    elapsed = time.perf_counter() - started
    assert len(ids) == 200, len(ids)
    return elapsed


def main(quick: bool = False) -> list[str]:
    count = FULL_COUNT // (10 if quick else 1)
    with pg_scratch_database() as url:
        if url is None:
            return [skipped("claim", "no PostgreSQL")]
        # No prepared statements: psycopg would plan the query once and reuse that plan for
        # the guarded and the unguarded runs alike (a plan outlives a SET LOCAL).
        app = make_app(app_config(url, municipality="porabka", DATABASE_POOLER="pgbouncer"))
        with app.app_context():
            from sqlalchemy import func, select

            from alerts import publish as lifecycle
            from alerts.dispatcher import Dispatcher
            from alerts.models import PENDING, Delivery
            from bench.common import new_alert
            from db import db, utcnow

            progress(f"claim: seeding {count:,} residents")
            seed_residents(count, categories={"weather": 1}, areas=["CZA"])
            _outside_a_transaction("ANALYZE")  # the population known, the outbox empty
            # Stale statistics on purpose, for the whole run: autovacuum could analyze it any time.
            _outside_a_transaction("ALTER TABLE delivery SET (autovacuum_enabled = false)")
            lifecycle.publish(new_alert(category="weather", level=1, areas=["CZA"]))
            dispatcher = Dispatcher(app)
            ours, unguarded = [], []
            for _ in range(CLAIMS):
                ours.append(_timed(lambda: _due(dispatcher, True)))
                unguarded.append(_timed(lambda: _due(dispatcher, False)))
            _outside_a_transaction("ANALYZE delivery")
            analyzed = [_timed(lambda: _due(dispatcher, False)) for _ in range(CLAIMS)]
            dispatcher.close()

            # Eight dispatchers at once until nothing is due.
            left = db.session.scalar(select(func.count()).where(Delivery.status == PENDING))
            db.session.remove()
            claimed: list[list[int]] = [[] for _ in range(8)]
            latencies: list[list[float]] = [[] for _ in range(8)]
            barrier = threading.Barrier(8)

            def work(i: int) -> None:
                worker = Dispatcher(app)
                with app.app_context():
                    barrier.wait()
                    while True:
                        started = time.perf_counter()
                        ids = worker.claim(utcnow())
                        latencies[i].append(time.perf_counter() - started)
                        if not ids:
                            break
                        claimed[i].extend(ids)
                    db.session.remove()
                worker.close()

            threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
            began = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.perf_counter() - began
            every = [i for ids in claimed for i in ids]
            assert len(every) == len(set(every)) == left, (len(every), len(set(every)), left)
            together = sorted(x for lat in latencies for x in lat)
            p50 = statistics.median(together)
            p95 = together[int(0.95 * (len(together) - 1))]

    ms = lambda s: f"{s * 1000:.2f} ms"  # noqa: E731
    ratio = median(ours) / median(analyzed)
    lines = [
        Figure("claim query, fresh outbox before ANALYZE", f"{ms(median(ours))} per batch of 200",
               f"{ms(median(analyzed))} after ANALYZE", ratio, "ours / analyzed", f"<= {TARGET_RATIO}x",
               ratio <= TARGET_RATIO).line(),
        f"claim query unguarded on the same stale statistics: {ms(median(unguarded))} per batch "
        f"({median(unguarded) / median(ours):.0f}x ours)",
        f"claim, 8 dispatchers at once: {left:,} rows in {took:.1f} s, claim p50 {ms(p50)}, p95 {ms(p95)}; "
        f"every row claimed once",
    ]
    return lines


if __name__ == "__main__":
    for line in main():
        print(line)
