"""Staff messages from draft to residents, under the two-person rule.

- An editor writes a draft and submits it; an approver approves it (sent now, or scheduled
  for its send time) or rejects it. Feed alerts below the automatic level arrive already
  submitted ("awaiting").
- Two-person rule: a message that reaches the whole gmina, or in ``emergency``, needs the
  approval of someone who did not write or edit it. Other messages an approver may send
  alone. The reach is the real one: a correction also goes to everyone who got an earlier
  message of its chain, so its chain's areas count too.
- Approval is of one immutable version: the approver posts back the fingerprint of what
  their page showed; a change since (a new version) refuses the approval as stale, and what
  is sent is rendered from the frozen copy (AlertVersion), never from the editable row.
- Every step locks the message first (publish.lock_alert), so an edit and an approval of
  the same message take turns, and the audit log lists them in the order they happened.
- Break glass: a lone approver may send an emergency at once with a written reason; the
  audit log flags it.
- Exercise messages go only to the staff test group and need no second person.
- Every step is in the audit log.

Functions raise AlertError with a stable code (translated as error.<code>) and never
commit half a step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

from alerts import publish as lifecycle
from alerts import quiet
from alerts.models import (
    AWAITING,
    CHANNELS,
    DRAFT,
    KIND_CANCEL,
    KIND_UPDATE,
    PUBLISHED,
    REJECTED,
    SCHEDULED,
    Alert,
    AlertVersion,
)
from alerts.publish import AlertError, Draft
from db import db, utcnow
from staff import audit
from staff.models import StaffUser

BREAK_GLASS_MIN_REASON = 10


def _chain(alert: Alert) -> list[Alert]:
    """The message and every earlier one it corrects or withdraws, newest first."""
    nodes, node = [], alert
    while node is not None:
        nodes.append(node)
        node = node.parent
    return nodes


def reach_areas(alert: Alert) -> list[str] | None:
    """The areas a message really reaches (None: the whole gmina): its own, plus those of
    every earlier message of its chain, since an update or cancellation also goes to
    everyone who got one of them (an automatic IMGW warning is usually gmina-wide)."""
    codes: set[str] = set()
    for node in _chain(alert):
        if node.areas is None:
            return None
        codes.update(node.areas)
    if codes >= set(current_app.extensions["municipality"].area_codes()):
        return None
    return sorted(codes)


def two_person_needed(alert: Alert) -> bool:
    if alert.exercise:
        return False
    return any(node.category == "emergency" for node in _chain(alert)) or reach_areas(alert) is None


def authors(alert: Alert) -> set[int]:
    ids = {alert.created_by} if alert.created_by else set()
    return ids | set(alert.meta.get("edited_by", []))


# --- reading the compose form -------------------------------------------------------------

def _local(raw: str | None, field: str) -> datetime | None:
    """A datetime-local field ("2026-11-26T18:30") in the gmina's time, as aware UTC."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        naive = datetime.fromisoformat(raw)
    except ValueError:
        raise AlertError("datetime_invalid", field=field) from None
    zone = ZoneInfo(current_app.extensions["municipality"].timezone)
    return naive.replace(tzinfo=zone).astimezone(ZoneInfo("UTC"))


