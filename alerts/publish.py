"""An alert's lifecycle: create (validated), publish (fan out), update, cancel, expire.

Publishing changes the alert and writes its outbox rows in one transaction (a transactional
outbox): either residents will get it, or nothing happened. The dispatcher sends later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import logging

from flask import current_app
from sqlalchemy import select, union, update

from alerts import match, outbox
from alerts.models import (
    CALL_ANSWERED,
    CALL_VOICEMAIL,
    CANCELLED,
    CHANNELS,
    DELIVERED,
    DELIVERY_EXPIRED,
    AWAITING,
    DRAFT,
    EXPIRED,
    KIND_ALERT,
    KIND_CANCEL,
    KIND_UPDATE,
    PENDING,
    PUBLISHED,
    SCHEDULED,
    SKIPPED,
    UPDATED,
    Alert,
    AlertVersion,
    Delivery,
)
from db import db, utcnow
from locks import sqlite_write_lock
from municipality import CATEGORIES, LANGUAGES
from rollcall import match as rollcall_match
from rollcall.models import SOURCE as ROLLCALL


log = logging.getLogger(__name__)

TITLE_MAX_CHARS = 120
TEXT_MAX_CHARS = 1500


class AlertError(ValueError):
    """An alert that cannot be created or published as asked; `code` is stable (forms, API)."""

    def __init__(self, code: str, *, field: str | None = None, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.field = field
        self.params = params


@dataclass
class Draft:
    category: str
    titles: dict[str, str]
    texts: dict[str, str]
    level: int | None = None
    areas: list[str] | None = None  # None: the whole gmina
    channels: list[str] = field(default_factory=lambda: list(CHANNELS))
    starts_at: datetime | None = None
    expires_at: datetime | None = None
    send_at: datetime | None = None
    keep_diacritics: bool = False
    exercise: bool = False
    # Staff's own wording for a call, per language (empty: made from the text).
    spoken: dict[str, str] | None = None
    # Only the members of these groups (profile [[groups]]); None: everyone who chose it.
    groups: list[str] | None = None
    source: str = "manual"
    external_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def validate(draft: Draft, now: datetime | None = None) -> None:
    """Raise AlertError for the first problem found."""
    now = now or utcnow()
    m = current_app.extensions["municipality"]
    if not (draft.category or "").strip():
        raise AlertError("category_missing", field="category")
    category = CATEGORIES.get(draft.category)
    if category is None or draft.category not in m.categories:
        raise AlertError("category_unknown", field="category", value=draft.category)
    if category.hazard:
        if draft.level not in (1, 2, 3):
            raise AlertError("level_invalid", field="level")
    elif draft.level is not None:
        raise AlertError("level_not_applicable", field="level")
    if not (draft.titles.get("pl") or "").strip():
        raise AlertError("title_missing", field="title_pl")
    if not (draft.texts.get("pl") or "").strip():
        raise AlertError("text_missing", field="text_pl")
    # Hard limits: the full text must fit a push message (4 KB) and a readable page; the SMS
    # is cut to SMS_MAX_SEGMENTS with a link anyway.
    for lang, title in draft.titles.items():
        if len((title or "").strip()) > TITLE_MAX_CHARS:
            raise AlertError("title_too_long", field=f"title_{lang}", limit=TITLE_MAX_CHARS)
    for lang, text in draft.texts.items():
        if len((text or "").strip()) > TEXT_MAX_CHARS:
            raise AlertError("text_too_long", field=f"text_{lang}", limit=TEXT_MAX_CHARS)
    for lang, text in (draft.spoken or {}).items():
        if len((text or "").strip()) > TEXT_MAX_CHARS:
            raise AlertError("text_too_long", field=f"spoken_{lang}", limit=TEXT_MAX_CHARS)
    for lang in (*draft.titles, *draft.texts, *(draft.spoken or {})):
        if lang not in LANGUAGES:
            raise AlertError("language_unknown", field="language", value=lang)
    if draft.areas is not None:
        if not draft.areas:
            raise AlertError("areas_missing", field="areas")
        unknown = [a for a in draft.areas if m.area(a) is None]
        if unknown:
            raise AlertError("area_unknown", field="areas", value=unknown[0])
    if draft.groups is not None:
        if not draft.groups:
            raise AlertError("groups_missing", field="groups")
        unknown_groups = [g for g in draft.groups if m.group(g) is None]
        if unknown_groups:
            raise AlertError("group_unknown", field="groups", value=unknown_groups[0])
    if not draft.channels:
        raise AlertError("channels_missing", field="channels")
    if any(c not in CHANNELS for c in draft.channels):
        raise AlertError("channel_unknown", field="channels")
    if draft.expires_at and draft.starts_at and draft.expires_at <= draft.starts_at:
        raise AlertError("expires_before_start", field="expires_at")
    if draft.expires_at and draft.expires_at <= now:
        raise AlertError("expires_in_past", field="expires_at")
    if draft.send_at and draft.send_at < now:
        raise AlertError("send_at_in_past", field="send_at")
    if draft.send_at and draft.expires_at and draft.send_at >= draft.expires_at:
        raise AlertError("send_after_expiry", field="send_at")


def create_alert(draft: Draft, *, kind: str = KIND_ALERT, parent: Alert | None = None,
                 created_by: int | None = None) -> Alert:
    """Validate and store an alert as a draft (not sent until published)."""
    validate(draft)
    areas = None
    if draft.areas is not None:
        all_codes = current_app.extensions["municipality"].area_codes()
        areas = None if set(draft.areas) >= set(all_codes) else sorted(set(draft.areas))
    alert = Alert(
        source=draft.source, external_id=draft.external_id, kind=kind, parent_id=parent.id if parent else None,
        category=draft.category, level=draft.level,
        titles={k: v.strip() for k, v in draft.titles.items() if v and v.strip()},
        texts={k: v.strip() for k, v in draft.texts.items() if v and v.strip()},
        areas=areas, channels=list(dict.fromkeys(draft.channels)), starts_at=draft.starts_at,
        expires_at=draft.expires_at, send_at=draft.send_at, keep_diacritics=draft.keep_diacritics,
        exercise=draft.exercise, spoken=clean_spoken(draft.spoken),
        groups=sorted(set(draft.groups)) if draft.groups else None,
        status=DRAFT, created_by=created_by, meta=dict(draft.meta),
    )
    db.session.add(alert)
    db.session.flush()
    return alert


# Outcomes of a call whose resident heard the message (alerts/call_outcome.py).
HEARD_CALL = (CALL_ANSWERED, CALL_VOICEMAIL)


# --- versions and locks ---------------------------------------------------------------------

CONTENT_FIELDS = ("kind", "category", "level", "titles", "texts", "areas", "channels", "starts_at",
                  "expires_at", "send_at", "keep_diacritics", "exercise", "spoken", "groups")


def clean_spoken(spoken: dict[str, str] | None) -> dict[str, str] | None:
    """Staff's spoken wording without empty languages; None when there is none."""
    kept = {k: " ".join(v.split()) for k, v in (spoken or {}).items() if v and v.strip()}
    return kept or None


