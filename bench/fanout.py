"""Fan-out: `publish(alert)` writing 100,000 outbox rows, vs the same INSERT ... SELECT by hand.

What is measured: the wall time of `alerts.publish.publish(alert)` for a fresh level-1
weather alert aimed at one area (CZA of the Porąbka profile, so the area filter is part of
the match) that 100,000 seeded residents match: reloading the alert, the matching SELECT,
`alerts.outbox.insert_deliveries` (one INSERT ... SELECT ... ON CONFLICT DO NOTHING, on
PostgreSQL wrapped in a CTE that counts the rows) and the COMMIT. Median of 3 runs on SQLite
(a file in a temp dir, WAL, synchronous=NORMAL as db.py sets) and on PostgreSQL.

Why the baseline is fair: it writes the very same 100,000 rows (same columns and values,
same WHERE: active, has a phone, chose the category at this level, chose the area) into
the very same table with the same indexes, foreign keys and triggers, as one hand-written
SQL string executed and committed on the raw DBAPI connection: no ORM, no SQL compilation,
no ON CONFLICT, no counting CTE. It is the fastest way to write these rows that the table
allows (research/perf-limits.md section 1: INSERT ... SELECT beats executemany on SQLite
and is within 0.87x of COPY on PostgreSQL), so the ratio is exactly what our code adds.

Fairness between runs: each run gets a fresh alert; every delivery is deleted between runs
(and the WAL checkpointed on SQLite, VACUUM + CHECKPOINT on PostgreSQL) outside the clock;
ours and raw alternate in order (ours first in runs 1 and 3, raw first in run 2); the seed
fixture is freed and the GC run before timing. PostgreSQL gets VACUUM ANALYZE after seeding,
as autovacuum would do on a real population.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

from bench.common import (
    Figure,
    app_config,
    free_memory,
    make_app,
    median,
    new_alert,
    pg_scratch_database,
    progress,
    runs_text,
    seed_residents,
    skipped,
    spread,
    sqlite_url,
    temp_dir,
)

FULL_COUNT = 100_000
RUNS = 3
TARGET_RATIO = 1.5
AREA = "CZA"
CATEGORY = "weather"
LEVEL = 1

# The baseline, by hand: the rows insert_deliveries writes, with the WHERE match.matching builds.
RAW_INSERT = """
INSERT INTO delivery
    (alert_id, subscriber_id, channel, status, priority, next_attempt_at, attempts, created_at)
SELECT {p}, s.id, 'sms', 'pending', {p}, {p}, 0, {p}
FROM subscriber s
WHERE s.status = 'active' AND s.phone IS NOT NULL
  AND s.id IN (SELECT c.subscriber_id FROM subscriber_category c
               WHERE c.category = {p} AND c.min_level <= {p})
  AND s.id IN (SELECT a.subscriber_id FROM subscriber_area a WHERE a.area IN ({p}))
"""

SIGNATURE = """
SELECT count(*), count(DISTINCT subscriber_id), min(channel), min(status), min(priority),
       max(priority), max(attempts),
       count(DISTINCT next_attempt_at)
