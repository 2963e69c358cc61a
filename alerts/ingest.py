"""From official warnings to alerts: new, changed and withdrawn warnings, each told once.

``ingest`` compares one feed answer with what we know (FeedWarning rows) and acts:

- a new warning concerning the gmina -> a new alert, sent automatically or left for staff
  approval according to the profile's policy;
- a warning whose event, level or time window changed (or that a newer warning replaces)
  -> an update ("AKTUALIZACJA") to those who got it and to new matches; a change of text
  only is recorded quietly;
- a warning gone from a successful, well-formed, non-empty answer before its end, or no
  longer covering the gmina -> a withdrawal ("ODWOŁANE") to those who got it;
- a warning past its end -> nothing to send; it just ends.

A failed read never reaches this module (FeedError). IMGW's ``{"status": false}`` body (or
an empty list) cannot be told apart from some failures, so absence there withdraws nothing:
it marks the warning ``missing_since`` and the second source (Meteoalarm) decides.

Every step is keyed so that running it twice does the same as once: FeedWarning is unique
per (kind, warning id), Alert per (source, external id).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from sqlalchemy import select

from alerts import publish as lifecycle
from alerts import warning_text
from alerts.models import (
    ACTIVE,
    AWAITING,
    DRAFT,
    ENDED,
    KIND_CANCEL,
    KIND_UPDATE,
    PUBLISHED,
    REJECTED,
    SCHEDULED,
    SUPERSEDED,
    WITHDRAWN,
    Alert,
    FeedWarning,
)
from db import db, utcnow
from municipality import Municipality
from providers.feeds import Warning

log = logging.getLogger(__name__)

CATEGORY = {"meteo": "weather", "hydro": "hydro", "air": "air", "rso": "emergency"}
DROUGHT_LEVEL = -1


@dataclass
class IngestReport:
    """What one poll found and did, for the log, `flask feeds poll` and tests."""

    feed: str
    found: int = 0
    relevant: int = 0
    new: list[int] = field(default_factory=list)  # alert ids published
    waiting: list[int] = field(default_factory=list)  # alert ids waiting for approval
    updated: list[int] = field(default_factory=list)
    withdrawn: list[int] = field(default_factory=list)
    ended: int = 0
    unconfirmed: int = 0  # missing from an answer that cannot prove withdrawal
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.found} warnings, {self.relevant} concern us"]
        for name in ("new", "waiting", "updated", "withdrawn"):
            ids = getattr(self, name)
            if ids:
                parts.append(f"{name} {len(ids)} (alerts {', '.join(map(str, ids))})")
        if self.ended:
            parts.append(f"ended {self.ended}")
        if self.unconfirmed:
            parts.append(f"{self.unconfirmed} missing but not confirmed withdrawn")
        return "; ".join(parts)


def concerns(kind: str, w: Warning, m: Municipality) -> bool:
    """Does this warning cover the gmina?"""
    if kind == "meteo":
        return m.powiat_teryt in w.areas
    if kind == "hydro":
        prefixes = m.feeds.hydro_catchments
        if prefixes:
            return any(code.startswith(prefixes) for code in w.areas)
        return f"woj:{m.voivodeship}" in w.areas
    if kind == "rso":
        return f"woj:{m.voivodeship}" in w.areas
    return True


def _minute(moment: datetime | None) -> str:
    # Meteoalarm and IMGW differ by seconds for the same warning: compare to the minute.
    return moment.replace(second=0, microsecond=0).isoformat() if moment else "-"


def material(w: Warning) -> str:
    """What residents must be told about again when it changes."""
    form = "|".join([" ".join(w.event.lower().split()), str(w.level), _minute(w.starts_at), _minute(w.ends_at)])
    return hashlib.sha256(form.encode()).hexdigest()


def _source(kind: str) -> str:
    return f"feed:{kind}"


def _draft(kind: str, w: Warning, m: Municipality, change: str) -> lifecycle.Draft:
    level = w.level
    # Calls go to residents who asked for them, from the level they chose (alerts/match.py).
    channels = ["sms", "push", "voice"]
    if kind == "hydro" and level == DROUGHT_LEVEL:
        level, channels = 1, list(m.feeds.drought_channels)
    category = CATEGORY[kind]
    if category == "emergency":
        level = None
    elif level is None or level < 1:
        level = 1
    now = utcnow()
    expires = w.ends_at if w.ends_at and w.ends_at > now else None
    return lifecycle.Draft(
        category=category, level=level, titles=warning_text.titles(w),
        texts=warning_text.texts(w, m, change), channels=channels, starts_at=w.starts_at,
        expires_at=expires if change != "cancel" else None, source=_source(kind),
        meta={"warning_id": w.external_id, "feed": w.source, "fingerprint": w.fingerprint(),
              "office": w.office, "probability": w.probability, "event": w.event},
    )


def latest_in_chain(alert: Alert) -> Alert:
    """The newest alert of the chain that starts at `alert` (staff may have updated it)."""
    while True:
        # Only children that went out continue the chain; drafts, scheduled, rejected or
        # never-sent expired ones do not.
        child = db.session.scalar(select(Alert).where(Alert.parent_id == alert.id, Alert.published_at.is_not(None))
                                  .order_by(Alert.id.desc()).limit(1))
        if child is None:
            return alert
        alert = child


def _automatic(kind: str, w: Warning, m: Municipality) -> bool:
    if kind == "rso":
        return False  # voivodeship-wide: staff decide
    category = CATEGORY[kind]
    level = 1 if (w.level is None or w.level < 1) else w.level
    return level >= m.feeds.auto_from_level.get(category, 2)


class Ingest:
    """One feed answer applied to the stored state. Use ``run``."""

    def __init__(self, kind: str, now: datetime | None = None) -> None:
        self.kind = kind
        self.now = now or utcnow()
        self.m: Municipality = current_app.extensions["municipality"]

    # --- alert chain operations ---------------------------------------------------------------

    def _new_alert(self, w: Warning, report: IngestReport) -> Alert:
        draft = _draft(self.kind, w, self.m, "new")
        draft.external_id = w.external_id
        existing = db.session.scalar(select(Alert).where(Alert.source == draft.source,
                                                         Alert.external_id == draft.external_id))
        if existing is not None:
            return existing  # a previous poll created it and then failed before recording
        alert = lifecycle.create_alert(draft)
        if _automatic(self.kind, w, self.m):
            lifecycle.publish(alert, self.now)
            report.new.append(alert.id)
        else:
            alert.status = AWAITING
            db.session.commit()
            report.waiting.append(alert.id)
        return alert

    def _follow(self, head: Alert, w: Warning, change: str, report: IngestReport) -> Alert | None:
        """Update or withdraw the chain whose latest alert is `head`. Returns the new head."""
        # Locked like every staff step (publish.lock_alert): an approval of this alert either
        # happened before (it is published now) or waits until we are done.
        head = lifecycle.lock_alert(latest_in_chain(head).id)
        if head.status in (DRAFT, AWAITING, SCHEDULED):
            # Never sent: change the waiting alert itself, or take it off the approval queue.
            if change == "cancel":
                head.status = REJECTED
                head.meta = {**head.meta, "rejected_by": "feed", "reason": "withdrawn by the source"}
                db.session.commit()
                report.withdrawn.append(head.id)
                return head
            if _automatic(self.kind, w, self.m):
                head.status = REJECTED
                head.meta = {**head.meta, "rejected_by": "feed", "reason": "superseded: now sent automatically"}
                db.session.commit()
                return self._new_alert_with_suffix(w, report)
            draft = _draft(self.kind, w, self.m, "new")
            head.level, head.titles, head.texts = draft.level, draft.titles, draft.texts
            head.starts_at, head.expires_at = draft.starts_at, draft.expires_at
            head.meta = {**head.meta, **draft.meta}
            # A new version: an approval given on the old one (a page still open, or a
            # scheduled send) does not cover it; it waits for a fresh approval.
            head.version += 1
            if head.status == SCHEDULED:
                head.status, head.approved_by, head.approved_at = AWAITING, None, None
            db.session.commit()
            report.updated.append(head.id)
            return head
        if head.status != PUBLISHED:
            return head  # expired, cancelled (by staff too) or rejected: nothing more to say
        draft = _draft(self.kind, w, self.m, change)
        draft.external_id = f"{w.external_id}@{change}:{material(w)[:12]}"
        existing = db.session.scalar(select(Alert).where(Alert.source == draft.source,
                                                         Alert.external_id == draft.external_id))
        if existing is not None:
            return existing
        alert = lifecycle.follow_up(head, KIND_CANCEL if change == "cancel" else KIND_UPDATE, draft)
        # A sent warning's changes always go out: residents who got it must hear of them.
        lifecycle.publish(alert, self.now)
        (report.withdrawn if change == "cancel" else report.updated).append(alert.id)
        return alert

    def _new_alert_with_suffix(self, w: Warning, report: IngestReport) -> Alert:
        draft = _draft(self.kind, w, self.m, "new")
        draft.external_id = f"{w.external_id}@new:{material(w)[:12]}"
        alert = lifecycle.create_alert(draft)
        lifecycle.publish(alert, self.now)
        report.new.append(alert.id)
        return alert

    # --- the diff -------------------------------------------------------------------------------

    def run(self, warnings: list[Warning], *, found: int, may_withdraw: Callable[[FeedWarning], bool],
            feed: str) -> IngestReport:
        """Apply one answer. `warnings` are all the feed listed; `may_withdraw(row)` says whether
        this answer can prove that a missing warning was withdrawn."""
        report = IngestReport(feed=feed, found=found)
        relevant = {w.external_id: w for w in warnings if w.msg_type != "Cancel" and concerns(self.kind, w, self.m)}
        cancels = {w.external_id for w in warnings if w.msg_type == "Cancel"}
        report.relevant = len(relevant)
        known = {row.warning_id: row for row in db.session.scalars(
            select(FeedWarning).where(FeedWarning.kind == self.kind))}
        active = {k: row for k, row in known.items() if row.state == ACTIVE}
        missing = {k: row for k, row in active.items() if k not in relevant}

        for key, w in sorted(relevant.items(), key=lambda kv: kv[1].starts_at):
            row = known.get(key)
            if row is None:
                self._appeared(w, missing, report)
            elif row.state == ACTIVE:
                self._seen_again(row, w, report)
            # A withdrawn or superseded warning that shows up again is not re-announced.

        for key, row in list(missing.items()):
            if row.state != ACTIVE:
                continue  # superseded above
            if key in cancels:
                self._withdraw(row, report)
            elif row.ends_at is not None and row.ends_at <= self.now:
                row.state = ENDED
                report.ended += 1
            elif may_withdraw(row):
                self._withdraw(row, report)
            else:
                row.missing_since = row.missing_since or self.now
                report.unconfirmed += 1
        db.session.commit()
        return report

    def _appeared(self, w: Warning, missing: dict[str, FeedWarning], report: IngestReport) -> None:
        if w.ends_at is not None and w.ends_at <= self.now:
            report.notes.append(f"{w.external_id}: already over, not sent")
            return
        predecessor = self._predecessor(w, missing)
        if predecessor is not None and predecessor.alert is not None:
            head = self._follow(predecessor.alert, w, "update", report)
            predecessor.state = SUPERSEDED
            alert_id = head.id if head else predecessor.alert_id
        else:
            alert_id = self._new_alert(w, report).id
        db.session.add(FeedWarning(
            kind=self.kind, warning_id=w.external_id, state=ACTIVE, event=w.event[:120], level=w.level,
            starts_at=w.starts_at, ends_at=w.ends_at, fingerprint=w.fingerprint(), material=material(w),
            alert_id=alert_id, last_source=w.source, first_seen_at=self.now, last_seen_at=self.now))
        db.session.commit()

    def _predecessor(self, w: Warning, missing: dict[str, FeedWarning]) -> FeedWarning | None:
        """The warning this one replaces: named by the source (Meteoalarm `references`), or
        an active warning of the same event that vanished in this very answer (IMGW mints a
        new id when it extends or raises a warning)."""
        for ref in w.replaces:
            if ref in missing:
                return missing.pop(ref)
        same = [row for row in missing.values() if row.event.strip().lower() == w.event.strip().lower()]
        if len(same) == 1:
            return missing.pop(same[0].warning_id)
        return None

    def _seen_again(self, row: FeedWarning, w: Warning, report: IngestReport) -> None:
        row.last_seen_at = self.now
        row.missing_since = None
        row.last_source = w.source
        if row.material != material(w) and row.alert is not None:
            head = self._follow(row.alert, w, "update", report)
            row.alert_id = head.id if head else row.alert_id
        row.material, row.fingerprint = material(w), w.fingerprint()
        row.level, row.starts_at, row.ends_at, row.event = w.level, w.starts_at, w.ends_at, w.event[:120]

    def _withdraw(self, row: FeedWarning, report: IngestReport) -> None:
        row.state = WITHDRAWN
        if row.alert is None:
            return
        w = Warning(source=row.last_source, external_id=row.warning_id, event=row.event, level=row.level,
                    starts_at=row.starts_at or self.now, ends_at=row.ends_at, published_at=None,
                    areas=frozenset())
        head = self._follow(row.alert, w, "cancel", report)
        if head is not None:
            row.alert_id = head.id
