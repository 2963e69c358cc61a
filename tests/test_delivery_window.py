"""The sliding window of sends (alerts/window.py) and reconciliation beside it (alerts/reconcile.py).

The production loop, `Dispatcher.run_forever`, runs in a thread against the real database and
the real twilio SDK talking to the fake Twilio, which can hold chosen requests until the test
lets them go (FakeTwilio.hold/release): a hung call, or a provider slow to say what it sent.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from alerts import publish as lifecycle
from alerts.dispatcher import Dispatcher
from alerts.models import Delivery, DeliveryEvent
from alerts.reconcile import reconcile_stuck
from db import db, utcnow
from population import phone_for, seed
from tests.parallel import at_once
from tests.test_crash_safety import wait_until
from tests.test_delivery import alert


class Running:
    """`Dispatcher(app).run_forever` in a thread; `stop()` ends it the way `flask dispatch` does."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.dispatcher = Dispatcher(app)
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="run-forever")
        self.thread.start()

    def _run(self) -> None:
        try:
            self.dispatcher.run_forever(self.stopping, idle_seconds=0.05)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.errors.append(exc)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "run_forever did not stop"
        assert not self.errors, self.errors


def sent_to(twilio) -> Counter:
    return Counter(m["To"] for m in twilio.messages)


def count(*where) -> int:
    db.session.rollback()  # a fresh snapshot: the dispatcher commits in its own sessions
    return db.session.scalar(select(func.count()).select_from(Delivery).where(*where))


def test_hung_calls_hold_one_place_each_while_every_other_message_goes_out(make_app, twilio):
    app = make_app(TWILIO_TIMEOUT=60)  # hung until the test lets go, never timed out meanwhile
    seed(300, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert(level=2))
    hung = {phone_for(n) for n in range(7, 300, 30)}  # 10 numbers, spread over the claim order
    twilio.hold(hung)
    app.config.update(SMS_RATE_PER_SECOND=0, DISPATCH_CONCURRENCY=32, DISPATCH_BATCH_SIZE=50)
    running = Running(app)
    try:
        # Batch-and-wait would stop at its first batch's hung call; the window sends the rest.
        wait_until(lambda: len(twilio.messages) == 300 - len(hung), 60, "every number that does not hang")
        assert twilio.waiting == len(hung), "the hung calls are still out"
        assert not hung & set(sent_to(twilio))
        # The answered ones are recorded while the hung ones are out: not one group at the end.
        wait_until(lambda: count(Delivery.status == "sent") == 300 - len(hung), 30, "their records")
        assert count(Delivery.status == "sending") == len(hung)
        twilio.release()
        wait_until(lambda: count(Delivery.status == "sent") == 300, 30, "the hung ones, once answered")
    finally:
        twilio.release()
        running.stop()
    per_phone = sent_to(twilio)
    assert set(per_phone) == {phone_for(n) for n in range(300)} and max(per_phone.values()) == 1
    # Claimed in priority order in small claims: the window never held more than its size.
    assert len(set(db.session.scalars(select(Delivery.claimed_by)))) == 1


def test_a_stopped_window_finishes_and_records_every_call_in_flight(make_app, twilio):
    app = make_app(TWILIO_TIMEOUT=60)
    seed(40, categories={"weather": 1}, areas=["KOZY"])
    lifecycle.publish(alert(level=2))
    twilio.hold({phone_for(3), phone_for(4)})
    app.config.update(SMS_RATE_PER_SECOND=0, DISPATCH_CONCURRENCY=8)
    running = Running(app)
    try:
        wait_until(lambda: len(twilio.messages) == 38 and twilio.waiting == 2, 30, "all but the two held")
        running.stopping.set()  # stop claiming; the two held calls are still out
        twilio.release()
    finally:
        twilio.release()
        running.stop()
    assert count(Delivery.status == "sent") == 40
    assert max(sent_to(twilio).values()) == 1


