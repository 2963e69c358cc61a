"""The last look before a provider call: is the resident still subscribed?

An opt-out (STOP, the link, the API) can be committed while a resident's delivery is already
claimed and waiting for a free thread or for the rate limit. Each sending thread asks
`OptOutCheck.active(subscriber_id)` right before its provider call. The answer comes from
one query that read the status of every resident with a delivery waiting in this
dispatcher (`SELECT id, status FROM subscriber WHERE id IN (...)`) and that *started* at
most `max_age` seconds ago; when it is older, or the resident was not in it, the asking
thread reads again, for all of them at once.

So a message can leave at most `max_age` (0.2 s by default) after the opt-out was
committed, plus the call's own time -- far less than it takes the confirmation SMS to reach
the resident's phone. One query per 0.2 s (or per claim) replaces one query per message,
which on SQLite's single shared connection had the 32 sending threads queue behind it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from subscribers.models import ACTIVE, Subscriber

# An active resident who turned calls off (9 in a call, the manage page).
NO_CALLS = "active:no_calls"
# Ids per IN (...): well under every database's limit on bound parameters.
CHUNK = 500


class OptOutCheck:
    """Residents' statuses for the deliveries in flight, never older than `max_age` seconds.

    `expect(ids)` when deliveries are claimed, `active(id)` once per provider call (which also
    forgets that delivery). Thread-safe: one thread reads while the others wait for it.
    """

    def __init__(self, engine: Engine, max_age: float = 0.2) -> None:
        self.engine = engine
        self.max_age = max_age
        self.lock = threading.Lock()
        self.waiting: Counter[int] = Counter()  # resident -> deliveries of theirs still to send
        self.status: dict[int, str] = {}
        self.read_at = float("-inf")  # when the last read started (time.monotonic())
        self.conn: Any = None
        self.reads = 0  # how many reads were made (tests and benchmarks look)

    def expect(self, subscriber_ids: Iterable[int | None]) -> None:
        """Deliveries for these residents are about to be sent."""
        with self.lock:
            self.waiting.update(i for i in subscriber_ids if i is not None)

    def active(self, subscriber_id: int | None, channel: str = "sms") -> bool:
        """Whether the resident is active (and, for a call, still wants calls), as read at
        most `max_age` seconds ago.

        Raises the database's error when it cannot be read (the caller retries later and
        sends nothing): no read, no message.
        """
        if subscriber_id is None:
            return False
        with self.lock:
            if subscriber_id not in self.status or time.monotonic() - self.read_at > self.max_age:
                self.waiting[subscriber_id] += 0  # read this one even if expect() missed it
                self._read()
            status = self.status.get(subscriber_id)
            answer = status == ACTIVE or (status == NO_CALLS and channel != "voice")
            self._forget(subscriber_id)
        return answer

    def close(self) -> None:
        with self.lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None

    def _forget(self, subscriber_id: int) -> None:
        self.waiting[subscriber_id] -= 1
        if self.waiting[subscriber_id] <= 0:
            del self.waiting[subscriber_id]
            self.status.pop(subscriber_id, None)

    def _read(self) -> None:
        """One read of every waiting resident's status (the lock is held)."""
        started = time.monotonic()
        ids = list(self.waiting)
        fresh: dict[int, str] = {}
        if self.conn is None:
            self.conn = self.engine.connect()
        try:
            with self.conn.begin():
                for i in range(0, len(ids), CHUNK):
                    rows = self.conn.execute(select(Subscriber.id, Subscriber.status, Subscriber.voice)
                                             .where(Subscriber.id.in_(ids[i:i + CHUNK])))
                    # "active" without calls: an SMS still goes, a call no longer does.
                    fresh.update((row.id, row.status if row.voice or row.status != ACTIVE else NO_CALLS)
                                 for row in rows)
        except Exception:
            # A broken connection (the database restarted): the next read opens another.
            self.conn.invalidate()
            self.conn.close()
            self.conn = None
            raise
        # A resident who has no row any more (erased) is absent, so not active.
        self.status = {i: fresh.get(i, "") for i in ids}
        self.read_at = started
        self.reads += 1