def draft_from_form(form: Any, *, parent: Alert | None = None) -> Draft:
    """Read the compose form (a MultiDict). Raises AlertError for what cannot be read;
    ``lifecycle.validate`` checks the rest."""
    category = (form.get("category") or "").strip() if parent is None else parent.category
    raw_level = (form.get("level") or "").strip()
    try:
        level = int(raw_level) if raw_level else None
    except ValueError:
        raise AlertError("level_invalid", field="level") from None
    target = form.get("target", "all")
    areas = None if target == "all" else [a for a in form.getlist("areas") if a]
    if target != "all" and not areas:
        raise AlertError("areas_missing", field="areas")
    channels = [c for c in form.getlist("channels") if c]
    if any(c not in CHANNELS for c in channels):
        raise AlertError("channel_unknown", field="channels")
    send_at = _local(form.get("send_at"), "send_at") if form.get("when") == "later" else None
    if form.get("when") == "later" and send_at is None:
        raise AlertError("send_at_missing", field="send_at")
    expires_at = _local(form.get("expires_at"), "expires_at")
    starts_at = send_at or utcnow()
    if expires_at is None and category:
        # No end given: the category's default validity, so "in force" does not fill up with
        # messages nobody ended (a cancellation gets no end: save_draft clears it).
        # From now at the earliest: a send time in the past is refused for what it is.
        expires_at = max(starts_at, utcnow()) + current_app.extensions["municipality"].validity(category)
    return Draft(
        category=category, level=level,
        titles={lang: form.get(f"title_{lang}", "") for lang in ("pl", "en", "uk")},
        texts={lang: form.get(f"text_{lang}", "") for lang in ("pl", "en", "uk")},
        areas=areas, channels=channels, starts_at=starts_at, expires_at=expires_at, send_at=send_at,
        keep_diacritics=form.get("keep_diacritics") in ("1", "on", "true"),
        exercise=form.get("exercise") in ("1", "on", "true"),
        spoken={lang: form.get(f"spoken_{lang}", "") for lang in ("pl",) if form.get(f"spoken_{lang}")},
        groups=sorted(set(form.getlist("groups"))) if form.get("audience") == "groups" else None,
    )


# --- the steps ---------------------------------------------------------------------------

def save_draft(user: StaffUser, draft: Draft, alert: Alert | None = None, *, parent: Alert | None = None,
               kind: str | None = None) -> Alert:
    """Create a draft (or a follow-up of `parent`), or change one not yet sent."""
    if alert is None:
        if parent is not None:
            created = lifecycle.follow_up(parent, kind or KIND_UPDATE, draft, created_by=user.id)
        else:
            created = lifecycle.create_alert(draft, created_by=user.id)
        audit.record("draft_created", staff=user, target=f"alert:{created.id}", commit=False,
                     category=created.category, kind=created.kind, parent=parent.id if parent else None)
        db.session.commit()
        return created
    alert = lifecycle.lock_alert(alert.id)
    if alert.status not in (DRAFT, AWAITING):
        raise AlertError("not_editable")
    if alert.parent is not None:
        # A correction keeps what follow_up fixed when it was created.
        draft.category, draft.exercise = alert.category, alert.parent.exercise
        if alert.kind == KIND_CANCEL:
            draft.level, draft.areas, draft.channels = alert.parent.level, alert.parent.areas, alert.parent.channels
            draft.groups = alert.parent.groups
            draft.expires_at = None
    lifecycle.validate(draft)
    areas = draft.areas
    if areas is not None and set(areas) >= set(current_app.extensions["municipality"].area_codes()):
        areas = None
    alert.category, alert.level = draft.category, draft.level
    alert.titles = {k: v.strip() for k, v in draft.titles.items() if v and v.strip()}
    alert.texts = {k: v.strip() for k, v in draft.texts.items() if v and v.strip()}
    alert.areas = sorted(set(areas)) if areas is not None else None
    alert.channels = list(dict.fromkeys(draft.channels))
    alert.starts_at, alert.expires_at, alert.send_at = draft.starts_at, draft.expires_at, draft.send_at
    alert.keep_diacritics, alert.exercise = draft.keep_diacritics, draft.exercise
    alert.spoken = lifecycle.clean_spoken(draft.spoken)
    alert.groups = sorted(set(draft.groups)) if draft.groups else None
    if user.id != alert.created_by:
        alert.meta = {**alert.meta, "edited_by": sorted({*alert.meta.get("edited_by", []), user.id})}
    # A new version: an approval given on the page of the previous one is refused as stale.
    alert.version += 1
    audit.record("draft_edited", staff=user, target=f"alert:{alert.id}", commit=False, version=alert.version)
    db.session.commit()
    return alert


def submit(user: StaffUser, alert: Alert) -> None:
    """Ask for approval."""
    alert = lifecycle.lock_alert(alert.id)
    if alert.status != DRAFT:
        raise AlertError("not_editable")
    alert.status = AWAITING
    audit.record("submitted", staff=user, target=f"alert:{alert.id}", commit=False)
    db.session.commit()


