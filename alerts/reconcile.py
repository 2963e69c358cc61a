"""Reconciliation: settle deliveries a dead dispatcher left in 'sending' (their lease
unrenewed for DISPATCH_STALE_SECONDS) or that timed out as 'uncertain'.

``reconcile_stuck`` works in bulk:
1. Take over every expired row (up to `limit`) with ONE conditional UPDATE: it writes a
   token of this call into claimed_by and renews claimed_at/lease_renewed_at, only where
   the lease is still expired at that moment (compare-and-set; on PostgreSQL the inner
   SELECT skips rows another reconciler has locked). Every later write to a row checks that
   token, so two reconcilers (two dispatcher processes) never settle the same row: a row
   taken over again by another reconciler (after this one stalled past the lease) is no
   longer this one's to settle.
2. Settle in bulk what needs no provider: an SMS whose own reference came back already (a
   status callback carries ``?d=<delivery id>``, which records the SID) is sent; an SMS
   whose resident has no phone any more is skipped; a push is queued again (a repeated
   push replaces the earlier notification, same tag).
3. Ask the provider about the rest, one number at a time (``find_sent`` at
   ``channel_for(provider)``, the provider written on the row before its call), for what it
   sent since the claim less DISPATCH_CLOCK_SKEW_SECONDS (its clock may be behind ours):
   the same text under a SID no other delivery holds means sent; nothing means queued
   again. A provider that cannot answer leaves the row taken over but unsettled: its new
   lease expires and a later round asks again. This is what keeps a kill -9 from texting
   anyone twice.

``reconcile_beside`` runs it every DISPATCH_RECONCILE_SECONDS in a thread of its own in the
dispatcher process (alerts/window.py), so slow provider lookups never hold up sending.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import and_, func, insert, or_, select, update

from alerts import render
from alerts.models import PENDING, SENDING, SENT, SKIPPED, UNCERTAIN, Alert, Delivery, DeliveryEvent
from alerts.routing import channel_for
from db import db, utcnow
from providers.sms import ProviderError
from subscribers.models import Subscriber

log = logging.getLogger(__name__)


def _expired(now: datetime) -> Any:
    """Rows whose lease has run out: 'sending' unrenewed for DISPATCH_STALE_SECONDS, or
    'uncertain' for DISPATCH_UNCERTAIN_SECONDS since its claim."""
    cfg = current_app.config
    stale = now - timedelta(seconds=cfg.get("DISPATCH_STALE_SECONDS", 120))
    uncertain = now - timedelta(seconds=cfg.get("DISPATCH_UNCERTAIN_SECONDS", 30))
    lease = func.coalesce(Delivery.lease_renewed_at, Delivery.claimed_at)
    return or_(and_(Delivery.status == SENDING, lease < stale),
               and_(Delivery.status == UNCERTAIN, Delivery.claimed_at < uncertain))


def take_over(now: datetime, token: str, limit: int) -> dict[int, datetime]:
    """Make up to `limit` expired rows this reconciler's (claimed_by = token) in one UPDATE;
    returns {delivery id: its claim time before the takeover} for the rows taken."""
    # The claim times, read first: the UPDATE overwrites them, and the provider lookup asks
    # from the claim on. A row re-claimed in between is only looked up over a wider window.
    before = dict(db.session.execute(
        select(Delivery.id, Delivery.claimed_at).where(_expired(now)).order_by(Delivery.id).limit(limit)).all())
    if not before:
        return {}
    table = Delivery.__table__
    candidates = select(table.c.id).where(table.c.id.in_(list(before)), _expired(now))
    if db.engine.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    taken = db.session.execute(
        update(table).where(table.c.id.in_(candidates.scalar_subquery()), _expired(now))
        .values(claimed_by=token, claimed_at=now, lease_renewed_at=now)
        .returning(table.c.id)
    ).scalars().all()
    db.session.commit()
    return {d_id: before[d_id] or now for d_id in taken}


def _settle(token: str, ids: list[int], values: dict[str, Any], detail: str, now: datetime) -> int:
    """Settle `ids` alike in one UPDATE, only the rows still this reconciler's, with an event
    for each row settled; one transaction. Returns how many were settled."""
    if not ids:
        return 0
    table = Delivery.__table__
    settled = db.session.execute(
        update(table).where(table.c.id.in_(ids), table.c.claimed_by == token,
                            table.c.status.in_((SENDING, UNCERTAIN)))
        .values(updated_at=now, **values).returning(table.c.id, table.c.provider_ref)).all()
    if settled:
        db.session.execute(insert(DeliveryEvent), [
            {"delivery_id": d_id, "source": "reconcile", "status": values["status"], "provider_ref": ref,
             "detail": detail.format(ref=ref), "received_at": now, "error_code": None, "provider": None}
            for d_id, ref in settled])
    db.session.commit()
    for d_id, ref in settled:
        log.info("reconciled delivery %s: %s", d_id, detail.format(ref=ref))
    return len(settled)


def reconcile_stuck(now: datetime | None = None, limit: int = 500,
                    stop: threading.Event | None = None) -> int:
    """Settle up to `limit` expired deliveries (see the module docstring); returns how many.

    `stop` (set by a stopping dispatcher) ends the provider lookups early: the rows not yet
    asked about stay taken over until their new lease expires, then a later round settles them.
    """
    now = now or utcnow()
    token = f"reconcile:{uuid.uuid4().hex[:12]}"
    taken = take_over(now, token, limit)
    if not taken:
        return 0
    rows = db.session.execute(
        select(Delivery.id, Delivery.channel, Delivery.alert_id, Delivery.provider_ref, Delivery.provider,
               Delivery.subscriber_id, Subscriber.phone, Subscriber.language)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id, isouter=True)
        .where(Delivery.id.in_(list(taken)), Delivery.claimed_by == token)
        .order_by(Delivery.id)
    ).all()
    db.session.commit()
    # Step 2: what needs no provider, one UPDATE each.
    known = [r.id for r in rows if r.channel != "push" and r.provider_ref]
    gone = [r.id for r in rows if r.channel != "push" and not r.provider_ref and not r.phone]
    pushes = [r.id for r in rows if r.channel == "push"]
    to_ask = [r for r in rows if r.channel != "push" and not r.provider_ref and r.phone]
    # Our own reference came back (a callback to ?d=<id>): the provider has it.
    settled = _settle(token, known, {"status": SENT}, "the provider had sent it ({ref}, reported by its callback)",
                      now)
    settled += _settle(token, gone, {"status": SKIPPED, "error": "resident left"}, "resident left", now)
    # A repeated push replaces the earlier notification (same tag): safe to resend.
    settled += _settle(token, pushes, {"status": PENDING, "next_attempt_at": now}, "push queued again", now)
    # Step 3: one provider lookup per number, each settled as soon as it is answered.
    skew = timedelta(seconds=current_app.config.get("DISPATCH_CLOCK_SKEW_SECONDS", 600))
    alerts: dict[int, Alert] = {}
    bodies: dict[tuple[int, str], str] = {}
    for row in to_ask:
        if stop is not None and stop.is_set():
            break
        try:
            if row.channel == "voice":
                found = _calls_placed(row, taken[row.id] - skew)
            else:
                found = _sms_sent(row, taken[row.id] - skew, alerts, bodies)
        except ProviderError as exc:
            # Cannot ask the provider now: the row's new lease expires, a later round asks again.
            log.warning("reconciling delivery %s: provider unavailable: %s", row.id, exc)
            continue
        if found:
            settled += _settle(token, [row.id], {"status": SENT, "provider_ref": found[0][0], "sent_at": found[0][1]},
                               "the provider had sent it ({ref})", now)
        elif row.channel == "voice":
            # Not placed: the claim's attempt did not happen, so it does not count.
            settled += _settle(token, [row.id], {"status": PENDING, "next_attempt_at": now,
                                                 "attempts": func.max(Delivery.attempts - 1, 0)
                                                 if db.engine.dialect.name == "sqlite"
                                                 else func.greatest(Delivery.attempts - 1, 0)},
                               "the provider has no such call: queued again", now)
        else:
            settled += _settle(token, [row.id], {"status": PENDING, "next_attempt_at": now},
                               "the provider has no such message: queued again", now)
    return settled


def _not_held(row: Any, refs: list[str]) -> set[str]:
    """Of `refs`, those no other delivery holds and no delivery ever recorded: the wide
    window may reach an earlier message with the same text, or an earlier call."""
    if not refs:
        return set()
    held = set(db.session.scalars(select(Delivery.provider_ref).where(
        Delivery.provider_ref.in_(refs), Delivery.id != row.id)))
    if row.channel == "voice":
        # A call some delivery recorded before (this row's earlier attempts included). An
        # event of no delivery (a webhook that found none) is no claim: it may be this call.
        held |= set(db.session.scalars(select(DeliveryEvent.provider_ref).where(
            DeliveryEvent.provider_ref.in_(refs), DeliveryEvent.delivery_id.is_not(None))))
    return set(refs) - held


def _sms_sent(row: Any, since: datetime, alerts: dict[int, Alert],
              bodies: dict[tuple[int, str], str]) -> list[tuple[str, datetime]]:
    """(SID, time) of the SMS the provider sent this row since `since`, first first."""
    key = (row.alert_id, row.language or "pl")
    alert = alerts.get(row.alert_id) or db.session.get(Alert, row.alert_id)
    alerts[row.alert_id] = alert
    if render.personal(alert):
        # A roll-call's SMS carries the resident's own link.
        key = (row.alert_id, f"{key[1]}:{row.subscriber_id}")
        bodies[key] = render.sms_body(alert, row.language or "pl", row.subscriber_id)
    elif key not in bodies:
        bodies[key] = render.sms_body(alert, key[1])
    found = [r for r in channel_for(row.provider).find_sent(row.phone, since) if r.body == bodies[key]]
    free = _not_held(row, [r.provider_ref for r in found])
    return [(r.provider_ref, r.created_at) for r in found if r.provider_ref in free]


def _calls_placed(row: Any, since: datetime) -> list[tuple[str, datetime]]:
    """(SID, time) of calls to the row's number since `since` that no delivery knows of.

    A call carries no text to compare: two calls to one number from two deliveries that
    were both lost in one crash cannot be told apart, and each delivery takes one of them.
    """
    voice = current_app.extensions.get("voice")
    if voice is None:
        raise ProviderError("calls are off: cannot ask about a call", reason="config")
    found = voice.find_calls(row.phone, since)
    free = _not_held(row, [r.provider_ref for r in found])
    return [(r.provider_ref, r.created_at) for r in found if r.provider_ref in free]


def reconcile_beside(app: Flask, every: float, stop: threading.Event) -> threading.Thread:
    """Start a thread that reconciles now and then every `every` seconds until `stop`."""

    def loop() -> None:
        while not stop.is_set():
            try:
                with app.app_context():
                    try:
                        reconcile_stuck(stop=stop)
                    finally:
                        db.session.remove()
            except Exception:  # noqa: BLE001 - logged and tried again next round
                log.exception("reconciling stuck deliveries failed")
            stop.wait(every)

    thread = threading.Thread(target=loop, name="reconcile", daemon=True)
    thread.start()
    return thread
