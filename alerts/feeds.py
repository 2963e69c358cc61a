"""Polling the hazard feeds: fetch, record the feed's health, ingest.

Each feed is a function ``poll_<name>() -> IngestReport``. A failed read (HTTP error,
timeout, HTML error page, invalid JSON) is recorded in FeedHealth and re-raised as
FeedError: it changes nothing else, and is never read as "no warnings".

IMGW's own meteo endpoint is the source of record. Meteoalarm carries the same warnings
under the same IMGW ids; it acts only while IMGW is unavailable (failing, silent, or
answering its ambiguous "no products" body), so one warning carried by both is sent once,
and a warning that vanished with IMGW's empty body is withdrawn only when Meteoalarm
confirms it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from flask import current_app
from sqlalchemy import select

from alerts import publish as lifecycle
from alerts import warning_text
from alerts.ingest import Ingest, IngestReport, latest_in_chain
from alerts.models import ACTIVE, AWAITING, ENDED, KIND_UPDATE, PUBLISHED, REJECTED, FeedHealth, FeedWarning
from db import db, utcnow
from providers import gios, imgw, meteoalarm, rso
from providers.feeds import FeedError
from webhook_checks import refusal_summary

log = logging.getLogger(__name__)

# The scheduler polls feeds in parallel threads; IMGW and Meteoalarm write the same warnings
# (kind "meteo"), so one kind is ingested by one thread at a time.
_INGEST_LOCKS: dict[str, threading.Lock] = {kind: threading.Lock() for kind in ("meteo", "hydro", "rso", "air")}

# PM10 24-hour mean thresholds (Dz.U. 2019 poz. 1931): information and alarm levels.
PM10_INFORMATION = 100.0
PM10_ALARM = 150.0


# --- health -------------------------------------------------------------------------------------

def _health(feed: str) -> FeedHealth:
    row = db.session.get(FeedHealth, feed)
    if row is None:
        row = FeedHealth(feed=feed, consecutive_failures=0, last_was_empty=False)
        db.session.add(row)
    return row


def record_success(feed: str, summary: str, *, empty: bool = False, now: datetime | None = None) -> None:
    row = _health(feed)
    row.last_success_at = now or utcnow()
    row.last_summary = summary[:500]
    row.last_was_empty = empty
    row.consecutive_failures = 0
    db.session.commit()


def record_failure(feed: str, error: Exception, now: datetime | None = None) -> None:
    db.session.rollback()
    row = _health(feed)
    row.last_error_at = now or utcnow()
    row.last_error = str(error)[:500]
    row.consecutive_failures = (row.consecutive_failures or 0) + 1
    db.session.commit()


def imgw_meteo_available(now: datetime | None = None) -> bool:
    """IMGW answered with real content at its last poll, recently enough to trust."""
    now = now or utcnow()
    row = db.session.get(FeedHealth, "imgw-meteo")
    if row is None or row.last_success_at is None or row.last_was_empty:
        return False
    if row.last_error_at is not None and row.last_error_at > row.last_success_at:
        return False
    return now - row.last_success_at <= timedelta(seconds=current_app.config["FEED_STALE_SECONDS"])


def health_report(now: datetime | None = None) -> dict[str, Any]:
    """Per enabled feed: last good answer, last error, and whether it is silent too long;
    and whether Twilio's signed webhooks are being refused (residents' STOP ignored).
    "degraded" comes with "reasons", one line each."""
    now = now or utcnow()
    stale = timedelta(seconds=current_app.config["FEED_STALE_SECONDS"])
    rows = {r.feed: r for r in db.session.scalars(select(FeedHealth))}
    feeds: dict[str, Any] = {}
    degraded = False
    for name in enabled_feeds():
        row = rows.get(name)
        last_ok = row.last_success_at if row else None
        silent = last_ok is None or now - last_ok > stale
        failing = bool(row and row.last_error_at and (last_ok is None or row.last_error_at > last_ok))
        feeds[name] = {
            "last_success_at": last_ok.isoformat() if last_ok else None,
            "last_error_at": row.last_error_at.isoformat() if row and row.last_error_at else None,
            "last_error": row.last_error if row else None,
            "last_summary": row.last_summary if row else None,
            "failing": failing,
            "stale": silent,
        }
        # A feed that has not answered yet since the start is not an outage; one that
        # failed, or went quiet for longer than FEED_STALE_SECONDS, is.
        if (silent and row is not None) or failing:
            degraded = True
    reasons = [f"feed {name} is failing or silent" for name, f in feeds.items()
               if f["failing"] or (f["stale"] and rows.get(name) is not None)]
    feeds_status = "degraded" if degraded else "ok"
    webhooks = refusal_summary(now)
    if webhooks["failing"]:
        degraded = True
        reasons.append(webhooks["reason"])
    report: dict[str, Any] = {
        "status": "degraded" if degraded else "ok", "feeds_status": feeds_status, "feeds": feeds,
        "webhooks": {"failing": webhooks["failing"], "refused": webhooks["refused"]},
    }
    if reasons:
        report["reasons"] = reasons
    return report


# --- the feeds --------------------------------------------------------------------------------

def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = current_app.config.get("FEED_TRUST_ENV", True)
    return session


def _args() -> dict[str, Any]:
    cfg = current_app.config
    return {"timeout": cfg["FEED_TIMEOUT"], "user_agent": cfg["FEED_USER_AGENT"]}


def _poll_imgw(feed: str, kind: str, fetch: Callable[..., Any]) -> IngestReport:
    """IMGW meteo or hydro: only a non-empty list proves that a missing warning was withdrawn
    (its {"status": false} body and [] cannot be told apart from some failures)."""
    try:
        snapshot = fetch(_session(), current_app.config["IMGW_API_BASE"], **_args())
    except FeedError as exc:
        record_failure(feed, exc)
        raise
    has_content = bool(snapshot.warnings) and not snapshot.empty_marker
    # A row we could not read may be ours: its absence from the parsed list proves nothing.
    conclusive = has_content and not snapshot.skipped
    with _INGEST_LOCKS[kind]:
        report = Ingest(kind).run(list(snapshot.warnings), found=len(snapshot.warnings),
                                  may_withdraw=lambda row: conclusive, feed=feed)
    if not has_content:
        report.notes.append("IMGW answered with no warnings at all: nothing withdrawn on that alone")
    elif not conclusive:
        report.notes.append("some rows could not be read: nothing withdrawn from this answer")
    report.notes.extend(snapshot.skipped)
    record_success(feed, report.summary(), empty=not has_content)
    return report


def poll_imgw_meteo() -> IngestReport:
    return _poll_imgw("imgw-meteo", "meteo", imgw.fetch_meteo)


def poll_meteoalarm() -> IngestReport:
    cfg = current_app.config
    try:
        snapshot = meteoalarm.fetch(_session(), cfg["METEOALARM_API_BASE"], **_args())
    except FeedError as exc:
        record_failure("meteoalarm", exc)
        raise
    if imgw_meteo_available():
        report = IngestReport(feed="meteoalarm", found=len(snapshot.warnings))
        report.notes.append("IMGW is answering: Meteoalarm is only a fallback, nothing done")
    else:
        conclusive = bool(snapshot.warnings) and not snapshot.skipped

        def may_withdraw(row: FeedWarning) -> bool:
            # Only what IMGW's empty body left unconfirmed, or what Meteoalarm itself brought:
            # Meteoalarm lags IMGW, so a warning it has not picked up yet is not withdrawn.
            return conclusive and (row.missing_since is not None or row.last_source == "meteoalarm")

        with _INGEST_LOCKS["meteo"]:
            report = Ingest("meteo").run(list(snapshot.warnings), found=len(snapshot.warnings),
                                         may_withdraw=may_withdraw, feed="meteoalarm")
        report.notes.append("IMGW is unavailable: acting on Meteoalarm")
    report.notes.extend(snapshot.skipped)
    record_success("meteoalarm", report.summary())
    return report


def poll_imgw_hydro() -> IngestReport:
    return _poll_imgw("imgw-hydro", "hydro", imgw.fetch_hydro)


def poll_rso() -> IngestReport:
    cfg = current_app.config
    m = current_app.extensions["municipality"]
    try:
        snapshot = rso.fetch(_session(), cfg["RSO_API_BASE"], voivodeship=m.feeds.rso_voivodeship, **_args())
    except FeedError as exc:
        record_failure("rso", exc)
        raise
    # RSO is a list of recent communiqués, not of warnings in force: an item that scrolls
    # off the page is not withdrawn.
    with _INGEST_LOCKS["rso"]:
        report = Ingest("rso").run(list(snapshot.warnings), found=len(snapshot.warnings),
                                   may_withdraw=lambda row: False, feed="rso")
    record_success("rso", report.summary())
    return report


def air_level(mean: float | None) -> int:
    if mean is None:
        return 0
    return 2 if mean >= PM10_ALARM else 1 if mean >= PM10_INFORMATION else 0


def poll_gios() -> IngestReport:
    """PM10 at the profile's stations: one alert per episode above the information level,
    one update if it reaches the alarm level, and a quiet end when it falls below."""
    cfg = current_app.config
    m = current_app.extensions["municipality"]
    session = _session()
    report = IngestReport(feed="gios")
    now = utcnow()
    try:
        for station in m.feeds.air_stations:
            sensors = gios.fetch_sensors(session, cfg["GIOS_API_BASE"], station.id, **_args())
            pm10 = [s for s in sensors if s.param_code.upper() == "PM10"]
            if not pm10:
                report.notes.append(f"station {station.id} has no PM10 sensor")
                continue
            readings = gios.fetch_data(session, cfg["GIOS_API_BASE"], pm10[0].id, now=now, **_args())
            report.found += 1
            mean = gios.mean_24h(readings, now)
            report.notes.append(f"{station.name}: PM10 24-hour mean "
                                + (f"{mean:.0f} µg/m³" if mean is not None else "unknown (too few readings)"))
            with _INGEST_LOCKS["air"]:
                _air_episode(station, mean, now, report)
    except FeedError as exc:
        record_failure("gios", exc)
        raise
    record_success("gios", report.summary())
    return report


def _air_episode(station, mean: float | None, now: datetime, report: IngestReport) -> None:  # noqa: ANN001
    if mean is None:
        return  # too few readings: change nothing
    level = air_level(mean)
    m = current_app.extensions["municipality"]
    prefix = f"{station.id}:"
    row = db.session.scalar(select(FeedWarning).where(
        FeedWarning.kind == "air", FeedWarning.state == ACTIVE, FeedWarning.warning_id.startswith(prefix)))
    if level == 0:
        if row is not None:
            row.state = ENDED
            row.ends_at = now
            report.ended += 1
            db.session.commit()
        return
    report.relevant += 1
    titles, texts = warning_text.air_texts(station.name, mean, level)
    automatic = level >= m.feeds.auto_from_level.get("air", 2)
    if row is None:
        key = f"{prefix}{now.strftime('%Y%m%dT%H%M')}"
        draft = lifecycle.Draft(category="air", level=level, titles=titles, texts=texts, starts_at=now,
                                expires_at=now + timedelta(hours=24), source="feed:air", external_id=key,
                                meta={"station": station.id, "pm10_24h": round(mean, 1)})
        alert = lifecycle.create_alert(draft)
        if automatic:
            lifecycle.publish(alert, now)
            report.new.append(alert.id)
        else:
            alert.status = AWAITING
            report.waiting.append(alert.id)
        db.session.add(FeedWarning(kind="air", warning_id=key, state=ACTIVE, event="PM10", level=level,
                                   starts_at=now, ends_at=None, fingerprint=f"{level}", material=f"{level}",
                                   alert_id=alert.id, last_source="gios", first_seen_at=now, last_seen_at=now))
        db.session.commit()
        return
    row.last_seen_at = now
    if level > (row.level or 0) and row.alert is not None:
        head = latest_in_chain(row.alert)
        draft = lifecycle.Draft(category="air", level=level, titles=titles, texts=texts, starts_at=now,
                                expires_at=now + timedelta(hours=24), source="feed:air",
                                external_id=f"{row.warning_id}@level{level}",
                                meta={"station": station.id, "pm10_24h": round(mean, 1)})
        if head.status == PUBLISHED:
            alert = lifecycle.follow_up(head, KIND_UPDATE, draft)
            lifecycle.publish(alert, now)
            report.updated.append(alert.id)
        else:
            # The episode's first alert still waits for approval: replace it with this one.
            head.status = REJECTED
            head.meta = {**head.meta, "rejected_by": "feed", "reason": "the episode got worse"}
            alert = lifecycle.create_alert(draft)
            if automatic:
                lifecycle.publish(alert, now)
                report.new.append(alert.id)
            else:
                alert.status = AWAITING
                report.waiting.append(alert.id)
        row.alert_id = alert.id
        row.level = level
    db.session.commit()


@dataclass(frozen=True)
class Feed:
    name: str
    poll: Callable[[], IngestReport]
    interval_setting: str


FEEDS: dict[str, Feed] = {f.name: f for f in (
    Feed("imgw-meteo", poll_imgw_meteo, "IMGW_INTERVAL_SECONDS"),
    Feed("meteoalarm", poll_meteoalarm, "FEED_INTERVAL_SECONDS"),
    Feed("imgw-hydro", poll_imgw_hydro, "IMGW_INTERVAL_SECONDS"),
    Feed("gios", poll_gios, "GIOS_INTERVAL_SECONDS"),
    Feed("rso", poll_rso, "FEED_INTERVAL_SECONDS"),
)}


def enabled_feeds() -> list[str]:
    """FEEDS setting (comma-separated, or "none"); RSO also needs the profile to enable it,
    GIOŚ a station in the profile."""
    raw = (current_app.config.get("FEEDS") or "").strip().lower()
    if raw == "none":
        return []
    names = [n.strip() for n in raw.split(",") if n.strip()] if raw else list(FEEDS)
    unknown = [n for n in names if n not in FEEDS]
    if unknown:
        raise ValueError(f"FEEDS names unknown feeds {unknown}; known: {', '.join(FEEDS)}")
    m = current_app.extensions["municipality"]
    if not m.feeds.rso_enabled and "rso" in names and not raw:
        names.remove("rso")
    if not m.feeds.air_stations and "gios" in names:
        names.remove("gios")
    return names