def can_approve(user: StaffUser, alert: Alert) -> str | None:
    """None when `user` may approve `alert` now, else the refusal code."""
    if not user.can("approver"):
        return "not_allowed"
    if alert.status not in (DRAFT, AWAITING):
        return "not_awaiting"
    if alert.status == DRAFT and two_person_needed(alert):
        return "needs_second_person"  # the author's own draft: submit it for approval
    if two_person_needed(alert) and user.id in authors(alert):
        return "self_approval"
    return None


def _refuse(user: StaffUser, alert: Alert, code: str) -> AlertError:
    """Log a refused approval (its own commit, which ends the lock) and return the error."""
    db.session.rollback()
    audit.record("approval_refused", staff=user, target=f"alert:{alert.id}", reason=code)
    return AlertError(code)


def _check_seen(user: StaffUser, alert: Alert, seen: str | None) -> None:
    if seen is not None and seen != lifecycle.fingerprint(alert):
        raise _refuse(user, alert, "version_changed")


def approve(user: StaffUser, alert: Alert, now: datetime | None = None, *,
            seen: str | None = None, quiet_reason: str | None = None) -> dict[str, int] | None:
    """Send now (returns deliveries queued per channel), or schedule for send_at (None).

    `seen` is the fingerprint the approver's page showed (the web always passes it): the
    approval is refused as ``version_changed`` unless it is the current version's. The
    approved content is frozen (AlertVersion) in the same transaction. With `quiet_reason`
    a routine message the quiet hours would hold goes out at once (alerts/quiet.py), and the
    audit log keeps the reason, flagged."""
    now = now or utcnow()
    alert = lifecycle.lock_alert(alert.id)
    refusal = can_approve(user, alert)
    if refusal:
        raise _refuse(user, alert, refusal)
    _check_seen(user, alert, seen)
    lifecycle.validate(_as_draft(alert, now), now)
    if quiet_reason is not None:
        quiet_reason = " ".join(quiet_reason.split())[:300]
        if len(quiet_reason) < quiet.MIN_REASON:
            db.session.rollback()
            raise AlertError("quiet_reason", field="quiet_reason", minimum=quiet.MIN_REASON)
        if quiet.held_until(alert, alert.send_at if alert.send_at and alert.send_at > now else now):
            quiet.override(alert, quiet_reason)
            audit.record("quiet_hours_override", staff=user, target=f"alert:{alert.id}", flagged=True,
                         commit=False, reason=quiet_reason)
    alert.approved_by, alert.approved_at = user.id, now
    version = lifecycle.freeze(alert, user.id, now)
    if alert.send_at is not None and alert.send_at > now:
        alert.status = SCHEDULED
        audit.record("scheduled", staff=user, target=f"alert:{alert.id}", commit=False,
                     send_at=alert.send_at.isoformat(), version=version.number, fingerprint=version.fingerprint)
        db.session.commit()
        return None
    audit.record("approved", staff=user, target=f"alert:{alert.id}", commit=False, version=version.number,
                 fingerprint=version.fingerprint)
    counts = _publish(alert, now)
    audit.record("sent", staff=user, target=f"alert:{alert.id}", queued=counts, commit=False)
    db.session.commit()
    return counts


def break_glass(user: StaffUser, alert: Alert, reason: str | None, now: datetime | None = None, *,
                seen: str | None = None) -> dict[str, int]:
    """A lone approver sends an emergency now, with a reason; flagged in the audit log.
    `seen` as for ``approve``."""
    now = now or utcnow()
    reason = (reason or "").strip()
    alert = lifecycle.lock_alert(alert.id)
    if not user.can("approver"):
        raise AlertError("not_allowed")
    if alert.category != "emergency":
        raise AlertError("break_glass_emergency_only")
    if alert.status not in (DRAFT, AWAITING):
        raise AlertError("not_awaiting")
    if len(reason) < BREAK_GLASS_MIN_REASON:
        raise AlertError("break_glass_reason", field="reason", minimum=BREAK_GLASS_MIN_REASON)
    _check_seen(user, alert, seen)
    lifecycle.validate(_as_draft(alert, now), now)
    alert.approved_by, alert.approved_at, alert.break_glass = user.id, now, True
    alert.meta = {**alert.meta, "break_glass_reason": reason}
    alert.send_at = None
    version = lifecycle.freeze(alert, user.id, now)
    audit.record("break_glass", staff=user, target=f"alert:{alert.id}", flagged=True, commit=False, reason=reason,
                 version=version.number, fingerprint=version.fingerprint)
    counts = _publish(alert, now)
    audit.record("sent", staff=user, target=f"alert:{alert.id}", queued=counts, break_glass=True, commit=False)
    db.session.commit()
    return counts


