"""Alerts, the outbox of deliveries they fan out to, and every receipt about them.

The schema says what happens once: an alert is unique per (source, external id), and a
delivery per (alert, subscriber, channel), so publishing or fanning out twice adds nothing.
The delivery row stays narrow (no copy of the text): the dispatcher joins the alert's text
at send time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    select,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db import UTCDateTime, db, refuse_row_changes, utcnow

# Alert.status
DRAFT = "draft"  # being written by staff
AWAITING = "awaiting"  # prepared (by a feed, or by an editor) and waiting for staff approval
SCHEDULED = "scheduled"  # approved, to be published at send_at
PUBLISHED = "published"
UPDATED = "updated"  # superseded by an update
CANCELLED = "cancelled"
EXPIRED = "expired"
REJECTED = "rejected"

# Alert.kind: what the message is to its recipients.
KIND_ALERT = "alert"
KIND_UPDATE = "update"
KIND_CANCEL = "cancel"

CHANNELS = ("sms", "push", "voice")

# Delivery.outcome of a voice call (alerts/calls.py): what the resident did with it.
CALL_CONFIRMED = "confirmed"  # pressed 1: heard it
CALL_ANSWERED = "answered"  # a person answered but did not press 1 (retried)
CALL_VOICEMAIL = "voicemail"  # an answering machine took the shorter version
CALL_BUSY = "busy"
CALL_NO_ANSWER = "no_answer"
CALL_FAILED = "failed"  # the network could not place the call
CALL_OPTED_OUT = "opted_out"  # pressed 9: no more calls
CALL_OUTCOMES = (CALL_CONFIRMED, CALL_ANSWERED, CALL_VOICEMAIL, CALL_BUSY, CALL_NO_ANSWER, CALL_FAILED,
                 CALL_OPTED_OUT)

# Delivery.status. Final: delivered, undelivered, failed, expired, skipped.
PENDING = "pending"  # waiting for its time (next_attempt_at)
SENDING = "sending"  # claimed by a dispatcher; the provider call may be under way
UNCERTAIN = "uncertain"  # the provider may or may not have taken it: reconcile before resending
SENT = "sent"  # the provider accepted it
DELIVERED = "delivered"
UNDELIVERED = "undelivered"
FAILED = "failed"
DELIVERY_EXPIRED = "expired"  # the alert ended before we could send it
SKIPPED = "skipped"  # the resident left, or the alert was withdrawn, before sending

FINAL_STATUSES = (DELIVERED, UNDELIVERED, FAILED, DELIVERY_EXPIRED, SKIPPED)
# A receipt never moves a delivery backwards: only to a higher rank.
STATUS_RANK = {PENDING: 0, SENDING: 1, UNCERTAIN: 1, SENT: 2, DELIVERED: 3, UNDELIVERED: 3, FAILED: 3,
               DELIVERY_EXPIRED: 3, SKIPPED: 3}


class Alert(db.Model):
    """A message to residents: from staff ("manual") or made from a feed's warning."""

    __tablename__ = "alert"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(32), default="manual")
    # The feed's identity of the warning version this alert carries (None for staff messages).
    external_id: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(8), default=KIND_ALERT)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("alert.id"), index=True)
    category: Mapped[str] = mapped_column(String(16))
    level: Mapped[int | None] = mapped_column(SmallInteger)
    # Per language; Polish is required, other languages fall back to Polish.
    titles: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    texts: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # Area codes from the municipality profile; None means the whole gmina.
    areas: Mapped[list[str] | None] = mapped_column(JSON)
    # Group codes (profile [[groups]]): only their members, whatever their categories. NULL
    # (not JSON null): a message to everyone, the only kind the public pages list.
    groups: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    channels: Mapped[list[str]] = mapped_column(JSON, default=lambda: list(CHANNELS))
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default=DRAFT, index=True)
    # Keep Polish letters in SMS (UCS-2: 2-3x the cost) instead of transliterating.
    keep_diacritics: Mapped[bool] = mapped_column(Boolean, default=False)
    # What a call reads, per language, as staff edited it; a language missing here is read
    # from its text, made speakable (alerts/speech.py).
    spoken: Mapped[dict[str, str] | None] = mapped_column(JSON)
    exercise: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Sent by a lone approver without the second approval: the reason is in meta.
    break_glass: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Anything the source wants to keep (feed fingerprint, office, raw event name).
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Bumped by every change of what residents would read (alerts/approval.py): an approval
    # given on an older version is refused as stale.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    parent: Mapped[Alert | None] = relationship(remote_side=[id])

    @property
    def approved_version(self) -> AlertVersion | None:
        """The frozen copy of this version that was approved (what residents get), or None
        while the current version is not approved (a draft, or edited since)."""
        if self.id is None:
            return None
        return db.session.scalar(select(AlertVersion).where(
            AlertVersion.alert_id == self.id, AlertVersion.number == self.version))

    def title(self, lang: str) -> str:
        return self.titles.get(lang) or self.titles.get("pl", "")

    def text(self, lang: str) -> str:
        return self.texts.get(lang) or self.texts.get("pl", "")

    def root(self) -> Alert:
        """The first alert of an update/cancel chain."""
        node = self
        while node.parent is not None:
            node = node.parent
        return node


