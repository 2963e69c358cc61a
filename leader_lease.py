"""The scheduler's leadership: a lease in the database that its holder must keep renewing.

One row per role (``scheduler``): who holds it and until when. Taking and renewing are the
same single statement, ``INSERT ... ON CONFLICT (name) DO UPDATE ... WHERE <the holder is
me, or the lease has expired> RETURNING holder``: it succeeds for exactly one process at a
time, on SQLite and PostgreSQL alike, and a second scheduler's try changes nothing.

Why not a session advisory lock: a leader frozen by SIGSTOP (a hung VM, a debugger, swap
storm) keeps its connection, so the server never freed the lock and nobody took over. A
lease simply runs out. The holder also keeps its own, stricter count on the monotonic clock
(which goes on while a process is stopped): after a freeze it knows at once, before running
anything, that it can no longer trust its lease (``held()``).

Clocks: ``expires_at`` is written from the writer's wall clock and read by the others, so
scheduler hosts must keep their clocks in step (NTP); the holder trusts its lease for only
nine tenths of its length, which leaves the rest for small differences.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from datetime import datetime, timedelta

from sqlalchemy import Engine, String, case, delete, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from db import UTCDateTime, db, utcnow

SCHEDULER = "scheduler"
# The share of the lease its holder relies on; the rest absorbs clock differences between hosts.
TRUSTED_SHARE = 0.9


class LeaderLeaseRow(db.Model):
    """Who leads a role, and until when (no row: nobody has led yet, or the last one left)."""

    __tablename__ = "leader_lease"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When this holder first took it (renewals keep it): "leading since" for operators.
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())


def holder_id() -> str:
    """Unique per process and per start: host, pid, and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class LeaderLease:
    """One process's claim on a role. Not thread-safe: one thread calls ``claim``; any thread
    may call ``held``."""

    def __init__(self, engine: Engine, seconds: float, name: str = SCHEDULER, holder: str | None = None) -> None:
        self.engine = engine
        self.seconds = float(seconds)
        self.name = name
        self.holder = holder or holder_id()
        self._trusted_until: float | None = None  # time.monotonic()

    def claim(self) -> bool:
        """Take the lease if it is free or expired, or renew it if it is ours; True if we
        hold it now. Database errors propagate (the caller decides how to wait); our local
        trust in the lease is then left to run out on its own."""
        started = time.monotonic()
        now = utcnow()
        table = LeaderLeaseRow.__table__
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(table).values(name=self.name, holder=self.holder,
                                         expires_at=now + timedelta(seconds=self.seconds), acquired_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.name],
            set_={
                "holder": statement.excluded.holder,
                "expires_at": statement.excluded.expires_at,
                "acquired_at": case((table.c.holder == self.holder, table.c.acquired_at),
                                    else_=statement.excluded.acquired_at),
            },
            where=or_(table.c.holder == self.holder, table.c.expires_at < now),
        ).returning(table.c.holder)
        with self.engine.begin() as conn:
            won = conn.execute(statement).first() is not None
        self._trusted_until = started + self.seconds * TRUSTED_SHARE if won else None
        return won

    def held(self) -> bool:
        """Whether this process may act as the leader right now (no database round trip)."""
        return self._trusted_until is not None and time.monotonic() < self._trusted_until

    def release(self) -> None:
        """Give the lease up (a clean stop): the one standing by takes over at its next try.
        Best effort: if the database is away, the lease runs out by itself."""
        self._trusted_until = None
        table = LeaderLeaseRow.__table__
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(table).where(table.c.name == self.name, table.c.holder == self.holder))
        except Exception:  # noqa: BLE001 - the lease expires anyway; a stop must not fail on it
            pass