def stuck_rows(n: int) -> int:
    """`n` residents and an alert whose deliveries a dead dispatcher left in 'sending' an hour
    ago, before any call (the provider has none of them). Returns the alert's id."""
    seed(n, categories={"weather": 1}, areas=["KOZY"])
    dead = alert(title="Przymrozek", level=2)
    lifecycle.publish(dead)
    hour_ago = utcnow() - timedelta(hours=1)
    db.session.execute(update(Delivery).where(Delivery.alert_id == dead.id).values(
        status="sending", claimed_by="dead:1:abc", claimed_at=hour_ago, lease_renewed_at=hour_ago,
        provider="twilio", attempts=1))
    db.session.commit()
    return dead.id


def test_new_sends_go_out_while_200_stuck_rows_are_being_reconciled(app, twilio):
    dead_alert = stuck_rows(200)
    # The provider is slow to say what it sent: every lookup waits until the test lets go.
    twilio.hold(lists=True)
    app.config.update(SMS_RATE_PER_SECOND=0, DISPATCH_RECONCILE_SECONDS=0.05)
    running = Running(app)
    try:
        wait_until(lambda: twilio.waiting == 1, 30, "the reconciler's first lookup")
        fresh = alert(title="Wichura", level=2)
        lifecycle.publish(fresh)
        wait_until(lambda: count(Delivery.alert_id == fresh.id, Delivery.status == "sent") == 200, 60,
                   "the new alert sent while the reconciler waits")
        # Reconciliation is still under way: it took all 200 over in one statement and has
        # settled none of them.
        assert count(Delivery.alert_id == dead_alert, Delivery.status == "sending",
                     Delivery.claimed_by.like("reconcile:%")) == 200
        assert db.session.scalar(select(func.count()).select_from(DeliveryEvent).where(
            DeliveryEvent.source == "reconcile")) == 0
        twilio.release()
        wait_until(lambda: count(Delivery.status == "sent") == 400, 60, "the stuck ones, reconciled and sent")
    finally:
        twilio.release()
        running.stop()
    # Each resident got each alert once: 400 different (number, text) pairs in 400 messages.
    assert len(twilio.messages) == 400 and len({(m["To"], m["Body"]) for m in twilio.messages}) == 400
    assert db.session.scalar(select(func.count()).select_from(DeliveryEvent).where(
        DeliveryEvent.source == "reconcile", DeliveryEvent.status == "pending")) == 200


def test_two_reconcilers_at_once_never_settle_the_same_row(app, twilio):
    stuck_rows(200)
    # Half of them had in fact been sent: the provider has them, with their SIDs unknown to us.
    ids = db.session.scalars(select(Delivery.id).order_by(Delivery.id)).all()
    dispatcher = Dispatcher(app)
    try:
        now = utcnow()
        jobs = dispatcher.load(ids[::2])
        dispatcher.prepare(jobs, now)
        for job in jobs:
            assert dispatcher.channels["twilio"].send(job.sms).provider_ref
    finally:
        dispatcher.close()
    app.config.update(DISPATCH_STALE_SECONDS=0)

    def reconcile(_i: int) -> int:
        with app.app_context():
            try:
                return reconcile_stuck()
            finally:
                db.session.remove()

    settled = at_once(4, reconcile)
    assert sum(settled) == 200, settled
    db.session.rollback()
    events = Counter(db.session.scalars(select(DeliveryEvent.delivery_id).where(DeliveryEvent.source == "reconcile")))
    assert len(events) == 200 and max(events.values()) == 1
    statuses = Counter(db.session.scalars(select(Delivery.status)))
    assert statuses == {"sent": 100, "pending": 100}


@pytest.mark.parametrize("kind", ["callback came", "resident gone"])
def test_rows_that_need_no_provider_are_settled_in_bulk(app, twilio, kind):
    dead_alert = stuck_rows(30)
    if kind == "callback came":
        for d_id in db.session.scalars(select(Delivery.id)).all():
            db.session.execute(update(Delivery).where(Delivery.id == d_id).values(provider_ref=f"SM{d_id:032x}"))
    else:
        db.session.execute(update(Delivery).values(subscriber_id=None))
    db.session.commit()
    twilio.hold(lists=True)  # a lookup would hang: none is made
    try:
        assert reconcile_stuck() == 30
    finally:
        twilio.release()
    assert twilio.request_count == 0
    expected = "sent" if kind == "callback came" else "skipped"
    assert count(Delivery.alert_id == dead_alert, Delivery.status == expected) == 30