FROM delivery WHERE alert_id = {p}
"""


@dataclass
class EngineResult:
    ours: list[float]
    raw: list[float]


def _clean(engine_name: str) -> None:
    """Delete every delivery and settle the storage, outside the clock."""
    from db import db

    db.session.remove()
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("DELETE FROM delivery")
        raw.commit()
        if engine_name == "postgresql":
            driver = raw.driver_connection
            driver.autocommit = True
            driver.execute("VACUUM delivery")
            driver.execute("CHECKPOINT")
            driver.autocommit = False
        else:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.close()
    finally:
        raw.close()
    free_memory()


def _signature(alert_id: int, placeholder: str) -> tuple[Any, ...]:
    """What the rows of one alert look like (count, distinct residents, column values)."""
    from db import db

    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(SIGNATURE.format(p=placeholder), (alert_id,))
        row = tuple(cursor.fetchone())
        raw.commit()
        return row
    finally:
        raw.close()


def _time_ours(count: int) -> tuple[float, int]:
    from alerts import publish as lifecycle
    from db import db

    alert = new_alert(category=CATEGORY, level=LEVEL, areas=[AREA])
    alert_id = alert.id
    free_memory()
    started = time.perf_counter()
    counts = lifecycle.publish(alert)
    elapsed = time.perf_counter() - started
    db.session.remove()
    if counts.get("sms") != count:
        raise AssertionError(f"publish() queued {counts}, expected {count} SMS")
    return elapsed, alert_id


def _time_raw(count: int, engine_name: str) -> tuple[float, int]:
    from alerts import outbox
    from db import db, utcnow

    alert = new_alert(category=CATEGORY, level=LEVEL, areas=[AREA])
    alert_id, prio = alert.id, outbox.priority(alert)
    db.session.remove()
    postgres = engine_name == "postgresql"
    placeholder = "%s" if postgres else "?"
    sql = RAW_INSERT.format(p=placeholder)
    now = utcnow().replace(tzinfo=None)  # naive UTC, as UTCDateTime stores it
    stamp: Any = now if postgres else now.strftime("%Y-%m-%d %H:%M:%S.%f")
    params = (alert_id, prio, stamp, stamp, CATEGORY, LEVEL, AREA)
    raw = db.engine.raw_connection()  # checked out before the clock, as a raw-driver user holds one
    try:
        cursor = raw.cursor()
        free_memory()
        started = time.perf_counter()
        cursor.execute(sql, params)
        raw.commit()
        elapsed = time.perf_counter() - started
        written = cursor.rowcount
        cursor.close()
    finally:
        raw.close()
    if written != count:
        raise AssertionError(f"raw INSERT ... SELECT wrote {written} rows, expected {count}")
    return elapsed, alert_id


def _measure(url: str, engine_name: str, count: int) -> EngineResult:
    from db import db

    app = make_app(app_config(url, municipality="porabka"))
    result = EngineResult([], [])
    placeholder = "%s" if engine_name == "postgresql" else "?"
    with app.app_context():
        progress(f"fanout/{engine_name}: seeding {count:,} residents")
        seed_residents(count, categories={CATEGORY: LEVEL}, areas=[AREA])
        if engine_name == "postgresql":
            raw = db.engine.raw_connection()
            raw.driver_connection.autocommit = True
            raw.driver_connection.execute("VACUUM ANALYZE")
            raw.close()
        signatures: dict[str, tuple[Any, ...]] = {}
        for run in range(RUNS):
            order = ("ours", "raw") if run % 2 == 0 else ("raw", "ours")
            for which in order:
                _clean(engine_name)
                if which == "ours":
                    elapsed, alert_id = _time_ours(count)
                    result.ours.append(elapsed)
                else:
                    elapsed, alert_id = _time_raw(count, engine_name)
                    result.raw.append(elapsed)
                sig = _signature(alert_id, placeholder)
                # Ours and raw must write the same rows (timestamps aside: one per alert).
                signatures.setdefault(which, sig)
                progress(f"fanout/{engine_name} run {run + 1} {which}: {elapsed:.3f} s")
        _clean(engine_name)
        if signatures["ours"] != signatures["raw"]:
            raise AssertionError(f"ours and raw wrote different rows: {signatures}")
        db.session.remove()
        db.drop_all()
        db.engine.dispose()
    return result


def _figure(engine_name: str, count: int, result: EngineResult) -> Figure:
    ours, raw = median(result.ours), median(result.raw)
    ratio = ours / raw
    return Figure(
        name=f"fanout {engine_name:10s} publish() -> {count:,} deliveries",
        ours=f"{ours:.3f} s = {count / ours:,.0f} rows/s "
             f"(runs {runs_text(result.ours)}, spread {spread(result.ours):.0%})",
        baseline=f"raw INSERT ... SELECT {raw:.3f} s = {count / raw:,.0f} rows/s "
                 f"(runs {runs_text(result.raw)}, spread {spread(result.raw):.0%})",
        ratio=ratio,
        ratio_text="our time / raw time",
        target=f"<= {TARGET_RATIO:.2f}x",
        passed=ratio <= TARGET_RATIO,
    )


def main(quick: bool = False) -> list[str]:
    """Fan-out on SQLite, then PostgreSQL; one line per engine."""
    count = FULL_COUNT // 10 if quick else FULL_COUNT
    lines: list[str] = []
    with temp_dir() as directory:
        result = _measure(sqlite_url(directory, "fanout.db"), "sqlite", count)
    lines.append(_figure("sqlite", count, result).line())
    with pg_scratch_database() as url:
        if url is None:
            lines.append(skipped("fanout postgresql", "PostgreSQL not reachable; set BENCH_PG_URL"))
        else:
            result = _measure(url, "postgresql", count)
            lines.append(_figure("postgresql", count, result).line())
    return lines


if __name__ == "__main__":
    for output in main(quick="--quick" in sys.argv):
        print(output, flush=True)
