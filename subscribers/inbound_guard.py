"""What keeps residents' texts from being replayed or from costing money without end.

Two facts, each decided by one atomic statement in the webhook's own transaction:

- A MessageSid is processed once, for ever. Only its SHA-256 is kept (an opaque id of
  Twilio's, no personal data), and it outlives erasure: the signed request of a START the
  resident once sent stays valid for anyone who copied it, so the hash is what stops that
  request from subscribing the number again after the resident was erased.
- A text that is no keyword gets the hint at most once per number per 24 hours (a sliding
  window, not a calendar day, so midnight does not double it). Every reply is a paid SMS,
  and a chatty phone or a loop between two auto-responders would otherwise pay for one
  each time. The row is keyed by an HMAC of the number, never the number.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import String, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from db import UTCDateTime, db, is_postgres, utcnow

HINT_WINDOW = timedelta(days=1)


class InboundSeen(db.Model):
    """A processed incoming SMS, by the SHA-256 of its MessageSid. Never deleted."""

    __tablename__ = "inbound_seen"

    sid_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class HintReply(db.Model):
    """When a number last got the hint for a text we did not understand (HMAC of the
    number; housekeeping drops rows older than the window, erasure drops the resident's)."""

    __tablename__ = "hint_reply"

    number_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    replied_at: Mapped[datetime] = mapped_column(UTCDateTime())


def _insert():  # noqa: ANN202
    return pg_insert if is_postgres() else sqlite_insert


def sid_hash(provider_ref: str) -> str:
    return hashlib.sha256(provider_ref.encode()).hexdigest()


def number_key(phone: str) -> str:
    """HMAC of a number: equal numbers match, and the table alone does not give them away."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"inbound-hint:{phone}".encode(), hashlib.sha256).hexdigest()


def claim_message(provider_ref: str) -> bool:
    """Record this MessageSid as processed; False when it already was (a Twilio retry or a
    replay). The caller commits with its work, so a crash mid-way lets Twilio's retry in.

    Must be the first write of the transaction: on PostgreSQL a parallel duplicate waits on
    the unique key until this transaction ends, then finds the row; on SQLite it waits for
    the write lock (busy_timeout) and then sees the committed row.
    """
    stmt = (_insert()(InboundSeen).values(sid_hash=sid_hash(provider_ref), seen_at=utcnow())
            .on_conflict_do_nothing(index_elements=[InboundSeen.sid_hash])
            .returning(InboundSeen.sid_hash))
    return db.session.execute(stmt).scalar() is not None


def may_send_hint(phone: str, now: datetime | None = None) -> bool:
    """True for the first non-keyword text from `phone` in HINT_WINDOW, then False until the
    window has passed: one upsert that only moves the time when the last hint is old enough,
    so ten texts at once give one True."""
    now = now or utcnow()
    stmt = _insert()(HintReply).values(number_key=number_key(phone), replied_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[HintReply.number_key],
        set_={"replied_at": stmt.excluded.replied_at},
        where=HintReply.replied_at <= now - HINT_WINDOW,
    ).returning(HintReply.number_key)
    return db.session.execute(stmt).scalar() is not None


def forget_number(phone: str) -> None:
    """Erasure: drop the number's hint row (the caller commits)."""
    db.session.execute(delete(HintReply).where(HintReply.number_key == number_key(phone)))


def purge_old_hints(now: datetime | None = None) -> int:
    """Housekeeping: rows whose window has passed say nothing any more."""
    now = now or utcnow()
    return db.session.execute(delete(HintReply).where(HintReply.replied_at <= now - HINT_WINDOW)).rowcount or 0
