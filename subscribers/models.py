"""Residents, what they chose, how they proved their number, and the consent ledger.

Preferences live in two narrow tables keyed for the match an alert makes
(category -> subscribers, area -> subscribers), so fan-out is two index range scans.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, SmallInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db import UTCDateTime, db, utcnow

# Subscriber.status values.
PENDING = "pending"  # signed up, number not yet proven: never receives alerts
ACTIVE = "active"  # verified and receiving
OPTED_OUT = "opted_out"  # left (link, STOP, or Twilio 21610); START brings them back
DEACTIVATED = "deactivated"  # the number cannot receive SMS (invalid, landline); visible to staff

# How long verification codes (hashed) are kept before housekeeping deletes them.
VERIFICATION_RETENTION_DAYS = 30
# How long SMS from numbers that are not residents are kept.
INBOUND_SMS_RETENTION_DAYS = 90


def new_link_secret() -> str:
    """A fresh random secret that every manage link of one resident is bound to."""
    return secrets.token_hex(16)


class Subscriber(db.Model):
    """A resident. `phone` is E.164; a web-push-only resident has no phone."""

    __tablename__ = "subscriber"
    # AUTOINCREMENT: SQLite would otherwise hand an erased resident's id to the next sign-up
    # (max(rowid) + 1), and whatever still points at the old id would point at a stranger.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str | None] = mapped_column(String(16), unique=True)
    language: Mapped[str] = mapped_column(String(2), default="pl")
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    status_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Bumped (with a new link_secret) to revoke every manage link issued before.
    link_version: Mapped[int] = mapped_column(Integer, default=1)
    # Every manage link carries a MAC over (id, link_secret); a new secret revokes them all,
    # and erasure sets it to None so no link of this resident can ever open anything again.
    link_secret: Mapped[str | None] = mapped_column(String(32), default=new_link_secret)
    # Staff's own phones that receive exercise messages ("ĆWICZENIA").
    test_group: Mapped[bool] = mapped_column(Boolean, default=False)
    # Wants warnings read to them by a phone call (the categories' call_level say which).
    voice: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Calls only, never an SMS: a landline, or a resident who asked for calls alone.
    voice_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

    categories: Mapped[list[SubscriberCategory]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", passive_deletes=True
    )
    areas: Mapped[list[SubscriberArea]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", passive_deletes=True
    )
    groups: Mapped[list[SubscriberGroup]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_active(self) -> bool:
        return self.status == ACTIVE

    def category_levels(self) -> dict[str, int]:
        return {c.category: c.min_level for c in self.categories}

    def area_codes(self) -> list[str]:
        return sorted(a.area for a in self.areas)

    def group_codes(self) -> list[str]:
        return sorted(g.group for g in self.groups)


class SubscriberCategory(db.Model):
    """A category a resident wants, with the lowest warning level (1-3) they want to hear of.

    For categories without levels (official, events, ...) min_level is 1 and ignored.
    """

    __tablename__ = "subscriber_category"

    category: Mapped[str] = mapped_column(String(16), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    min_level: Mapped[int] = mapped_column(SmallInteger, default=1)
    # The lowest level that also rings the resident's phone (voice); None: no calls for it.
    call_level: Mapped[int | None] = mapped_column(SmallInteger)

    subscriber: Mapped[Subscriber] = relationship(back_populates="categories")


class SubscriberArea(db.Model):
    """An area (sołectwo / village / district code from the profile) a resident wants."""

    __tablename__ = "subscriber_area"

    area: Mapped[str] = mapped_column(String(16), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True, index=True
    )

    subscriber: Mapped[Subscriber] = relationship(back_populates="areas")


class SubscriberGroup(db.Model):
    """A resident in a group beyond villages (municipality profile [[groups]]): joined by the
    resident (an open group) or added by staff under the group's legal basis (a closed one)."""

    __tablename__ = "subscriber_group"

    group: Mapped[str] = mapped_column(String(16), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # "self" (the resident joined) or "staff" (added under the legal basis).
    source: Mapped[str] = mapped_column(String(8), default="self")
    added_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    subscriber: Mapped[Subscriber] = relationship(back_populates="groups")


class Verification(db.Model):
    """A one-time code sent by SMS to prove a number. Only the hash is stored.

    `payload` holds the preferences asked for at sign-up; they apply only once the code is
    right, so nobody can change someone else's preferences by typing their number.

    Codes are found by `phone_key` (an HMAC of the number, never the number). A lost-link
    request for a number that is not a resident stores a decoy: no subscriber, a hash no code
    matches. Known and unknown numbers then walk the same rows, counters and timings.
    """

    __tablename__ = "verification"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"), index=True)
    phone_key: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(16))  # "subscribe" | "manage"
    code_hash: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Why the text never went out (an error code: phone_unreachable,
    # sms_unavailable); shown to whoever signs up with the number, never in the lost-link flow.
    delivery_error: Mapped[str | None] = mapped_column(String(24))


class ConsentEvent(db.Model):
    """Append-only ledger of what a resident agreed to, when, and how (GDPR Art. 7(1)).

    Rows are only ever inserted; erasing a resident deletes them with the resident.
    """

    __tablename__ = "consent_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"), index=True)
    # subscribe | verify | change | opt_out | opt_in | push_subscribe | push_unsubscribe
    action: Mapped[str] = mapped_column(String(24))
    phone: Mapped[str | None] = mapped_column(String(16))
    categories: Mapped[dict[str, int] | None] = mapped_column(JSON)  # category -> min level
    areas: Mapped[list[str] | None] = mapped_column(JSON)
    language: Mapped[str | None] = mapped_column(String(2))
    consent_version: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))  # web | api | sms | voice | staff | paper | provider
    # The paper form's number, for a registration staff typed in from one (source "paper").
    reference: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RateCounter(db.Model):
    """Fixed-window counters (the older staff sign-in limits; see subscribers/ratelimit.py)."""

    __tablename__ = "rate_counter"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class RateBucket(db.Model):
    """A token bucket per limit key (GCRA): `tat` is the theoretical arrival time of the next
    hit, in epoch seconds. One row per key, changed by one conditional upsert per hit."""

    __tablename__ = "rate_bucket"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    tat: Mapped[float] = mapped_column(Float(precision=53))


