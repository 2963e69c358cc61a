"""A roll-call after a flood or storm: who was asked, what each resident answered, and how.

The schema says what happens once: a resident is a member of a roll-call once (unique
(roll_call, subscriber)), so however many answers race in, the tally counts them once. The
member row holds the answer that counts, the latest one (answers are ordered by the time
received, then by the answer's id); every answer ever given is kept in ``roll_call_answer``,
late ones too. The messages that ask (SMS and calls) are ordinary alerts with source
"rollcall" (one per wave: the first, and every re-send to those who have not answered), so
they go through the outbox, the dispatcher, failover and receipts like any warning.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from db import UTCDateTime, db, utcnow

# RollCallMember.answer / RollCallAnswer.answer
SAFE = "safe"
HELP = "help"
# A reply we could not read as TAK or POMOC ("woda w piwnicy"): counted with those who need
# help, because a person must read it.
UNCLEAR = "unclear"
ANSWERS = (SAFE, HELP, UNCLEAR)

# RollCallAnswer.via
VIA_SMS = "sms"
VIA_LINK = "link"
VIA_VOICE = "voice"
VIA_STAFF = "staff"
# RollCallAnswer.how, for an answer staff recorded on a resident's behalf
HOW = ("phone", "door", "other")

SOURCE = "rollcall"  # Alert.source of the messages that ask


class RollCall(db.Model):
    __tablename__ = "roll_call"

    id: Mapped[int] = mapped_column(primary_key=True)
    question: Mapped[str] = mapped_column(String(300))
    # The question in the residents' other languages, when staff kept the template.
    questions: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    areas: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))  # None: the whole gmina
    groups: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    started_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="SET NULL"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # How many waves were sent (the first one included); a re-send claims the next number.
    waves: Mapped[int] = mapped_column(Integer, default=1)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="SET NULL"))

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    def question_in(self, lang: str) -> str:
        return self.questions.get(lang) or self.question


class RollCallMember(db.Model):
    """A resident asked in a roll-call, with the answer that counts (None: none yet).

    `area` is the village the resident is counted under: the first (by code) of their
    villages the roll-call asked, or of all their villages when it asked a group; None for a
    resident without a village."""

    __tablename__ = "roll_call_member"
    __table_args__ = (
        UniqueConstraint("roll_call_id", "subscriber_id", name="uq_roll_call_member"),
        Index("ix_roll_call_member_subscriber", "subscriber_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    roll_call_id: Mapped[int] = mapped_column(ForeignKey("roll_call.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"))
    area: Mapped[str | None] = mapped_column(String(32))
    answer: Mapped[str | None] = mapped_column(String(8))
    answer_id: Mapped[int | None] = mapped_column(Integer)  # the RollCallAnswer that counts
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RollCallAnswer(db.Model):
    """One answer, as it came: by SMS, by the personal link, by a key in a call, or recorded
    by staff (who, and how they heard it). Late: it came after the roll-call was closed, and
    is kept and shown but does not change the closed tally."""

    __tablename__ = "roll_call_answer"
    __table_args__ = (Index("ix_roll_call_answer_member", "member_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    roll_call_id: Mapped[int] = mapped_column(ForeignKey("roll_call.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("roll_call_member.id", ondelete="CASCADE"))
    answer: Mapped[str] = mapped_column(String(8))
    text: Mapped[str | None] = mapped_column(String(500))
    via: Mapped[str] = mapped_column(String(8))
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="SET NULL"))
    how: Mapped[str | None] = mapped_column(String(8))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    late: Mapped[bool] = mapped_column(default=False)
