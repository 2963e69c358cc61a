"""Recording outcomes: one transaction per group of provider answers.

`Recording.record` writes a group of outcomes (and skipped jobs) with bulk UPDATEs that only
touch rows still ours (status 'sending', claimed_by this worker), adds their delivery
events, and acts on residents the provider reported as opted out or unreachable. Both
loops use it: `run_once` once per batch, the sending window once per small group.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, update

from alerts.models import (
    DELIVERY_EXPIRED,
    FAILED,
    PENDING,
    SENDING,
    SENT,
    SKIPPED,
    UNCERTAIN,
    Delivery,
    DeliveryEvent,
)
from alerts.sending import Job, Outcome
from db import db
from subscribers.models import ACTIVE, Subscriber

log = logging.getLogger("alerts.dispatcher")


class Recording:
    """The dispatcher's record half (mixed into alerts.dispatcher.Dispatcher, which sets
    worker_id, retry_base, retry_cap, max_attempts and deadline())."""

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter ("equal jitter"): spreads retries of a burst."""
        ceiling = min(self.retry_cap, self.retry_base * 2 ** max(0, attempts - 1))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        return max(delay, retry_after or 0)

    def record(self, outcomes: list[Outcome], skipped: list[Job], now: datetime) -> None:
        changes: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        opted_out: set[int] = set()
        unreachable: dict[int, tuple[str, str]] = {}
        gone_push: list[str] = []
        for job in skipped:
            status, reason = job.skip  # type: ignore[misc]
            changes.append({"id": job.delivery_id, "status": status, "error": reason, "updated_at": now})
            events.append({"delivery_id": job.delivery_id, "source": "dispatcher", "status": status,
                           "detail": reason, "received_at": now})
        sent: list[dict[str, Any]] = []
        for o in outcomes:
            job = o.job
            gone_push.extend(o.gone_endpoints)
            if o.left:
                changes.append({"id": job.delivery_id, "status": SKIPPED, "error": "resident left",
                                "updated_at": now})
                events.append({"delivery_id": job.delivery_id, "source": "dispatcher", "status": SKIPPED,
                               "detail": "resident left during the send", "received_at": now})
                continue
            if o.error is None:
                sent.append({"b_id": job.delivery_id, "b_ref": o.provider_ref, "b_segments": o.segments,
                             "b_now": now})
                changes.append({"id": job.delivery_id, "status": SENT, "provider_ref": o.provider_ref,
                                "segments": o.segments, "sent_at": now, "updated_at": now,
                                "error": None, "error_code": None})
                events.append({"delivery_id": job.delivery_id, "provider_ref": o.provider_ref, "source": "send",
                               "status": SENT, "received_at": now, "provider": job.provider})
                continue
            err = o.error
            code = str(err.code) if err.code is not None else None
            change: dict[str, Any] = {"id": job.delivery_id, "error": str(err)[:300], "error_code": code,
                                      "updated_at": now}
            if err.permanent:
                change["status"] = FAILED
                if err.reason == "opted_out" and job.subscriber_id:
                    opted_out.add(job.subscriber_id)
                elif err.reason in ("invalid_number", "landline") and job.subscriber_id:
                    unreachable[job.subscriber_id] = (f"{err.reason} ({code})", job.channel)
            elif getattr(err, "ambiguous", False):
                # The provider may have taken it: reconcile before any resend (no duplicates).
                change["status"] = UNCERTAIN
            else:
                # Transient: retried for as long as the alert is valid, however many times.
                at = now + timedelta(seconds=self.backoff(job.attempts, err.retry_after))
                if at >= self.deadline(job.alert):
                    change["status"] = DELIVERY_EXPIRED
                else:
                    change.update(status=PENDING, next_attempt_at=at)
                    if err.reason == "rate_limited":
                        # Twilio never processed a 429: it is not an attempt.
                        change["attempts"] = max(0, job.attempts - 1)
                    elif job.attempts >= self.max_attempts:
                        log.warning("delivery %s: attempt %d failed transiently (%s); retrying until %s",
                                    job.delivery_id, job.attempts, err, self.deadline(job.alert))
            changes.append(change)
            events.append({"delivery_id": job.delivery_id, "source": "send", "status": change["status"],
                           "error_code": code, "detail": str(err)[:500], "received_at": now,
                           "provider": job.provider})
        table = Delivery.__table__
        for keys in {tuple(sorted(c)) for c in changes}:
            same = [c for c in changes if tuple(sorted(c)) == keys]
            # Only rows still ours: a status callback may already have moved one forward
            # (never backwards), or the reconciler taken it over.
            stmt = (update(table)
                    .where(table.c.id == bindparam("b_id"), table.c.status == SENDING,
                           table.c.claimed_by == self.worker_id)
                    .values({k: bindparam(f"b_{k}") for k in keys if k != "id"}))
            db.session.execute(stmt, [{f"b_{k}": v for k, v in c.items()} for c in same])
        if sent:
            # A status callback can overtake this record and move a row on ('delivered') before
            # it: fill what the callback could not know, keep what it set (sent_at, the SID).
            db.session.execute(
                update(table)
                .where(table.c.id == bindparam("b_id"), table.c.status != SENDING,
                       table.c.claimed_by == self.worker_id)
                .values(provider_ref=func.coalesce(table.c.provider_ref, bindparam("b_ref")),
                        segments=func.coalesce(table.c.segments, bindparam("b_segments")),
                        sent_at=func.coalesce(table.c.sent_at, bindparam("b_now"))),
                sent)
        if events:
            db.session.execute(insert(DeliveryEvent), [
                {"provider_ref": None, "error_code": None, "detail": None, "provider": None, **e} for e in events])
        db.session.commit()
        self._act_on_residents(opted_out, unreachable, gone_push)

    def _act_on_residents(self, opted_out: set[int], unreachable: dict[int, tuple[str, str]],
                          gone_push: list[str]) -> None:
        """Permanent provider answers change the resident, so we stop paying for failures."""
        from subscribers import service
        from subscribers.push import remove_endpoint

        origin = service.Origin("provider")
        for endpoint in gone_push:
            # By endpoint, never by resident: a freshly renewed subscription must survive.
            remove_endpoint(endpoint, origin, "the push service answered 404/410")
        for sid in opted_out:
            subscriber = db.session.get(Subscriber, sid)
            if subscriber is not None:
                service.opt_out(subscriber, origin, detail="the SMS provider reports an opt-out (21610)")
        for sid, (reason, channel) in unreachable.items():
            subscriber = db.session.get(Subscriber, sid)
            if subscriber is not None and subscriber.status == ACTIVE:
                if channel == "sms":
                    service.sms_unreachable(subscriber, reason, origin)
                else:
                    service.deactivate(subscriber, reason, origin)
