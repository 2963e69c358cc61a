"""The append-only audit log: who did what, when, from where.

Append-only in fact, not by convention:
- On PostgreSQL a trigger refuses every UPDATE and DELETE of a row (created by the
  migration, and by ``create_all`` through the DDL event below, so test schemas have it).
- Each row carries ``hash`` = SHA-256 over its own fields and the previous row's hash, so a
  row changed or removed on SQLite (or by a database superuser) breaks the chain;
  ``flask audit verify`` names the first bad row. Rows are chained at commit, and writers
  take turns there (an advisory lock on PostgreSQL, the write lock on SQLite), so parallel
  requests never fork the chain, and the row order is the order in which things happened.

The chain proves the log was not edited afterwards; it cannot prove the newest rows were not
cut off, nor stand against someone who rewrites the whole chain: keep a copy of
``flask audit verify``'s last hash outside the database for that.

Details hold ids, never residents' personal data (erasure deletes a resident, never an audit
row: the log still says "subscriber:5 erased", and nothing about who that was).
"""

from __future__ import annotations

import getpass
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import has_request_context, request
from sqlalchemy import JSON, Boolean, ForeignKey, String, event, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from db import UTCDateTime, db, refuse_row_changes, utcnow
from locks import advisory_lock

# pg_advisory_xact_lock key of the chain's writers ("audit" in ASCII).
CHAIN_LOCK_KEY = 0x6175646974
GENESIS = "0" * 64


class AuditEvent(db.Model):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="SET NULL"))
    # A copy, so the log still says who it was after an account is removed.
    staff_email: Mapped[str | None] = mapped_column(String(254))
    # Who acted: the staff member's e-mail, "cli:<OS user>" for the command line, "system".
    actor: Mapped[str | None] = mapped_column(String(280))
    action: Mapped[str] = mapped_column(String(40), index=True)
    target: Mapped[str | None] = mapped_column(String(80))  # e.g. "alert:12", "subscriber:5"
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Actions staff must look at afterwards (break glass, lockouts).
    flagged: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


# PostgreSQL refuses to change or remove an audit row, whoever asks (db.refuse_row_changes;
# the hash chain does not survive a TRUNCATE unnoticed).
refuse_row_changes(AuditEvent.__table__, "audit_event_append_only", "append-only")


def row_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """SHA-256 over the previous row's hash and this row's fields (canonical JSON)."""
    data = json.dumps([prev_hash, fields], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()


def hashed_fields(event: AuditEvent) -> dict[str, Any]:
    return {
        "at": event.at.isoformat(), "staff_id": event.staff_id, "staff_email": event.staff_email,
        "actor": event.actor, "action": event.action, "target": event.target, "detail": event.detail or {},
        "flagged": bool(event.flagged), "ip": event.ip, "user_agent": event.user_agent,
    }


def cli_actor() -> str:
    """The actor of a command-line action: ``cli:<OS user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (some containers)
        return "cli:unknown"


PENDING = "audit_pending"  # Session.info key: this transaction's events, in the order recorded


def record(action: str, *, staff: Any = None, actor: str | None = None, target: str | None = None,
           flagged: bool = False, commit: bool = True, **detail: Any) -> AuditEvent:
    """Record one audit event (and commit, unless the caller commits with its own change).

    The event is written at commit, at the end of the chain: the chain's lock is then the
    last lock the transaction takes, so a transaction holding it never waits for a row
    another one holds while waiting for the chain (no deadlock), and the log's order is the
    order in which the steps committed. A rollback drops the event with the step."""
    email = getattr(staff, "email", None)
    if actor is None:
        actor = email or ("system" if not has_request_context() else None)
    event = AuditEvent(
        at=utcnow(), action=action, staff_id=getattr(staff, "id", None), staff_email=email, actor=actor,
        target=target, flagged=flagged,
        # Stored as it reads back (tuples become lists, keys strings), so the hash verifies.
        detail=json.loads(json.dumps(detail, ensure_ascii=False, default=str)),
        ip=request.remote_addr if has_request_context() else "cli",
        user_agent=(request.headers.get("User-Agent") or "")[:400] if has_request_context() else None,
    )
    db.session.info.setdefault(PENDING, []).append(event)
    if commit:
        db.session.commit()
    return event


@event.listens_for(Session, "before_commit")
def _chain_pending(session: Session) -> None:
    """Append this transaction's events to the chain, as the commit's last writes."""
    pending = session.info.pop(PENDING, None)
    if not pending:
        return
    session.flush()  # the step's own changes (and their row locks) come first
    advisory_lock(CHAIN_LOCK_KEY, session)
    prev = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)) or GENESIS
    now = utcnow()
    for item in pending:
        # Stamped when it takes its place in the chain, so time and row order agree.
        item.at = max(item.at, now)
        item.prev_hash = prev
        item.hash = prev = row_hash(prev, hashed_fields(item))
        session.add(item)
        session.flush()  # one at a time: ids follow the chain


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(PENDING, None)


@dataclass
class ChainReport:
    rows: int
    ok: bool
    bad_id: int | None = None
    problem: str | None = None
    last_hash: str = GENESIS


def verify() -> ChainReport:
    """Walk the chain in id order; the first row whose link or hash does not match is named."""
    prev, rows = GENESIS, 0
    for event in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)
                                    .execution_options(yield_per=1000, populate_existing=True)):
        rows += 1
        if event.prev_hash != prev:
            return ChainReport(rows, False, event.id, "does not follow the previous row (a row removed or inserted)",
                               prev)
        if event.hash != row_hash(prev, hashed_fields(event)):
            return ChainReport(rows, False, event.id, "its content was changed", prev)
        prev = event.hash
    return ChainReport(rows, True, last_hash=prev)
