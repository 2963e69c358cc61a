"""Helpers shared by the benchmarks: result lines, scratch databases, app config, the fake
Twilio API in its own process, fresh worker processes and memory readings.

Nothing here is timed; it only prepares fixtures and formats results.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection
from typing import Any, TypeVar

T = TypeVar("T")

# A Messaging Service SID in the right shape (TwilioSms.from_config checks the prefix).
SERVICE_SID = "MG" + "0" * 32
PG_SCRATCH_NAME = "bench_syrena"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_STARTED = time.monotonic()


# --- output -------------------------------------------------------------------------------


def progress(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the header and the figure lines."""
    print(f"  [{time.monotonic() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Figure:
    """One benchmark result: our figure, the baseline from the same run, their ratio, and
    whether the ratio meets the target. `ratio` is always ours / baseline in the unit the
    target is stated in (time for fan-out, msg/s for dispatch, MB for memory)."""

    name: str
    ours: str
    baseline: str
    ratio: float
    ratio_text: str
    target: str
    passed: bool

    def line(self) -> str:
        verdict = "PASS" if self.passed else "MISS"
        return (f"{self.name}: ours {self.ours} | baseline {self.baseline} | "
                f"ratio {self.ratio:.2f}x ({self.ratio_text}) | target {self.target} | {verdict}")


def skipped(name: str, why: str) -> str:
    return f"{name}: SKIPPED ({why})"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> float:
    """(max - min) / median, the noise measure used in research/perf-limits.md."""
    mid = median(values)
    return (max(values) - min(values)) / mid if mid else 0.0


def runs_text(values: Sequence[float], fmt: str = "{:.3f}") -> str:
    return "/".join(fmt.format(v) for v in values)


def free_memory() -> None:
    """Collect garbage before a clock starts: a full GC pass over a big fixture landing in
    the timed section made a query look 5x slower in research/perf-limits.md section 2."""
    gc.collect()
    gc.collect()


# --- databases and apps -------------------------------------------------------------------


def sqlite_url(directory: str, name: str = "bench.db") -> str:
    """A SQLite file on disk (db.py turns WAL, synchronous=NORMAL and foreign keys on)."""
    return f"sqlite:///{os.path.join(directory, name)}"


def pg_admin_url() -> str:
    url = os.environ.get("BENCH_PG_URL") or os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG_URL
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


@contextmanager
def pg_scratch_database() -> Iterator[str | None]:
    """Create `bench_syrena` next to the configured PostgreSQL database and drop it after.
    Yields None (and the caller skips) when PostgreSQL is not reachable."""
    from sqlalchemy import create_engine, make_url, text

    base = make_url(pg_admin_url())
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_SCRATCH_NAME}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{PG_SCRATCH_NAME}"'))
    except Exception as exc:  # noqa: BLE001 - any connection problem means "no PostgreSQL here"
        progress(f"PostgreSQL not available ({type(exc).__name__}: {exc}); skipping it")
        admin.dispose()
        yield None
        return
    try:
        yield base.set(database=PG_SCRATCH_NAME).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_SCRATCH_NAME}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def temp_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="syrena-bench-") as path:
        yield path


@dataclass(frozen=True)
class FakeInfo:
    """Where the fake Twilio API listens and the credentials it accepts."""

    base_url: str
    account_sid: str
    auth_token: str


def app_config(database_url: str, *, municipality: str = "kozy", twilio: FakeInfo | None = None,
               **extra: Any) -> dict[str, Any]:
    """The overrides for create_app: testing env, no quiet hours, no rate limit, and SMS
    through the real twilio SDK to the fake (console backend when no fake is needed)."""
    config: dict[str, Any] = {
        "SYRENA_ENV": "testing",
        "SECRET_KEY": "bench-secret-key-not-for-production",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SYRENA_MUNICIPALITY": municipality,
        "PUBLIC_BASE_URL": "https://alerty.example.pl",
        "QUIET_HOURS": "off",
        "SMS_RATE_PER_SECOND": 0,
        "SMS_BACKEND": "console",
    }
    if twilio is not None:
        config.update({
            "SMS_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": twilio.auth_token,
            "TWILIO_MESSAGING_SERVICE_SID": SERVICE_SID,
            "TWILIO_API_BASE": twilio.base_url,
            "TWILIO_TIMEOUT": 10.0,
        })
    config.update(extra)
    return config