def content(alert: Alert | AlertVersion) -> dict[str, Any]:
    """Everything that decides what residents read and who gets it."""
    values = {name: getattr(alert, name) for name in CONTENT_FIELDS}
    for name in ("spoken", "groups"):
        if values[name] is None:
            # Messages approved before calls and groups existed keep their fingerprint.
            del values[name]
    for name in ("starts_at", "expires_at", "send_at"):
        values[name] = values[name].isoformat() if values[name] is not None else None
    return values


def fingerprint(alert: Alert) -> str:
    """The alert's version and content as one hash: the approver's page shows it and the
    approval must post it back, so what is approved is exactly what was seen."""
    data = {"version": alert.version, "parent": alert.parent_id, **content(alert)}
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def lock_alert(alert_id: int) -> Alert:
    """Lock an alert and every earlier message of its chain until commit, and reload them.

    Every state change (edit, submit, approve, publish, cancel) calls this first, so two of
    them on one message take turns and each sees what the other did. PostgreSQL: SELECT ...
    FOR UPDATE, always from the newest message towards the first (one order, no deadlock).
    SQLite: the database's write lock (locks.py)."""
    sqlite_write_lock()
    db.session.flush()
    alert = db.session.get(Alert, alert_id, with_for_update=True, populate_existing=True)
    if alert is None:
        raise AlertError("not_found")
    node = alert
    while node.parent_id is not None:
        node = db.session.get(Alert, node.parent_id, with_for_update=True, populate_existing=True)
    return alert


