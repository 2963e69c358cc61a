"""Reading and recording answers: TAK / POMOC by SMS, a button on the personal page, a key in
a call, or staff writing down what they heard at the door.

One resident counts once, with their latest answer: every answer is inserted into the log,
then one conditional UPDATE makes it the member's answer only if nothing newer is there
(ordered by the time received, then by the log's id). Two answers racing on two processes
therefore end the same whichever commits first, and the tally counts the member once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, exists, or_, select, update

from alerts.sms_text import transliterate
from alerts.models import PENDING, SKIPPED, Delivery
from db import db, utcnow
from rollcall.match import carriers
from rollcall.models import HELP, SAFE, UNCLEAR, RollCall, RollCallAnswer, RollCallMember

# An SMS counts as an answer for a roll-call still open and started this long ago at most,
# or closed this long ago at most (then kept as late); otherwise "TAK" is a keyword again
# (START) rather than an answer to a question from last month.
OPEN_WINDOW = timedelta(days=14)
LATE_WINDOW = timedelta(hours=24)
TEXT_LIMIT = 500

# Words compared without case, Polish letters or punctuation ("Tak!", "pomocy", "Ratunku").
SAFE_WORDS = {"TAK", "OK", "OKAY", "YES", "SAFE", "BEZPIECZNY", "BEZPIECZNA", "BEZPIECZNI", "BEZPIECZNIE",
              "DOBRZE", "ТАК", "ДОБРЕ", "ДА"}
HELP_WORDS = {"POMOC", "POMOCY", "HELP", "SOS", "RATUNKU", "RATUJCIE", "POTRZEBUJE", "POTRZEBUJEMY",
              "POTRZEBNA", "ДОПОМОГА", "ДОПОМОГИ", "ДОПОМОГУ", "ДОПОМОЖІТЬ", "ПОМОЩЬ", "ПОМОГИТЕ"}
# A bare digit, as in the call's menu: 1 safe, 2 help.
DIGITS = {"1": SAFE, "2": HELP}
NEGATIONS = {"NIE", "NO", "NOT", "НЕ", "НІ"}


def _words(text: str) -> list[str]:
    # Latin letters lose their diacritics (transliterate); Cyrillic ones are kept as they are.
    plain = "".join(ch if "\u0400" <= ch <= "\u04ff" else transliterate(ch) for ch in text)
    return re.sub(r"[^\w ]", " ", plain.upper()).split()


def classify(text: str) -> str:
    """SAFE, HELP or UNCLEAR for a resident's own words.

    Any word asking for help wins (a person reads the text), unless "nie" comes right
    before it ("nie potrzebuję pomocy": SAFE); a reply with a yes-word ("tak", "ok",
    "bezpieczni") is SAFE, unless negated; a reply that starts with "nie" is a no to "are
    you safe?" (HELP); anything else is UNCLEAR, which the tally lists with those who need
    help.
    """
    words = _words(text)
    if len(words) == 1 and words[0] in DIGITS:
        return DIGITS[words[0]]

    def said(vocabulary: set[str]) -> bool:
        return any(w in vocabulary and not (words[i - 1] in NEGATIONS if i else False)
                   and not (i > 1 and words[i - 2] in NEGATIONS) for i, w in enumerate(words))

    if said(HELP_WORDS):
        return HELP
    if said(SAFE_WORDS) or any(w in HELP_WORDS for w in words):  # ... or help, negated
        return SAFE
    # "Nie", "Nie jestem bezpieczny": to "are you safe?", a no.
    return HELP if words and words[0] in NEGATIONS else UNCLEAR


@dataclass(frozen=True)
class Recorded:
    answer: RollCallAnswer
    counted: bool  # it is now the member's answer
    changed: bool  # ... and says something else than the one it replaced
    late: bool  # the roll-call was closed: kept, shown as late, not counted


def record(member: RollCallMember, answer: str, text: str | None, via: str, *, staff_id: int | None = None,
           how: str | None = None, now: datetime | None = None) -> Recorded:
    """Keep one answer and make it the member's if it is the latest. The caller commits."""
    now = now or utcnow()
    previous = member.answer
    row = RollCallAnswer(roll_call_id=member.roll_call_id, member_id=member.id, answer=answer,
                         text=(text or "").strip()[:TEXT_LIMIT] or None, via=via, recorded_by=staff_id,
                         how=how, received_at=now)
    db.session.add(row)
    db.session.flush()
    counted = db.session.execute(
        update(RollCallMember)
        .where(RollCallMember.id == member.id,
               or_(RollCallMember.answered_at.is_(None), RollCallMember.answered_at < now,
                   and_(RollCallMember.answered_at == now, RollCallMember.answer_id < row.id)),
               exists().where(RollCall.id == RollCallMember.roll_call_id, RollCall.closed_at.is_(None)))
        .values(answer=answer, answer_id=row.id, answered_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    if counted and previous is None:
        # Answered: their SMS or call still waiting (a call's next attempt above all) is not
        # needed any more.
        db.session.execute(
            update(Delivery).where(Delivery.alert_id.in_(carriers(member.roll_call_id)),
                                   Delivery.subscriber_id == member.subscriber_id, Delivery.status == PENDING)
            .values(status=SKIPPED, error="answered the roll-call", updated_at=now)
            .execution_options(synchronize_session=False))
    late = False
    if not counted:
        late = db.session.scalar(select(RollCall.closed_at).where(RollCall.id == member.roll_call_id)) is not None
        row.late = late
    db.session.expire(member)
    return Recorded(row, counted, counted and previous != answer, late)


def member_for_reply(subscriber_id: int, now: datetime | None = None) -> RollCallMember | None:
    """The roll-call an SMS from this resident answers: an open one that asked them (the
    newest, if several), else one closed within LATE_WINDOW (the answer is kept as late)."""
    now = now or utcnow()
    open_first = case((RollCall.closed_at.is_(None), 0), else_=1)
    return db.session.scalar(
        select(RollCallMember).join(RollCall, RollCall.id == RollCallMember.roll_call_id)
        .where(RollCallMember.subscriber_id == subscriber_id, RollCall.started_at > now - OPEN_WINDOW,
               or_(RollCall.closed_at.is_(None), RollCall.closed_at > now - LATE_WINDOW))
        .order_by(open_first, RollCall.started_at.desc(), RollCall.id.desc()).limit(1))
