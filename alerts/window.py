"""The sliding window of sends: the dispatcher's production loop (`Dispatcher.run_forever`).

A batch that waits for its slowest call lets one hung provider call stall every send
behind it. Here the dispatcher keeps up to `window_size` claimed deliveries out at once
(DISPATCH_CONCURRENCY of them in provider calls, the rest queued for the next free thread),
and refills the window as soon as there is room:

- claim: when at least `refill` places are free, claim up to that many due rows (never more
  than DISPATCH_BATCH_SIZE) with the dispatcher's own claim -- the same priority order and
  quiet-hours rule, committed before any provider call -- then load, prepare and
  assign_providers them and hand each to the thread pool (send() applies the rate limits);
- record: outcomes are recorded as they come, in small groups (every FLUSH_SECONDS or
  FLUSH_COUNT outcomes, one transaction each, with the dispatcher's bulk record());
- lease: one renewer covers every row this worker holds right now (claimed and not yet
  recorded); a row whose record failed, or whose send raised, leaves that set, so its lease
  expires and the reconciler settles it, as after a crash;
- reconcile: alerts/reconcile.py runs in a thread of its own beside the window, so the
  provider lookups for stuck rows never hold up sending;
- failover: every SMS_FAILOVER_CHECK_SECONDS the loop judges the SMS providers and shifts
  their split (alerts/balance.py);
- stop: claim nothing more, wait for the calls in flight, record them, return.

A hung call holds one place of the window and one thread, nothing else.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING

from alerts.reconcile import reconcile_beside
from alerts.sending import Job, Outcome
from db import db, utcnow

if TYPE_CHECKING:
    from alerts.dispatcher import Dispatcher

log = logging.getLogger(__name__)

# Outcomes are recorded at least this often, or as soon as this many are waiting.
FLUSH_SECONDS = 0.2
FLUSH_COUNT = 100


class SendingWindow:
    """One dispatcher's window of deliveries in flight. Run it once, from one thread."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.d = dispatcher
        self.size = dispatcher.window_size
        # Claim when this many places are free: small claims, but not one row per claim.
        self.refill = max(1, min(dispatcher.batch_size, self.size // 2))
        self.lock = threading.Lock()
        self.held: set[int] = set()  # ours and not yet recorded: what the lease renewer renews
        self.out = 0  # calls handed to the pool and not yet returned: the window's places taken
        self.calls_out = 0  # of them, voice calls (at most the dispatcher's calls_cap)
        self.calls_capped = False  # the last claim left calls out because of that cap
        self.finished: list[Outcome] = []  # calls that returned, to record
        self.skipped: list[Job] = []  # prepare() decided not to send, to record
        self.wake = threading.Event()  # a call returned

    def holding(self) -> list[int]:
        """The rows to renew now (called by the lease renewer's thread)."""
        with self.lock:
            return list(self.held)

    def run(self, stop: threading.Event, idle_seconds: float = 1.0, *, until_idle: bool = False) -> None:
        """Send until `stop` is set (or, with `until_idle`, until a claim finds nothing due:
        what `make bench` times), then finish what is in flight and return."""
        quit_beside = threading.Event()
        renewer = threading.Thread(target=self.d.renew_leases, args=(self.holding, quit_beside),
                                   name="lease", daemon=True)
        renewer.start()
        reconciler = reconcile_beside(self.d.app, self.d.reconcile_every, quit_beside)
        try:
            with self.d.app.app_context():
                try:
                    self._loop(stop, idle_seconds, until_idle)
                finally:
                    self._drain()
                    db.session.remove()
        finally:
            quit_beside.set()
            renewer.join()
            reconciler.join()

    # --- the loop ------------------------------------------------------------------------

    def _loop(self, stop: threading.Event, idle_seconds: float, until_idle: bool) -> None:
        next_claim = 0.0  # after an empty (or failed) claim, wait idle_seconds before the next
        last_flush = time.monotonic()
        while not stop.is_set():
            self.d.maybe_rebalance()  # every SMS_FAILOVER_CHECK_SECONDS: the providers' split
            self.wake.clear()  # before looking: a call returning from here on wakes the wait below
            claimed = 0
            asked = False  # a claim was tried in this round (and found `claimed` rows)
            with self.lock:
                room = self.size - self.out
            if room >= self.refill and time.monotonic() >= next_claim:
                asked = True
                try:
                    claimed = self._fill(min(room, self.d.batch_size))
                except Exception:  # noqa: BLE001 - a bad claim must not stop alerts; logged, retried
                    log.exception("claiming deliveries failed")
                    db.session.rollback()
                if not claimed and self.calls_capped:
                    # Calls are due but as many as the call rate allows are out: claim again
                    # as soon as one returns (the wait below), not after idle_seconds.
                    pass
                elif not claimed:
                    if until_idle and asked:
                        return  # nothing more is due: the drain finishes what is out
                    next_claim = time.monotonic() + idle_seconds
            waiting = self._waiting()
            if waiting >= FLUSH_COUNT or (waiting and time.monotonic() - last_flush >= FLUSH_SECONDS):
                self._flush()
                last_flush = time.monotonic()
            if claimed:
                continue
            if self._outstanding():
                self.wake.wait(FLUSH_SECONDS)  # until a call returns or the next flush is due
            else:
                stop.wait(max(0.0, next_claim - time.monotonic()))  # nothing out, nothing due

    def _drain(self) -> None:
        """Claim nothing more: wait for every call in flight and record it."""
        while True:
            if self._waiting():
                self._flush()
            if not self._outstanding():
                return
            self.wake.wait(FLUSH_SECONDS)
            self.wake.clear()

    def _outstanding(self) -> int:
        with self.lock:
            return len(self.held)

    def _waiting(self) -> int:
        with self.lock:
            return len(self.finished) + len(self.skipped)

    # --- claim and submit ------------------------------------------------------------------

    def _fill(self, limit: int) -> int:
        """Claim up to `limit` due deliveries and put them in flight; returns how many."""
        now = utcnow()
        with self.lock:
            calls_room = max(0, self.d.calls_cap - self.calls_out)
        # Only when calls are out to the cap can a claim have left due calls behind.
        self.calls_capped = calls_room == 0 and self.d.voice is not None and self._calls_due(now)
        ids = self.d.claim(now, limit, calls=calls_room)
        if not ids:
            return 0
        with self.lock:
            self.held.update(ids)
        try:
            jobs = self.d.load(ids)
            self.d.prepare(jobs, now)
            to_send = [j for j in jobs if not j.skip]
            self.d.assign_providers(to_send)
            self.d.optout.expect(j.subscriber_id for j in to_send)
        except Exception:
            # Claimed but never sent: let the leases expire, the reconciler queues them again.
            with self.lock:
                self.held.difference_update(ids)
            raise
        with self.lock:
            self.skipped.extend(j for j in jobs if j.skip)
            self.out += len(to_send)
            self.calls_out += sum(1 for j in to_send if j.channel == "voice")
        for job in to_send:
            future = self.d.pool.submit(self.d.send, job)
            future.add_done_callback(lambda f, job=job: self._returned(job, f))
        return len(ids)

    def _calls_due(self, now) -> bool:  # noqa: ANN001
        return db.session.execute(self.d.due(now, 1, calls=True, lock=False)).first() is not None

    def _returned(self, job: Job, future: Future) -> None:
        """In the pool thread that made the call: queue its outcome for the next flush."""
        try:
            outcome = future.result()
        except BaseException:  # noqa: BLE001 - logged; the row expires and is reconciled
            log.exception("sending delivery %s failed unexpectedly", job.delivery_id)
            with self.lock:
                self.held.discard(job.delivery_id)
                self.out -= 1
                self.calls_out -= job.channel == "voice"
                due = True
        else:
            with self.lock:
                self.finished.append(outcome)
                self.out -= 1
                self.calls_out -= job.channel == "voice"
                # Wake the loop only when it has something to do: a refill's worth of room,
                # a full group to record, or the last call out (one wake per call would have
                # the loop and 32 threads take turns at the GIL for nothing).
                due = (self.size - self.out >= self.refill or len(self.finished) >= FLUSH_COUNT
                       or self.out == 0)
        if due:
            self.wake.set()

    # --- record ---------------------------------------------------------------------------

    def _flush(self) -> None:
        """Record what has come back, in one transaction; those rows are no longer renewed,
        recorded or not (a failed record leaves them to expire and be reconciled)."""
        with self.lock:
            outcomes, self.finished = self.finished, []
            skipped, self.skipped = self.skipped, []
        ids = [o.job.delivery_id for o in outcomes] + [j.delivery_id for j in skipped]
        try:
            self.d.record(outcomes, skipped, utcnow())
        except Exception:  # noqa: BLE001 - the rows expire and are reconciled; sending goes on
            log.exception("recording %d outcomes failed; the reconciler will settle them", len(ids))
            db.session.rollback()
        finally:
            with self.lock:
                self.held.difference_update(ids)