def freeze(alert: Alert, approved_by: int | None, now: datetime) -> AlertVersion:
    """Store the approved content as an immutable version; residents get this one."""
    version = AlertVersion(alert_id=alert.id, number=alert.version, fingerprint=fingerprint(alert),
                           approved_by=approved_by, approved_at=now, **{
                               name: getattr(alert, name) for name in CONTENT_FIELDS})
    db.session.add(version)
    db.session.flush()
    return version


def active_channels(alert: Alert | AlertVersion) -> list[str]:
    # Push only goes out when the gmina configured VAPID keys, calls when it set up a number.
    off = {c for c, ext in (("push", "webpush"), ("voice", "voice")) if current_app.extensions.get(ext) is None}
    return [c for c in alert.channels if c not in off]


def _chain_ids(alert: Alert) -> list[int]:
    ids, node = [], alert.parent
    while node is not None:
        ids.append(node.id)
        node = node.parent
    return ids


def recipients(alert: Alert, channel: str, version: AlertVersion | None = None):  # noqa: ANN201 - a Select
    """Who `alert` goes to on `channel`: the one definition publishing and the preview share.
    Publishing passes the approved `version`, whose content decides (the preview: the draft).

    An update goes to everyone who got an earlier message of the chain and to anyone who
    matches it now; a cancellation only to those who got an earlier message.
    """
    if alert.source == ROLLCALL:
        # A roll-call asks its members, whatever they chose (rollcall/match.py).
        return rollcall_match.recipients(alert, channel)
    chain = _chain_ids(alert)
    target = version if version is not None else alert
    if alert.kind == KIND_CANCEL:
        return match.earlier_recipients(chain, channel)
    if alert.kind == KIND_UPDATE:
        return select(union(match.earlier_recipients(chain, channel), match.matching(target, channel))
                      .subquery().c.id)
    return match.matching(target, channel)


