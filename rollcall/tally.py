"""The tally of a roll-call, village by village, and the lists staff act on.

Counted by one GROUP BY over the members, each once with the answer that counts:
safe, needs help (POMOC, or words a person must read), undeliverable (no answer, and no SMS
or call reached them or is still on its way: every attempt failed, or none could be made),
and no answer yet (the rest).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import and_, case, exists, func, select

from alerts.models import DELIVERED, PENDING, SENDING, SENT, UNCERTAIN, Delivery
from db import db
from rollcall.match import carriers
from rollcall.models import HELP, SAFE, UNCLEAR, RollCall, RollCallAnswer, RollCallMember
from staff.models import StaffUser
from subscribers.models import Subscriber

# A delivery that reached the resident, or still may.
REACHING = (PENDING, SENDING, UNCERTAIN, SENT, DELIVERED)
NEED_HELP = (HELP, UNCLEAR)
LIST_LIMIT = 500  # rows a screen list shows; the export and the printout have them all


@dataclass
class Count:
    area: str | None
    name: str
    asked: int = 0
    safe: int = 0
    help: int = 0
    undeliverable: int = 0

    @property
    def waiting(self) -> int:
        return self.asked - self.safe - self.help - self.undeliverable

    @property
    def answered_percent(self) -> int:
        return round(100 * (self.safe + self.help) / self.asked) if self.asked else 0


def carrier_ids(roll_call_id: int) -> list[int]:
    return list(db.session.scalars(carriers(roll_call_id)))


def _reached(roll_call_id: int):  # noqa: ANN202 - an EXISTS
    return exists().where(Delivery.subscriber_id == RollCallMember.subscriber_id,
                          Delivery.alert_id.in_(carrier_ids(roll_call_id)), Delivery.status.in_(REACHING))


def area_name(code: str | None) -> str:
    from i18n import t

    if code is None:
        return t("admin.rollcall.no_area")
    area = current_app.extensions["municipality"].area(code)
    return area.name if area else code


def counts(roll_call: RollCall) -> tuple[list[Count], Count]:
    """Per village (in the profile's order, those with no member left out) and the total."""
    rows = db.session.execute(
        select(RollCallMember.area, func.count(),
               func.sum(case((RollCallMember.answer == SAFE, 1), else_=0)),
               func.sum(case((RollCallMember.answer.in_(NEED_HELP), 1), else_=0)),
               func.sum(case((and_(RollCallMember.answer.is_(None), ~_reached(roll_call.id)), 1), else_=0)))
        .where(RollCallMember.roll_call_id == roll_call.id).group_by(RollCallMember.area)).all()
    order = {a.code: i for i, a in enumerate(current_app.extensions["municipality"].areas)}
    per_area = sorted((Count(area, area_name(area), int(n), int(s or 0), int(h or 0), int(u or 0))
                       for area, n, s, h, u in rows), key=lambda c: order.get(c.area or "", len(order)))
    total = Count(None, "", *(sum(getattr(c, f) for c in per_area) for f in ("asked", "safe", "help",
                                                                            "undeliverable")))
    return per_area, total


def _answer_rows(query, viewer: Any) -> list[dict[str, Any]]:  # noqa: ANN001
    from admin.people import shown_phone

    out = []
    for answer, member, phone, recorder in db.session.execute(query):
        out.append({"member": member.id, "phone": shown_phone(phone, viewer) if phone else "",
                    "area": area_name(member.area), "answer": answer.answer, "text": answer.text or "",
                    "via": answer.via, "how": answer.how, "recorded_by": recorder, "at": answer.received_at,
                    "late": answer.late})
    return out


def _answers(roll_call_id: int):  # noqa: ANN202 - a Select
    return (select(RollCallAnswer, RollCallMember, Subscriber.phone, StaffUser.email)
            .join(RollCallMember, RollCallMember.id == RollCallAnswer.member_id)
            .join(Subscriber, Subscriber.id == RollCallMember.subscriber_id)
            .outerjoin(StaffUser, StaffUser.id == RollCallAnswer.recorded_by)
            .where(RollCallAnswer.roll_call_id == roll_call_id))


def need_help(roll_call: RollCall, viewer: Any, limit: int | None = LIST_LIMIT) -> list[dict[str, Any]]:
    """Those whose answer that counts asks for help (or must be read), newest first."""
    query = (_answers(roll_call.id).where(RollCallAnswer.id == RollCallMember.answer_id,
                                          RollCallMember.answer.in_(NEED_HELP))
             .order_by(RollCallMember.answered_at.desc(), RollCallAnswer.id.desc()))
    return _answer_rows(query.limit(limit) if limit else query, viewer)


def late(roll_call: RollCall, viewer: Any) -> list[dict[str, Any]]:
    """Answers that came after closing, asking for help first."""
    query = _answers(roll_call.id).where(RollCallAnswer.late.is_(True)).order_by(
        case((RollCallAnswer.answer.in_(NEED_HELP), 0), else_=1), RollCallAnswer.received_at.desc())
    return _answer_rows(query.limit(LIST_LIMIT), viewer)


def not_answered(roll_call: RollCall, viewer: Any, limit: int | None = LIST_LIMIT) -> list[dict[str, Any]]:
    """Members without an answer, by village, with whether anything reached them."""
    from admin.people import shown_phone

    reached = _reached(roll_call.id)
    query = (select(RollCallMember, Subscriber.phone, reached)
             .join(Subscriber, Subscriber.id == RollCallMember.subscriber_id)
             .where(RollCallMember.roll_call_id == roll_call.id, RollCallMember.answer.is_(None))
             .order_by(RollCallMember.area, RollCallMember.id))
    return [{"member": m.id, "phone": shown_phone(phone, viewer), "area": area_name(m.area),
             "reached": bool(ok)} for m, phone, ok in db.session.execute(query.limit(limit) if limit else query)]


def everyone(roll_call: RollCall, viewer: Any) -> list[dict[str, Any]]:
    """Every member with the answer that counts (the export for OSP and PSP): those who need
    help first, then no answer, then safe; by village within each."""
    from admin.people import shown_phone

    reached = _reached(roll_call.id)
    rank = case((RollCallMember.answer.in_(NEED_HELP), 0), (RollCallMember.answer.is_(None), 1), else_=2)
    query = (select(RollCallMember, Subscriber.phone, reached, RollCallAnswer.text, RollCallAnswer.via)
             .join(Subscriber, Subscriber.id == RollCallMember.subscriber_id)
             .outerjoin(RollCallAnswer, RollCallAnswer.id == RollCallMember.answer_id)
             .where(RollCallMember.roll_call_id == roll_call.id)
             .order_by(rank, RollCallMember.area, RollCallMember.id))
    return [{"phone": shown_phone(phone, viewer), "area": area_name(m.area), "answer": m.answer,
             "at": m.answered_at, "text": text or "", "via": via, "reached": bool(ok)}
            for m, phone, ok, text, via in db.session.execute(query)]


def last_answer_at(roll_call: RollCall) -> datetime | None:
    return db.session.scalar(select(func.max(RollCallAnswer.received_at))
                             .where(RollCallAnswer.roll_call_id == roll_call.id))
