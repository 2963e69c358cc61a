"""The append-only audit log: who did what, when, from where.

Every staff action calls ``record``; rows are never updated or deleted by the application.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import has_request_context, request
from sqlalchemy import JSON, Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from db import UTCDateTime, db, utcnow


class AuditEvent(db.Model):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="SET NULL"))
    # A copy, so the log still says who it was after an account is removed.
    staff_email: Mapped[str | None] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(40), index=True)
    target: Mapped[str | None] = mapped_column(String(80))  # e.g. "alert:12", "subscriber:5"
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Actions staff must look at afterwards (break glass, lockouts).
    flagged: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))


def record(action: str, *, staff: Any = None, target: str | None = None, flagged: bool = False,
           commit: bool = True, **detail: Any) -> AuditEvent:
    """Write one audit event (and commit, unless the caller commits with its own change)."""
    event = AuditEvent(
        action=action, staff_id=getattr(staff, "id", None), staff_email=getattr(staff, "email", None),
        target=target, detail=detail, flagged=flagged,
        ip=request.remote_addr if has_request_context() else "cli",
        user_agent=(request.headers.get("User-Agent") or "")[:400] if has_request_context() else None,
    )
    db.session.add(event)
    if commit:
        db.session.commit()
    return event
