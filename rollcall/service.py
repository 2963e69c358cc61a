"""Starting, re-sending and closing a roll-call (approvers), and recording on a resident's
behalf (any staff). Every step is written to the audit log in its own transaction.

Who is asked is decided once, at the start, by one INSERT ... SELECT: every active resident
with a phone in the chosen villages and/or groups, whatever categories they chose (it is an
emergency question). The messages that ask are alerts of source "rollcall" (category
emergency: first in the queue, through the quiet hours), one per wave, whose recipients are
the roll-call's members (rollcall/match.py), so they use the outbox, the dispatcher,
failover, receipts and call retries like every warning.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Integer, func, insert, literal, select, update

from alerts.models import AWAITING, EXPIRED, PENDING, PUBLISHED, SCHEDULED, SKIPPED, Alert, Delivery
from alerts.publish import freeze, publish
from db import db, utcnow
from i18n import translate
from municipality import LANGUAGES
from locks import sqlite_write_lock
from rollcall import answers
from rollcall.match import carriers
from rollcall.models import HOW, SOURCE, VIA_STAFF, RollCall, RollCallMember
from rollcall.text import default_question
from staff import audit
from subscribers.models import ACTIVE, Subscriber, SubscriberArea, SubscriberGroup

QUESTION_LIMIT = 300
RESEND_DELAYS = (0, 15, 30, 60, 120)  # minutes the start and re-send forms offer


class RollCallError(ValueError):
    """A roll-call step that cannot be done as asked; `code` is stable (forms, tests)."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def _check_target(areas: list[str] | None, groups: list[str] | None) -> None:
    m = current_app.extensions["municipality"]
    if areas is not None and (not areas or any(m.area(a) is None for a in areas)):
        raise RollCallError("areas_unknown")
    if groups is not None and (not groups or any(m.group(g) is None for g in groups)):
        raise RollCallError("groups_unknown")


def asked(areas: list[str] | None, groups: list[str] | None):  # noqa: ANN201 - a Select
    """Subscriber ids a roll-call to these villages and groups asks: active, with a phone that
    takes an SMS or a call."""
    query = select(Subscriber.id).where(Subscriber.status == ACTIVE, Subscriber.phone.is_not(None),
                                        (Subscriber.voice_only.is_(False)) | (Subscriber.voice.is_(True)))
    if areas is not None:
        query = query.where(Subscriber.id.in_(
            select(SubscriberArea.subscriber_id).where(SubscriberArea.area.in_(areas))))
    if groups is not None:
        query = query.where(Subscriber.id.in_(
            select(SubscriberGroup.subscriber_id).where(SubscriberGroup.group.in_(groups))))
    return query


def reach(areas: list[str] | None, groups: list[str] | None) -> int:
    """How many residents a roll-call would ask (the start form's preview)."""
    _check_target(areas, groups)
    return int(db.session.scalar(select(func.count()).select_from(asked(areas, groups).subquery())) or 0)


def _carrier(roll_call: RollCall, wave: int, staff_id: int, now: datetime) -> Alert:
    m = current_app.extensions["municipality"]
    texts = {lang: roll_call.question_in(lang) for lang in LANGUAGES if lang == "pl" or lang in roll_call.questions}
    title = {lang: translate("rollcall.title", lang, gmina=m.name) for lang in texts}
    alert = Alert(source=SOURCE, external_id=f"{SOURCE}:{roll_call.id}:{wave}", category="emergency",
                  titles=title, texts=texts, areas=roll_call.areas, groups=roll_call.groups,
                  channels=["sms", "voice"], status=AWAITING, created_by=staff_id, approved_by=staff_id,
                  approved_at=now, meta={"roll_call": roll_call.id, "wave": wave, "template": bool(roll_call.questions)})
    db.session.add(alert)
    db.session.flush()
    return alert


def start(staff: Any, question: str, areas: list[str] | None, groups: list[str] | None,
          resend_after: int | None = None, now: datetime | None = None) -> RollCall:
    """Ask everyone in the villages/groups (None: not limited by it), now. With
    `resend_after` (minutes), those who have not answered by then are asked again."""
    now = now or utcnow()
    question = " ".join((question or "").split())
    if not question:
        raise RollCallError("question_missing")
    if len(question) > QUESTION_LIMIT:
        raise RollCallError("question_too_long", limit=QUESTION_LIMIT)
    _check_target(areas, groups)
    if resend_after is not None and resend_after not in RESEND_DELAYS[1:]:
        raise RollCallError("resend_unknown")
    sqlite_write_lock()
    # The template is sent in each resident's language; the staff's own words in Polish.
    questions = ({lang: default_question(lang) for lang in LANGUAGES if lang != "pl"}
                 if question == default_question("pl") else {})
    roll_call = RollCall(question=question, questions=questions, areas=sorted(set(areas)) if areas else None,
                         groups=sorted(set(groups)) if groups else None, started_by=staff.id, started_at=now,
                         waves=1)
    db.session.add(roll_call)
    db.session.flush()
    ids = asked(roll_call.areas, roll_call.groups).subquery()
    village = select(func.min(SubscriberArea.area)).where(SubscriberArea.subscriber_id == ids.c.id)
    if roll_call.areas is not None:
        village = village.where(SubscriberArea.area.in_(roll_call.areas))
    db.session.execute(insert(RollCallMember).from_select(
        ["roll_call_id", "subscriber_id", "area"],
        select(literal(roll_call.id, Integer), ids.c.id, village.scalar_subquery())))
    members = db.session.scalar(select(func.count()).where(RollCallMember.roll_call_id == roll_call.id))
    counts = publish(_carrier(roll_call, 1, staff.id, now), now, commit=False)
    if resend_after:
        _schedule_wave(roll_call, staff.id, now, now + timedelta(minutes=resend_after))
    audit.record("rollcall_started", staff=staff, target=f"rollcall:{roll_call.id}", commit=False,
                 areas=roll_call.areas, groups=roll_call.groups, members=members, queued=counts,
                 resend_after=resend_after, template=bool(questions))
    db.session.commit()
    return roll_call