def reject(user: StaffUser, alert: Alert, reason: str | None) -> None:
    if not user.can("approver"):
        raise AlertError("not_allowed")
    alert = lifecycle.lock_alert(alert.id)
    if alert.status not in (AWAITING, SCHEDULED):
        raise AlertError("not_awaiting")
    alert.status = REJECTED
    alert.meta = {**alert.meta, "rejected_by": user.id, "reason": (reason or "").strip()[:300]}
    audit.record("rejected", staff=user, target=f"alert:{alert.id}", commit=False, reason=(reason or "")[:300])
    db.session.commit()


def unschedule(user: StaffUser, alert: Alert) -> None:
    """Stop a scheduled message before its time: back to a draft, approval needed again."""
    if not user.can("approver"):
        raise AlertError("not_allowed")
    alert = lifecycle.lock_alert(alert.id)  # the scheduler may be sending it right now
    if alert.status != SCHEDULED:
        raise AlertError("not_awaiting")
    alert.status, alert.approved_by, alert.approved_at = DRAFT, None, None
    # A new version: the frozen copy of the old one no longer counts, the next approval
    # freezes this one.
    alert.version += 1
    audit.record("unscheduled", staff=user, target=f"alert:{alert.id}", commit=False)
    db.session.commit()


def _deletable(alert: Alert) -> bool:
    approved_once = db.session.scalar(select(AlertVersion.id).where(AlertVersion.alert_id == alert.id).limit(1))
    return alert.status == DRAFT and alert.source == "manual" and approved_once is None


def can_delete(user: StaffUser, alert: Alert) -> bool:
    """Whether `user` may delete `alert` (for the page; delete_draft decides under the lock)."""
    return _deletable(alert) and (alert.created_by == user.id or user.can("approver"))


def delete_draft(user: StaffUser, alert: Alert) -> None:
    """Delete a draft written in the office and never approved: its author may, and so may
    an approver; the audit log keeps that it existed and what it was called. A draft that was
    approved once (then unscheduled) stays: its frozen approved version is evidence, and the
    database refuses to delete one."""
    alert = lifecycle.lock_alert(alert.id)
    if not _deletable(alert):
        raise AlertError("not_deletable")
    if alert.created_by != user.id and not user.can("approver"):
        raise AlertError("not_allowed")
    audit.record("draft_deleted", staff=user, target=f"alert:{alert.id}", commit=False,
                 title=alert.title("pl")[:200], kind=alert.kind)
    db.session.delete(alert)
    db.session.commit()


def _publish(alert: Alert, now: datetime) -> dict[str, int]:
    """Publish, or undo this step's pending changes (approval, audit rows) if it refuses."""
    try:
        return lifecycle.publish(alert, now, commit=False)
    except AlertError:
        db.session.rollback()
        raise


def can_follow_up(alert: Alert) -> bool:
    """Only the newest sent message of a chain can be corrected or withdrawn."""
    return alert.status == PUBLISHED


def _as_draft(alert: Alert, now: datetime) -> Draft:
    # A send time that passed while the message waited for approval means "now".
    send_at = alert.send_at if alert.send_at is not None and alert.send_at > now else None
    return Draft(category=alert.category, level=alert.level, titles=dict(alert.titles), texts=dict(alert.texts),
                 areas=alert.areas, channels=list(alert.channels), starts_at=alert.starts_at,
                 expires_at=alert.expires_at, send_at=send_at, keep_diacritics=alert.keep_diacritics,
                 exercise=alert.exercise, spoken=dict(alert.spoken) if alert.spoken else None,
                 groups=list(alert.groups) if alert.groups else None)
