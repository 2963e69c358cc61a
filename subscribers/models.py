"""Residents, what they chose, how they proved their number, and the consent ledger.

Preferences live in two narrow tables keyed for the match an alert makes
(category -> subscribers, area -> subscribers), so fan-out is two index range scans.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, SmallInteger, String, Text, UniqueConstraint
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


class Subscriber(db.Model):
    """A resident. `phone` is E.164; a web-push-only resident has no phone."""

    __tablename__ = "subscriber"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str | None] = mapped_column(String(16), unique=True)
    language: Mapped[str] = mapped_column(String(2), default="pl")
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    status_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Bumped to revoke every manage link issued before (a lost phone, a leaked link).
    link_version: Mapped[int] = mapped_column(Integer, default=1)
    # Staff's own phones that receive exercise messages ("ĆWICZENIA").
    test_group: Mapped[bool] = mapped_column(Boolean, default=False)

    categories: Mapped[list[SubscriberCategory]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", passive_deletes=True
    )
    areas: Mapped[list[SubscriberArea]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_active(self) -> bool:
        return self.status == ACTIVE

    def category_levels(self) -> dict[str, int]:
        return {c.category: c.min_level for c in self.categories}

    def area_codes(self) -> list[str]:
        return sorted(a.area for a in self.areas)


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

    subscriber: Mapped[Subscriber] = relationship(back_populates="categories")


class SubscriberArea(db.Model):
    """An area (sołectwo / village / district code from the profile) a resident wants."""

    __tablename__ = "subscriber_area"

    area: Mapped[str] = mapped_column(String(16), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True, index=True
    )

    subscriber: Mapped[Subscriber] = relationship(back_populates="areas")


class Verification(db.Model):
    """A one-time code sent by SMS to prove a number. Only the hash is stored.

    `payload` holds the preferences asked for at sign-up; they apply only once the code is
    right, so nobody can change someone else's preferences by typing their number.
    """

    __tablename__ = "verification"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))  # "subscribe" | "manage"
    code_hash: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


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
    source: Mapped[str] = mapped_column(String(16))  # web | api | sms | staff | provider
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RateCounter(db.Model):
    """Fixed-window counters for abuse limits, shared by every web process via the database."""

    __tablename__ = "rate_counter"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


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