def _claim_wave(roll_call_id: int) -> int:
    """The next wave's number, claimed by one UPDATE ... RETURNING of an open roll-call (two
    re-sends at once make two waves, each numbered once; neither is lost or doubled)."""
    wave = db.session.execute(
        update(RollCall).where(RollCall.id == roll_call_id, RollCall.closed_at.is_(None))
        .values(waves=RollCall.waves + 1).returning(RollCall.waves)
        .execution_options(synchronize_session=False)).scalar()
    if wave is None:
        raise RollCallError("closed")
    return wave


def _schedule_wave(roll_call: RollCall, staff_id: int, now: datetime, at: datetime) -> Alert:
    wave = _claim_wave(roll_call.id)
    alert = _carrier(roll_call, wave, staff_id, now)
    alert.send_at = at
    freeze(alert, staff_id, now)
    alert.status = SCHEDULED
    return alert


def resend(staff: Any, roll_call: RollCall, after_minutes: int, now: datetime | None = None) -> Alert:
    """Ask again those who have not answered: now (0) or after `after_minutes`. Who that is
    is decided when the wave goes out, so an answer given meanwhile is not asked again."""
    now = now or utcnow()
    if after_minutes not in RESEND_DELAYS:
        raise RollCallError("resend_unknown")
    if not roll_call.is_open:
        raise RollCallError("closed")
    sqlite_write_lock()
    alert = _schedule_wave(roll_call, staff.id, now, now + timedelta(minutes=after_minutes))
    counts: dict[str, int] = {}
    if after_minutes == 0:
        counts = publish(alert, now, commit=False)
    audit.record("rollcall_resent", staff=staff, target=f"rollcall:{roll_call.id}", commit=False,
                 wave=alert.meta["wave"], after_minutes=after_minutes, queued=counts)
    db.session.commit()
    return alert


def close(staff: Any, roll_call: RollCall, now: datetime | None = None) -> bool:
    """Close the roll-call: the tally stops here (later answers are kept, shown as late), and
    nobody is asked any more (waiting SMS and calls are skipped, planned waves dropped).
    False when it was closed already (one conditional UPDATE: two closes record one)."""
    now = now or utcnow()
    sqlite_write_lock()
    if db.session.execute(update(RollCall).where(RollCall.id == roll_call.id, RollCall.closed_at.is_(None))
                          .values(closed_at=now, closed_by=staff.id)
                          .execution_options(synchronize_session=False)).rowcount != 1:
        db.session.rollback()
        return False
    waves = carriers(roll_call.id)
    # The waves first: one being published right now holds its row, so this waits for it,
    # and the next statement then sees (and skips) the SMS and calls it queued.
    db.session.execute(update(Alert).where(Alert.id.in_(waves), Alert.status.in_((SCHEDULED, PUBLISHED)))
                       .values(status=EXPIRED).execution_options(synchronize_session=False))
    skipped = db.session.execute(
        update(Delivery).where(Delivery.alert_id.in_(waves), Delivery.status == PENDING)
        .values(status=SKIPPED, error="roll-call closed", updated_at=now)
        .execution_options(synchronize_session=False)).rowcount
    audit.record("rollcall_closed", staff=staff, target=f"rollcall:{roll_call.id}", commit=False,
                 not_sent=skipped)
    db.session.commit()
    db.session.refresh(roll_call)
    return True


def record_on_behalf(staff: Any, member: RollCallMember, answer: str, how: str, note: str | None,
                     now: datetime | None = None) -> answers.Recorded:
    """An answer staff heard (by phone, at the door): recorded with who and how, audited."""
    if answer not in ("safe", "help"):
        raise RollCallError("answer_unknown")
    if how not in HOW:
        raise RollCallError("how_unknown")
    recorded = answers.record(member, answer, note, VIA_STAFF, staff_id=staff.id, how=how, now=now)
    audit.record("rollcall_answer_recorded", staff=staff, target=f"rollcall:{member.roll_call_id}",
                 commit=False, member=member.id, answer=answer, how=how, counted=recorded.counted,
                 late=recorded.late)
    db.session.commit()
    return recorded