class AlertVersion(db.Model):
    """An immutable copy of an alert's content as it was approved: what is sent is rendered
    from this row, never from the alert row (which a draft's editor can still change).

    Rows are only ever inserted; ``fingerprint`` is the one the approver's page showed. One
    row per approved version: two approvals of one version cannot both happen.
    """

    __tablename__ = "alert_version"
    __table_args__ = (UniqueConstraint("alert_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # Alert.version when it was approved
    fingerprint: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(16))
    level: Mapped[int | None] = mapped_column(SmallInteger)
    titles: Mapped[dict[str, str]] = mapped_column(JSON)
    texts: Mapped[dict[str, str]] = mapped_column(JSON)
    areas: Mapped[list[str] | None] = mapped_column(JSON)
    groups: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    channels: Mapped[list[str]] = mapped_column(JSON)
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    keep_diacritics: Mapped[bool] = mapped_column(Boolean, default=False)
    spoken: Mapped[dict[str, str] | None] = mapped_column(JSON)
    exercise: Mapped[bool] = mapped_column(Boolean, default=False)
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def title(self, lang: str) -> str:
        return self.titles.get(lang) or self.titles.get("pl", "")

    def text(self, lang: str) -> str:
        return self.texts.get(lang) or self.texts.get("pl", "")


# PostgreSQL refuses to change or remove an approved version (migration 0002 and, for
# schemas made by create_all, this).
refuse_row_changes(AlertVersion.__table__, "alert_version_immutable", "immutable")


class Delivery(db.Model):
    """One message to one resident on one channel: the outbox row and its receipt."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("alert_id", "subscriber_id", "channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"))
    # SET NULL: erasing a resident keeps the anonymous count of what was sent.
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscriber.id", ondelete="SET NULL"),
                                                      index=True)
    channel: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12), default=PENDING)
    # Higher goes first (alerts/outbox.py). Below PRIORITY_LEVEL_2 a delivery also waits
    # out the quiet hours: only emergencies and level 2+ warnings wake people at night.
    priority: Mapped[int] = mapped_column(SmallInteger, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    # The claim is a lease: its owner renews this while it is still sending the row, and only
    # a lease left unrenewed for DISPATCH_STALE_SECONDS is taken for a dead dispatcher's.
    lease_renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Which SMS provider has (or is about to get) it: written before the call, so receipts,
    # reconciliation and erasure ask the right one (alerts/routing.py). None for push.
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    segments: Mapped[int | None] = mapped_column(SmallInteger)
    # A call's last outcome (CALL_*): confirmed, voicemail, busy, ... None for SMS and push.
    outcome: Mapped[str | None] = mapped_column(String(12))
    error_code: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    alert: Mapped[Alert] = relationship()


# The dispatcher's claim reads this index in order (status = pending, most urgent first, then
# oldest) and stops after a batch; any other order would sort every pending row per claim
# (a third of a second at a million queued).
Index("ix_delivery_claim", Delivery.status, Delivery.priority.desc(), Delivery.id)
# The figures for operators (metrics.py) read recent hand-offs and events by time. Partial:
# a delivery enters it when it is sent, so the fan-out writes nothing more.
Index("ix_delivery_sent_at", Delivery.sent_at, postgresql_where=Delivery.sent_at.is_not(None),
      sqlite_where=Delivery.sent_at.is_not(None))


class DeliveryEvent(db.Model):
    """Append-only: every answer and callback about a delivery, in the order we got them.

    Callbacks arrive late, twice, or out of order; keeping them all lets staff see what the
    provider said even when it did not change the delivery's status.
    """

    __tablename__ = "delivery_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("delivery.id", ondelete="CASCADE"), index=True)
    provider_ref: Mapped[str | None] = mapped_column(String(64))
    provider: Mapped[str | None] = mapped_column(String(16))  # the SMS provider that answered
    source: Mapped[str] = mapped_column(String(12))  # send | callback | reconcile | dispatcher
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    # Indexed for the figures of the last minutes (metrics.py): receipts, provider errors.
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


# FeedWarning.state
ACTIVE = "active"  # listed by the feed and concerning the gmina
WITHDRAWN = "withdrawn"  # disappeared before its end, or no longer concerns the gmina
ENDED = "ended"  # ran out (end time passed) or an air episode ended
SUPERSEDED = "superseded"  # replaced by a newer warning that continues its alert chain


class FeedWarning(db.Model):
    """What the feeds last said about one warning, and which alert chain carries it.

    ``kind`` groups sources that carry the same warnings: IMGW's own meteo feed and
    Meteoalarm are both ``meteo`` with IMGW's id, so a warning carried by both is one row
    and one alert. ``material`` hashes only what residents must be told about again (event,
    level, start, end); the full ``fingerprint`` also covers the text.
    """

    __tablename__ = "feed_warning"
    __table_args__ = (UniqueConstraint("kind", "warning_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))
    warning_id: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(12), default=ACTIVE, index=True)
    event: Mapped[str] = mapped_column(String(120))
    level: Mapped[int | None] = mapped_column(SmallInteger)
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    fingerprint: Mapped[str] = mapped_column(String(64))
    material: Mapped[str] = mapped_column(String(64))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alert.id"))
    last_source: Mapped[str] = mapped_column(String(24))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # IMGW answered "no products" (which some failures look like): withdrawn only once the
    # second source confirms.
    missing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())

    alert: Mapped[Alert | None] = relationship()


class FeedHealth(db.Model):
    """The last good answer and the last error of each feed (GET /healthz, staff dashboard)."""

    __tablename__ = "feed_health"

    feed: Mapped[str] = mapped_column(String(24), primary_key=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(500))
    # The last good answer was IMGW's "no products" body (cannot be told from some failures).
    last_was_empty: Mapped[bool] = mapped_column(Boolean, default=False)
    last_summary: Mapped[str | None] = mapped_column(String(500))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
