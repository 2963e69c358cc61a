"""Riding out a database outage: what counts as one, one log line per outage, capped backoff.

Long-running processes (``scheduler.py``, ``flask dispatch``) must outlive a PostgreSQL
restart or a network cut: nothing is lost while the database is away (every step is a
transaction), so the right answer is to wait and try again, not to exit and leave feeds,
expiry and sending stopped until someone notices. Logging every failed try would bury the
one line that matters, so an outage is logged when it starts and when it ends.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.exc import DBAPIError, OperationalError

log = logging.getLogger("syrena.db_outage")


def is_database_outage(exc: BaseException) -> bool:
    """True for "the database cannot be reached", False for errors in what we asked of it.

    OperationalError covers a refused or dropped connection (and SQLite's "database is
    locked"); a DBAPIError whose connection was invalidated is a connection that died mid
    statement. An IntegrityError or a bad query is a bug, not an outage, and is not hidden."""
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    try:  # psycopg raised outside SQLAlchemy (a raw connection)
        import psycopg
    except ImportError:  # pragma: no cover - SQLite-only installs
        return False
    return isinstance(exc, psycopg.OperationalError)


class DatabaseOutage:
    """Shared by every thread of one process: the first failure of an outage logs a warning,
    later ones are silent, the first success after it logs how long it lasted.

    ``backoff()`` is the wait before the next try: 0.5 s doubling up to ``max_seconds``."""

    def __init__(self, what: str, max_seconds: float = 10.0) -> None:
        self.what = what
        self.max_seconds = max(0.1, float(max_seconds))
        self._lock = threading.Lock()
        self._since: float | None = None
        self._tries = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> float:
        """Record a failed try; return how long to wait before the next one."""
        with self._lock:
            self._tries += 1
            if self._since is None:
                self._since = time.monotonic()
                log.warning("%s: database unreachable, retrying with backoff (up to %.0f s): %s",
                            self.what, self.max_seconds, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return min(self.max_seconds, 0.5 * 2 ** min(self._tries - 1, 16))

    def succeeded(self) -> None:
        with self._lock:
            if self._since is None:
                return
            lasted = time.monotonic() - self._since
            self._since, self._tries = None, 0
        log.warning("%s: database reachable again after %.1f s; carrying on", self.what, lasted)


class QuietDuringOutage(logging.Filter):
    """A logging filter for loops we do not own (the dispatcher's cycle logs every failure
    with its traceback, every second): an error record caused by a database outage is
    counted by ``outage`` (which logs the outage's first one) and dropped; anything else
    passes. An outage is over after ``outage.max_seconds`` * 3 without such an error, so the
    next one is logged again."""

    def __init__(self, outage: DatabaseOutage) -> None:
        super().__init__()
        self.outage = outage
        self._last_failure = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not is_database_outage(exc):
            return True
        now = time.monotonic()
        if self.outage.ongoing and self._last_failure and now - self._last_failure > self.outage.max_seconds * 3:
            self.outage.succeeded()
        self._last_failure = now
        self.outage.failed(exc)
        return False
