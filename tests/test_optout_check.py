"""The check right before each provider call (alerts/optout.py), on the real database:
an opt-out committed by another connection stops the message within max_age, and the
sending threads share a handful of reads instead of making one each."""

from __future__ import annotations

import threading
import time

import pytest

from sqlalchemy import update

from alerts.optout import OptOutCheck
from db import db
from subscribers.models import ACTIVE, OPTED_OUT, Subscriber


def residents(app, n: int) -> list[int]:
    with app.app_context():
        people = [Subscriber(phone=f"+4860{i:07d}", status=ACTIVE, language="pl") for i in range(n)]
        db.session.add_all(people)
        db.session.commit()
        return [p.id for p in people]


def opt_out(app, subscriber_id: int) -> None:
    with app.app_context():
        db.session.execute(update(Subscriber).where(Subscriber.id == subscriber_id).values(status=OPTED_OUT))
        db.session.commit()


@pytest.fixture
def make_check(app):  # noqa: ANN001, ANN201
    """OptOutCheck(db.engine, max_age), closed at the end of the test."""
    made: list[OptOutCheck] = []

    def make(max_age: float = 0.2) -> OptOutCheck:
        made.append(OptOutCheck(db.engine, max_age=max_age))
        return made[-1]

    yield make
    for check in made:
        check.close()


def test_an_opt_out_committed_elsewhere_stops_the_message_within_max_age(app, make_check):
    ids = residents(app, 3)
    check = make_check(max_age=0.05)
    check.expect(ids + ids)  # two deliveries each (SMS and push)
    assert check.active(ids[0])
    opt_out(app, ids[0])
    time.sleep(0.06)
    assert not check.active(ids[0])  # its second delivery: read again, now unsubscribed
    assert check.active(ids[1]) and check.active(ids[2])


def test_a_resident_never_expected_or_erased_is_read_and_not_active(app, make_check):
    ids = residents(app, 1)
    check = make_check(max_age=10)
    assert check.active(ids[0])  # not expected: read anyway
    assert not check.active(ids[0] + 1000)  # no such row
    assert not check.active(None)


def test_thirty_two_threads_sending_600_messages_share_a_few_reads(app, make_check):
    ids = residents(app, 600)
    check = make_check(max_age=30)
    check.expect(ids)
    answers: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(32)

    def sender(part: list[int]) -> None:
        start.wait()
        for subscriber_id in part:
            ok = check.active(subscriber_id)
            with lock:
                answers.append(ok)

    threads = [threading.Thread(target=sender, args=(ids[k::32],)) for k in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers.count(True) == 600
    assert check.reads == 1  # one read of all 600, not 600 reads
    assert not check.waiting and not check.status  # every delivery was forgotten once sent


def test_statuses_other_than_active_count_as_gone(app, make_check):
    ids = residents(app, 2)
    opt_out(app, ids[1])
    check = make_check()
    check.expect(ids)
    assert [check.active(i) for i in ids] == [True, False]
