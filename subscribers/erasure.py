"""Erasure that leaves nothing behind (GDPR Art. 17), and the purge of unconfirmed sign-ups.

A resident's data lives in three places, and erasure empties each:

1. Our tables. The resident's row goes, and with it (foreign keys) their choices, codes,
   consent ledger and browsers; their texts to us go; deliveries stay, anonymous (the
   gmina keeps counts of what was sent). Other modules add their part through ERASE_HOOKS.
2. The database files. A deleted row lives on in SQLite's free pages and in its WAL, so
   the erasure's connection zeroes what it deletes (secure_delete) and the WAL is
   checkpointed and truncated once the erasure commits. (PostgreSQL keeps dead row
   versions until autovacuum reuses them; its files are not readable by the app's users.)
3. The SMS provider. Twilio keeps every message body, both ways, until it is deleted. The
   SIDs we know (deliveries, the resident's texts, plus whatever the provider lists as sent
   to the number: codes, confirmations, replies) are written to ``provider_deletion`` in
   the erasure's own transaction, then deleted one by one. Twilio refuses to delete a
   message it has not finished; those, and any the provider could not delete now, stay in
   the table (a SID alone is no personal data) and housekeeping tries again.

The caller gets an ErasureOutcome to show: how many messages are gone at the provider, how
many are still in flight, how many failed for now.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Integer, String, delete, exists, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from db import UTCDateTime, db, is_postgres, utcnow
from providers.sms import ProviderError
from subscribers.inbound_guard import forget_number
from subscribers.models import PENDING, InboundSms, SmsOutbox, Subscriber, Verification
from subscribers.ratelimit import number_key

log = logging.getLogger(__name__)

# A sign-up whose number was never confirmed is deleted after this long (counted from the
# sign-up and from the last code sent, so a resident typing a fresh code is not cut off).
UNCONFIRMED_SIGNUP_TTL = timedelta(hours=24)
# Twilio: "a message may take up to 14 days to be finalized and able to be deleted".
PROVIDER_DELETION_GIVE_UP = timedelta(days=15)
# How soon to ask again about a message Twilio has not finished with.
PROVIDER_RETRY_DELAY = timedelta(minutes=15)
# Messages the provider may list as sent to the number from a little before the sign-up
# (clock skew between us and the provider).
LIST_MARGIN = timedelta(days=1)
# How long the WAL checkpoint may wait for other connections before giving up for now.
CHECKPOINT_BUSY_MS = 5000

# Other modules delete their rows tied to a resident here (push subscriptions, ...), and
# name the provider ids of SMS they sent to the resident (deliveries), so this module
# needs no knowledge of them. Hooks run inside the erasure's transaction.
ERASE_HOOKS: list[Callable[[Subscriber], None]] = []
MESSAGE_REFS: list[Callable[[Subscriber], Iterable[str]]] = []


class ProviderDeletion(db.Model):
    """A message still to be deleted at the SMS provider after an erasure (its SID only)."""

    __tablename__ = "provider_deletion"

    provider_ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(300))


@dataclass(frozen=True)
class ErasureOutcome:
    """What happened at the SMS provider. `in_flight` (not deletable yet), `failed` and
    `queued` (not tried within ERASURE_PROVIDER_SECONDS) messages are done by housekeeping;
    `listed` is False when the provider could not be asked which messages went to the
    number (those we did not know of may then remain)."""

    deleted: int = 0
    in_flight: int = 0
    failed: int = 0
    queued: int = 0
    listed: bool = True

    @property
    def pending(self) -> int:
        return self.in_flight + self.failed + self.queued

    def as_dict(self) -> dict[str, int | bool]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> ErasureOutcome | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(deleted=int(data["deleted"]), in_flight=int(data["in_flight"]),
                       failed=int(data["failed"]), queued=int(data["queued"]), listed=bool(data["listed"]))
        except (KeyError, TypeError, ValueError):
            return None

    def summary(self) -> str:
        """One line for logs and the command line (English, like the rest of the CLI)."""
        line = (f"at the SMS provider: {self.deleted} deleted, {self.in_flight} still in flight, "
                f"{self.failed} failed")
        if self.queued:
            line += f", {self.queued} queued"
        if self.pending:
            line += " (retried automatically)"
        if not self.listed:
            line += "; the provider could not list the messages sent to the number"
        return line


def erase(subscriber: Subscriber) -> ErasureOutcome:
    """Delete a resident and everything tied to them, here and at the SMS provider.

    Commits (with anything the caller added to the session, e.g. an audit row). When a
    parallel request (a double click) erased the resident first, nothing more happens here
    and the outcome is all zeros: that request reports what the provider did.
    """
    outcome = _erase(subscriber, unconfirmed_before=None)
    return outcome if outcome is not None else ErasureOutcome()


def _erase(subscriber: Subscriber, unconfirmed_before: datetime | None,
           checkpoint: bool = True) -> ErasureOutcome | None:
    """The erasure; with `unconfirmed_before`, only if the resident is still an unconfirmed
    sign-up older than that. None when nothing was deleted (they confirmed meanwhile, or
    another request erased them first). `checkpoint=False` leaves the WAL checkpoint to a
    caller erasing many in a row."""
    refs, listed = _message_refs(subscriber)
    subscriber_id, phone = subscriber.id, subscriber.phone

    _zero_deleted_content()
    for hook in ERASE_HOOKS:
        hook(subscriber)
    if phone:
        db.session.execute(delete(InboundSms).where(InboundSms.from_phone == phone))
        forget_number(phone)
        # Codes asked for this number (decoys included: they carry only its HMAC) and any
        # text still queued to it, which holds the number itself.
        db.session.execute(delete(Verification).where(Verification.phone_key == number_key(phone)))
        db.session.execute(delete(SmsOutbox).where(SmsOutbox.to_phone == phone))
    condition = [Subscriber.id == subscriber_id]
    if unconfirmed_before is not None:
        # One conditional DELETE: a code entered at this very moment either commits first
        # (then nothing matches here) or waits for this transaction.
        condition += [Subscriber.status == PENDING, Subscriber.verified_at.is_(None),
                      Subscriber.created_at < unconfirmed_before,
                      ~exists().where(Verification.subscriber_id == subscriber_id,
                                      Verification.created_at >= unconfirmed_before)]
    if db.session.execute(delete(Subscriber).where(*condition)).rowcount != 1:
        db.session.rollback()
        return None
    if refs:
        insert = pg_insert if is_postgres() else sqlite_insert
        now = utcnow()
        db.session.execute(
            insert(ProviderDeletion)
            .values([{"provider_ref": r, "created_at": now, "next_attempt_at": now, "attempts": 0} for r in refs])
            .on_conflict_do_nothing(index_elements=[ProviderDeletion.provider_ref]))
    if subscriber in db.session:
        db.session.expunge(subscriber)
    db.session.commit()
    if checkpoint:
        checkpoint_wal()

    budget = current_app.config.get("ERASURE_PROVIDER_SECONDS", 10.0)
    deleted, in_flight, failed, queued = delete_at_provider(refs, budget_seconds=budget)
    if refs and checkpoint:
        checkpoint_wal()  # the provider_deletion rows just written hold only SIDs: tidiness
    outcome = ErasureOutcome(deleted=deleted, in_flight=in_flight, failed=failed, queued=queued, listed=listed)
    log.info("erased subscriber %s; %s", subscriber_id, outcome.summary())
    return outcome


def _message_refs(subscriber: Subscriber) -> tuple[list[str], bool]:
    """Provider ids of every SMS to or from the resident that we know of or the provider
    lists as sent to the number (codes and confirmations keep no id of their own), and
    whether that listing worked."""
    refs: dict[str, None] = {}
    # No autoflush: a row the caller added (an audit entry) would otherwise be written now
    # and, on SQLite, hold the write lock through the provider's listing below.
    with db.session.no_autoflush:
        return _collect_refs(subscriber, refs)


def _collect_refs(subscriber: Subscriber, refs: dict[str, None]) -> tuple[list[str], bool]:
    for source in MESSAGE_REFS:
        refs.update(dict.fromkeys(source(subscriber)))
    listed = True
    if subscriber.phone:
        refs.update(dict.fromkeys(db.session.scalars(
            select(InboundSms.provider_ref).where(InboundSms.from_phone == subscriber.phone))))
        try:
            since = (subscriber.created_at or utcnow()) - LIST_MARGIN
            for channel in current_app.extensions["sms_channels"].values():  # every provider we use
                sent = channel.find_sent(subscriber.phone, since)
                refs.update(dict.fromkeys(record.provider_ref for record in sent))
            voice = current_app.extensions.get("voice")
            if voice is not None:  # sign-up code calls keep no id of their own either
                refs.update(dict.fromkeys(call.provider_ref for call in voice.find_calls(subscriber.phone, since)))
        except ProviderError as exc:
            log.warning("erasure of subscriber %s: could not list the provider's messages: %s", subscriber.id, exc)
            listed = False
    return [r for r in refs if r], listed


def delete_at_provider(refs: list[str], budget_seconds: float | None = None) -> tuple[int, int, int, int]:
    """Ask the provider to delete each message; (deleted, in_flight, failed, queued).

    Holds no database transaction during the HTTP calls. Deleted (or already gone) SIDs
    leave provider_deletion; the others are kept for a later try. After an outage-type
    error the rest are not tried now: one timeout is enough to learn the provider is down.
    With `budget_seconds`, no new request starts after that long; the rest stay queued.
    """
    from alerts.routing import channel_owning

    primary = current_app.extensions["sms"]
    voice = current_app.extensions.get("voice")
    done: list[str] = []
    later: dict[str, str | None] = {}
    in_flight = failed = queued = 0
    started = time.monotonic()
    for index, ref in enumerate(refs):
        if budget_seconds is not None and time.monotonic() - started >= budget_seconds:
            queued = len(refs) - index  # untouched rows: due now, for the next housekeeping run
            break
        try:
            # The provider whose ids look like this one (Twilio SM..., SMSAPI hex or idx:,
            # a Twilio call CA...).
            if voice is not None and voice.owns_ref(ref):
                result = voice.delete_call(ref)
            else:
                result = (channel_owning(ref) or primary).delete_message(ref)
        except ProviderError as exc:
            failed += 1
            later[ref] = str(exc)[:300]
            if not exc.permanent:
                for rest in refs[index + 1:]:
                    later[rest] = "not tried: the provider was unavailable"
                failed += len(refs) - index - 1
                break
            continue
        if result == "in_flight":
            in_flight += 1
            later[ref] = None
        else:
            done.append(ref)
    now = utcnow()
    if done:
        db.session.execute(delete(ProviderDeletion).where(ProviderDeletion.provider_ref.in_(done)))
    for ref, error in later.items():
        db.session.execute(
            update(ProviderDeletion).where(ProviderDeletion.provider_ref == ref)
            .values(attempts=ProviderDeletion.attempts + 1, last_error=error,
                    next_attempt_at=now + PROVIDER_RETRY_DELAY))
    db.session.commit()
    return len(done), in_flight, failed, queued


def retry_provider_deletions(limit: int = 500, now: datetime | None = None) -> tuple[int, int, int, int]:
    """Housekeeping: try again the messages earlier erasures could not delete at the
    provider. Returns (deleted, in_flight, failed, given_up)."""
    now = now or utcnow()
    stale = db.session.scalars(select(ProviderDeletion.provider_ref)
                               .where(ProviderDeletion.created_at < now - PROVIDER_DELETION_GIVE_UP)).all()
    if stale:
        log.warning("gave up deleting %d messages at the SMS provider after %s days (first: %s); delete them "
                    "in the provider's console", len(stale), PROVIDER_DELETION_GIVE_UP.days, stale[0])
        db.session.execute(delete(ProviderDeletion).where(ProviderDeletion.provider_ref.in_(stale)))
        db.session.commit()
    refs = list(db.session.scalars(
        select(ProviderDeletion.provider_ref).where(ProviderDeletion.next_attempt_at <= now)
        .order_by(ProviderDeletion.next_attempt_at).limit(limit)))
    db.session.commit()  # end the read before the HTTP calls
    deleted, in_flight, failed, _ = delete_at_provider(refs)
    return deleted, in_flight, failed, len(stale)


def purge_unconfirmed(now: datetime | None = None, limit: int = 500) -> int:
    """Delete sign-ups whose number was never confirmed within UNCONFIRMED_SIGNUP_TTL (they
    hold a number, an IP and consent rows of someone who never became a resident).
    Returns how many were deleted."""
    cutoff = (now or utcnow()) - UNCONFIRMED_SIGNUP_TTL
    candidates = db.session.scalars(
        select(Subscriber).where(
            Subscriber.status == PENDING, Subscriber.verified_at.is_(None), Subscriber.created_at < cutoff,
            ~exists().where(Verification.subscriber_id == Subscriber.id, Verification.created_at >= cutoff))
        .order_by(Subscriber.id).limit(limit)
    ).all()
    purged = 0
    for subscriber in candidates:
        if _erase(subscriber, unconfirmed_before=cutoff, checkpoint=False) is not None:
            purged += 1
    if purged:
        checkpoint_wal()
    return purged


def housekeeping() -> str | None:
    """The scheduler's privacy job: purge unconfirmed sign-ups, retry provider deletions,
    drop expired hint windows."""
    from subscribers.inbound_guard import purge_old_hints

    purged = purge_unconfirmed()
    deleted, in_flight, failed, given_up = retry_provider_deletions()
    hints = purge_old_hints()
    db.session.commit()
    # Every run, not only after an erasure: one that found the WAL busy is finished here,
    # so an erased number never lives on in old WAL frames for longer than an hour.
    checkpoint_wal()
    if not (purged or deleted or in_flight or failed or given_up or hints):
        return None
    return (f"purged {purged} unconfirmed sign-ups; at the SMS provider {deleted} deleted, {in_flight} in flight, "
            f"{failed} failed, {given_up} given up; {hints} old hint windows dropped")


# --- the database files -------------------------------------------------------------------

def _zero_deleted_content() -> None:
    """SQLite: make this connection overwrite deleted rows with zeros instead of leaving
    them in free pages (a per-connection setting; it stays on for the pooled connection,
    which only costs some extra writes on later deletes)."""
    if not is_postgres():
        db.session.execute(text("PRAGMA secure_delete=ON"))


def checkpoint_wal() -> bool:
    """SQLite: copy the WAL into the database file and truncate it, so deleted rows do not
    live on in old WAL frames. True when the WAL is empty now (or not SQLite); False when
    other connections kept it busy (it is then truncated at a later checkpoint)."""
    if is_postgres():
        return True
    with db.engine.connect() as conn:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={CHECKPOINT_BUSY_MS}")
        try:
            busy, _, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        finally:
            conn.exec_driver_sql("PRAGMA busy_timeout=30000")  # db.py's value for every connection
    if busy:
        log.warning("the SQLite WAL could not be checkpointed (busy); the hourly privacy job tries again")
    return not busy