def production_logging() -> None:
    """Configure logging exactly as app.py and scheduler.py do outside tests (root logger at
    INFO with their format), but write to /dev/null so a run does not flood the terminal.

    create_app() calls logging.basicConfig(level=INFO) itself when TESTING is off; calling
    it first with a /dev/null stream makes that call a no-op while keeping the production
    level, so every log record the product emits is still built, formatted and written.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        # Lives as long as the process, like a production log stream.
                        stream=open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115


def make_app(config: dict[str, Any]):  # noqa: ANN201 - a Flask app
    """create_app(config) with every table created (as tests/conftest.py does)."""
    from app import create_app
    from db import db

    app = create_app(config)
    with app.app_context():
        db.drop_all()
        db.create_all()
    return app


def seed_residents(count: int, *, categories: dict[str, int], areas: list[str], start: int = 0) -> None:
    """population.seed, in the app context the caller pushed; the returned ids are dropped at
    once so they are not alive (and scanned by the GC) while anything is timed."""
    from population import seed

    ids = seed(count, categories=categories, areas=areas, start=start)
    assert len(ids) == count, (len(ids), count)
    del ids
    free_memory()


def new_alert(*, category: str = "weather", level: int | None = 1, areas: list[str] | None = None,
              expires_hours: float = 6.0, channels: tuple[str, ...] = ("sms",)):  # noqa: ANN201 - an Alert
    """A committed draft alert (publishing it is what gets timed)."""
    from datetime import timedelta

    from alerts import publish as lifecycle
    from db import db, utcnow

    now = utcnow()
    draft = lifecycle.Draft(
        category=category, level=level, areas=areas, channels=list(channels),
        titles={"pl": "Burze z gradem 1. stopnia"},
        texts={"pl": "Prognozowane burze z gradem i porywami wiatru do 70 km/h. "
                     "Zabezpiecz rzeczy na balkonie."},
        starts_at=now, expires_at=now + timedelta(hours=expires_hours))
    alert = lifecycle.create_alert(draft)
    db.session.commit()
    return alert


# --- the fake Twilio API in its own process -------------------------------------------------


def _serve_fake(conn: Connection, start: Callable[[], Any], describe: Callable[[Any], Any],
                count: Callable[[Any], dict[str, Any]]) -> None:
    """Child process: serve the fake `start()` returns until told to stop; answer stats
    and reset requests. Runs in its own interpreter so its request handling never competes
    for our GIL."""
    fake = start()
    conn.send(describe(fake))
    while True:
        command = conn.recv()
        if command == "stats":
            times = os.times()
            conn.send({**count(fake), "cpu_seconds": times.user + times.system})
        elif command == "reset":
            fake.reset()
            gc.collect()
            conn.send("ok")
        elif command == "stop":
            fake.stop()
            conn.send("ok")
            return


class FakeProcess:
    """A fake provider from tests/fakes/ in a separate process. Use as a context manager;
    leaving it ends only the process it started. `info` is what `describe` made of the fake
    (where to reach it); `stats()` its counts and CPU seconds so far.

    `start`, `describe` and `count` must be picklable (module-level functions, or partials
    of them): the child is spawned."""

    def __init__(self, name: str, start: Callable[[], Any], describe: Callable[[Any], Any],
                 count: Callable[[Any], dict[str, Any]]) -> None:
        self.name = name
        self._target_args = (start, describe, count)
        self.info: Any = None
        self._process: Any = None
        self._conn: Connection | None = None

    def __enter__(self) -> Any:
        ctx = get_context("spawn")
        ours, theirs = ctx.Pipe()
        self._process = ctx.Process(target=_serve_fake, args=(theirs, *self._target_args),
                                    name=self.name.replace(" ", "-"), daemon=True)
        self._process.start()
        theirs.close()
        self._conn = ours
        if not ours.poll(60):
            self._process.terminate()
            raise RuntimeError(f"the {self.name} process did not start within 60 s")
        self.info = ours.recv()
        return self

    def _ask(self, command: str) -> Any:
        assert self._conn is not None
        self._conn.send(command)
        if not self._conn.poll(60):
            raise RuntimeError(f"the {self.name} process did not answer {command!r}")
        return self._conn.recv()

    def stats(self) -> dict[str, Any]:
        return self._ask("stats")

    def reset(self) -> None:
        self._ask("reset")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is None:
            return
        try:
            self._ask("stop")
        except (OSError, EOFError, RuntimeError):
            pass
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()  # by its handle: only the process we started
            self._process.join(timeout=5)
        if self._conn is not None:
            self._conn.close()


def _start_twilio(record_bodies: bool) -> Any:
    # Messages and Calls, as one Twilio account's API base serves both.
    from tests.fakes.twilio_voice import FakeTwilioVoice

    return FakeTwilioVoice(record_bodies=record_bodies).start()


def _twilio_info(fake: Any) -> FakeInfo:
    return FakeInfo(fake.base_url, fake.account_sid, fake.auth_token)


def _twilio_counts(fake: Any) -> dict[str, Any]:
    return {"requests": fake.request_count, "messages": len(fake.messages), "calls": len(fake.calls)}


class FakeTwilioProcess(FakeProcess):
    """tests/fakes/twilio_api.FakeTwilio (werkzeug, keep-alive) in a separate process,
    bodies not recorded unless asked; `info` is its FakeInfo."""

    def __init__(self, record_bodies: bool = False) -> None:
        super().__init__("fake Twilio", functools.partial(_start_twilio, record_bodies), _twilio_info,
                         _twilio_counts)


# --- fresh processes and memory ------------------------------------------------------------


def start_launcher() -> None:
    """Start multiprocessing's fork server now, while this process is still small.

    ru_maxrss is not reset by fork or exec on Linux: a child forked (or spawned, which
    forks then execs) from this process starts with *our* peak RSS as its own, so after
    the fan-out benchmarks every spawned child would report >= ~130 MB before doing
    anything. Children forked from a fork server started at the beginning inherit only
    its small peak instead. Call this first thing; it is a no-op once the server runs.
    """
    from multiprocessing import forkserver

    get_context("forkserver")
    forkserver.ensure_running()


def run_in_fresh_process(fn: Callable[..., T], *args: Any) -> T:
    """Run fn(*args) in a new process forked from the small fork server (start_launcher)
    and return its result: its ru_maxrss is then its own, not this process's peak."""
    start_launcher()
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("forkserver")) as pool:
        return pool.submit(fn, *args).result()


def peak_rss_from_proc_mb() -> float:
    """VmHWM (peak RSS of the current address space) from /proc: a cross-check of ru_maxrss."""
    return _proc_status_mb("VmHWM:")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is in KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident set size right now, from /proc (VmRSS)."""
    return _proc_status_mb("VmRSS:")


def _proc_status_mb(field: str) -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return float("nan")


def cpu_seconds() -> float:
    """CPU time (user + system) of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