def publish(alert: Alert, now: datetime | None = None, *, commit: bool = True) -> dict[str, int]:
    """Publish now: fan out to the outbox and commit (or leave the commit, and the locks, to
    a caller that writes the audit row of the same step). Returns deliveries queued per channel.

    An expired alert is never sent (it becomes EXPIRED with nothing queued). An update goes
    to everyone who got an earlier message of the chain and to anyone who matches it now; a
    cancellation only to those who got an earlier message. Earlier messages still waiting
    in the outbox are skipped: nobody gets a warning and its withdrawal back to back.
    """
    now = now or utcnow()
    alert = lock_alert(alert.id)
    if alert.status not in (DRAFT, AWAITING, SCHEDULED):
        raise AlertError("already_published")
    if alert.parent_id is not None:
        # The chain may have moved on since this follow-up was written (another correction or
        # a withdrawal went out): only the newest sent message can be corrected or withdrawn.
        if alert.parent is None or alert.parent.status != PUBLISHED:
            raise AlertError("parent_not_published")
    if alert.expires_at is not None and alert.expires_at <= now:
        alert.status = EXPIRED
        db.session.commit()
        return {c: 0 for c in active_channels(alert)}
    # What goes out, and to whom, is the approved version, even if the row changed since
    # (a feed rewrites a waiting warning in place). A message published without a staff
    # approval (a feed's automatic warning, the command line) is frozen now.
    version = alert.approved_version
    if version is None:
        if alert.status == SCHEDULED:
            # Approved for later, then changed: that change was never approved.
            raise AlertError("version_changed")
        version = freeze(alert, alert.approved_by, now)

    chain = _chain_ids(alert)
    counts: dict[str, int] = {}
    if chain:
        # A call answered (or left on a machine) and waiting for its next attempt was heard:
        # it ends delivered, so the follow-up reaches that resident like everyone who got it.
        db.session.execute(
            update(Delivery).where(Delivery.alert_id.in_(chain), Delivery.status == PENDING,
                                   Delivery.channel == "voice", Delivery.outcome.in_(HEARD_CALL))
            .values(status=DELIVERED, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        db.session.execute(
            update(Delivery).where(Delivery.alert_id.in_(chain), Delivery.status == PENDING)
            .values(status=SKIPPED, error="superseded", updated_at=now)
            .execution_options(synchronize_session=False)
        )
        db.session.execute(
            update(Alert).where(Alert.id.in_(chain), Alert.status == PUBLISHED)
            .values(status=CANCELLED if alert.kind == KIND_CANCEL else UPDATED)
            .execution_options(synchronize_session=False)
        )
    for channel in active_channels(version):
        counts[channel] = outbox.insert_deliveries(alert, channel, recipients(alert, channel, version), now)
    alert.status = PUBLISHED
    alert.published_at = now
    if commit:
        db.session.commit()
    return counts


def schedule(alert: Alert) -> None:
    """Approve an alert with a send_at in the future: the scheduler publishes it then."""
    alert = lock_alert(alert.id)
    if alert.status not in (DRAFT, AWAITING) or alert.send_at is None:
        raise AlertError("not_schedulable")
    alert.status = SCHEDULED
    db.session.commit()


def follow_up(parent: Alert, kind: str, draft: Draft, created_by: int | None = None) -> Alert:
    """Create an update or cancellation of `parent` (not yet published)."""
    if kind not in (KIND_UPDATE, KIND_CANCEL):
        raise AlertError("kind_unknown")
    parent = lock_alert(parent.id)
    if parent.status != PUBLISHED:
        # An UPDATED alert has a newer message: correct or withdraw that one (the chain head).
        raise AlertError("parent_not_published")
    draft.category = parent.category
    draft.exercise = parent.exercise  # a correction of an exercise is an exercise too
    if kind == KIND_CANCEL:
        draft.level = parent.level
        draft.areas = parent.areas
        draft.groups = parent.groups
        draft.channels = parent.channels
        draft.expires_at = None
    return create_alert(draft, kind=kind, parent=parent, created_by=created_by)


def publish_due(now: datetime | None = None) -> int:
    """Scheduler job: publish scheduled alerts whose time has come. Returns how many."""
    now = now or utcnow()
    # Locked, so an "unschedule" in the last second either wins or waits (PostgreSQL).
    due = db.session.scalars(
        select(Alert).where(Alert.status == SCHEDULED, Alert.send_at <= now).order_by(Alert.send_at)
        .with_for_update(skip_locked=True)
    ).all()
    published = 0
    for alert in due:
        try:
            publish(alert, now)
            published += 1
        except AlertError as exc:
            # Changed since its approval (or its chain moved on): it goes back to the queue
            # instead of out, and the other due alerts still leave.
            db.session.rollback()
            log.warning("scheduled alert %s not sent (%s): back to the approval queue", alert.id, exc.code)
            db.session.execute(update(Alert).where(Alert.id == alert.id, Alert.status == SCHEDULED)
                               # A new version: the next approval freezes a copy of its own.
                               .values(status=AWAITING, approved_by=None, approved_at=None,
                                       version=Alert.version + 1))
            db.session.commit()
    return published


def expire_alerts(now: datetime | None = None) -> int:
    """Scheduler job: alerts past their end become EXPIRED and their unsent deliveries too."""
    now = now or utcnow()
    ended = select(Alert.id).where(Alert.expires_at.is_not(None), Alert.expires_at <= now)
    db.session.execute(
        update(Delivery).where(Delivery.status == PENDING, Delivery.alert_id.in_(ended))
        .values(status=DELIVERY_EXPIRED, updated_at=now).execution_options(synchronize_session=False)
    )
    result = db.session.execute(
        update(Alert).where(Alert.status.in_((PUBLISHED, SCHEDULED, DRAFT, AWAITING)), Alert.expires_at.is_not(None),
                            Alert.expires_at <= now)
        .values(status=EXPIRED).execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount or 0