class SmsOutbox(db.Model):
    """Texts to residents that a request decided to send (codes, manage links), sent by the
    scheduler's drain a moment later (subscribers/outbox.py).

    Queued, so a request never waits for the SMS provider: the answer and its timing are the
    same whether or not a text goes out. A row is deleted once sent or given up, so a code's
    text lives here only for seconds.
    """

    __tablename__ = "sms_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"), index=True)
    verification_id: Mapped[int | None] = mapped_column(ForeignKey("verification.id", ondelete="CASCADE"),
                                                        index=True)
    to_phone: Mapped[str] = mapped_column(String(16))
    # "sms", or "call": the body is read out by a phone call (a landline's code).
    kind: Mapped[str] = mapped_column(String(8), default="sms", server_default="sms")
    body: Mapped[str] = mapped_column(Text)
    reference: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # A code past its lifetime is not worth paying for.
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class InboundSms(db.Model):
    """Every SMS a resident sent us. The provider's id is unique, so a webhook that Twilio
    retries is handled once."""

    __tablename__ = "inbound_sms"
    __table_args__ = (UniqueConstraint("provider_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_ref: Mapped[str] = mapped_column(String(64))
    from_phone: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    action: Mapped[str | None] = mapped_column(String(24))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PushSubscription(db.Model):
    """A browser's web-push endpoint: another channel of a resident (who may have no phone)."""

    __tablename__ = "push_subscription"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(String(1000), unique=True)
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(100))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def subscription_info(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


Index("ix_verification_created", Verification.subscriber_id, Verification.created_at)
Index("ix_verification_phone_key", Verification.phone_key, Verification.created_at)
