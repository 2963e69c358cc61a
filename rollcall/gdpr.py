"""A resident's roll-call answers are personal data (where they were, that they needed help):
in their GDPR export, and deleted with them on erasure (the membership too, so their
personal link opens nothing any more). The tally of a roll-call then no longer counts them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from db import db
from rollcall.models import RollCall, RollCallAnswer, RollCallMember
from subscribers import erasure, service
from subscribers.models import Subscriber


def export_answers(subscriber: Subscriber) -> tuple[str, list[dict[str, Any]]]:
    rows = db.session.execute(
        select(RollCallAnswer, RollCallMember, RollCall)
        .join(RollCallMember, RollCallMember.id == RollCallAnswer.member_id)
        .join(RollCall, RollCall.id == RollCallAnswer.roll_call_id)
        .where(RollCallMember.subscriber_id == subscriber.id).order_by(RollCallAnswer.id)).all()
    return "roll_call_answers", [
        {"roll_call": rc.id, "question": rc.question_in(subscriber.language), "answer": a.answer,
         "text": a.text, "via": a.via, "how": a.how, "received_at": a.received_at.isoformat(),
         "late": a.late, "counted": member.answer_id == a.id}
        for a, member, rc in rows]


def erase_answers(subscriber: Subscriber) -> None:
    mine = select(RollCallMember.id).where(RollCallMember.subscriber_id == subscriber.id)
    db.session.execute(delete(RollCallAnswer).where(RollCallAnswer.member_id.in_(mine)))
    db.session.execute(delete(RollCallMember).where(RollCallMember.subscriber_id == subscriber.id))


if export_answers not in service.EXPORT_SECTIONS:
    service.EXPORT_SECTIONS.append(export_answers)
if erase_answers not in erasure.ERASE_HOOKS:
    erasure.ERASE_HOOKS.append(erase_answers)
