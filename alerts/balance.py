"""The live split between SMS providers: health figures, automatic shifts, and staff pins.

GOV.UK Notify's way: every configured provider carries traffic at its resting share; a
provider whose sends fail (error rate over SMS_FAILOVER_ERROR_RATE, with at least
SMS_FAILOVER_MIN_ATTEMPTS sends in the last SMS_FAILOVER_WINDOW_SECONDS) or whose receipts
come late (median over SMS_FAILOVER_LATENCY_SECONDS) drops to a small probe share, so its
recovery can be seen; once healthy it drifts back to its resting share in steps. After
every change a cool-down (SMS_FAILOVER_COOLDOWN_SECONDS) holds it, so it cannot flap.

Every dispatcher calls ``rebalance`` every few seconds. Each change is one conditional
UPDATE (the weight it read, not pinned, cool-down over): when several dispatchers judge at
once, exactly one moves the row and writes the ``sms_route_shift`` with its reason. Staff
can pin a split (``pin``; CLI ``flask sms split``, or the dashboard); automatic shifts then
leave it alone until it is unpinned.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from alerts.models import DELIVERED, FAILED, PENDING, SENT, Delivery, DeliveryEvent
from alerts.routing import SmsRoute, SmsRouteShift
from db import db, utcnow
from i18n import lookup
from staff import audit

log = logging.getLogger(__name__)

HEALTHY, FAILING, SLOW = "healthy", "failing", "slow"


@dataclass
class ProviderFigures:
    """What one provider did over a window."""

    provider: str
    sends: int = 0  # calls answered (accepted or refused)
    errors: int = 0  # calls that did not give us a message (transient or permanent)
    receipt_seconds: list[float] = field(default_factory=list)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.sends if self.sends else None

    @property
    def median_receipt_seconds(self) -> float | None:
        return statistics.median(self.receipt_seconds) if self.receipt_seconds else None


def figures(names: list[str], since: datetime) -> dict[str, ProviderFigures]:
    """Per provider since `since`: sends and errors (the dispatcher's 'send' events), and the
    time from our send to the delivery receipt for messages it confirmed."""
    out = {name: ProviderFigures(name) for name in names}
    # A refusal about one number (invalid, landline, STOP) says nothing about the provider;
    # transient failures (5xx, 429, timeouts) and a broken account (ProviderError's "config")
    # do. The dispatcher's send events carry the error's text, "... (permanent, config, ...)".
    provider_fault = or_(DeliveryEvent.status != FAILED, DeliveryEvent.detail.like("%(permanent, config%"))
    for provider, status, fault, count in db.session.execute(
            select(DeliveryEvent.provider, DeliveryEvent.status, provider_fault, func.count())
            .where(DeliveryEvent.source == "send", DeliveryEvent.received_at >= since,
                   DeliveryEvent.provider.in_(names))
            .group_by(DeliveryEvent.provider, DeliveryEvent.status, provider_fault)):
        out[provider].sends += count
        if status != SENT and fault:
            out[provider].errors += count
    # The first 'delivered' receipt of each message sent in the window (5,000 at most: a median).
    first_receipt = (select(DeliveryEvent.delivery_id, func.min(DeliveryEvent.received_at).label("at"))
                     .where(DeliveryEvent.source.in_(("callback", "poll")), DeliveryEvent.status == DELIVERED,
                            DeliveryEvent.received_at >= since)
                     .group_by(DeliveryEvent.delivery_id).subquery())
    for provider, sent_at, at in db.session.execute(
            select(Delivery.provider, Delivery.sent_at, first_receipt.c.at)
            .join(first_receipt, first_receipt.c.delivery_id == Delivery.id)
            .where(Delivery.provider.in_(names), Delivery.sent_at.is_not(None))
            .limit(5000)):
        out[provider].receipt_seconds.append(max(0.0, (at - sent_at).total_seconds()))
    return out


def waiting(names: list[str]) -> dict[str, int]:
    """SMS waiting to go out: "" for all, and per provider those whose last try failed there."""
    out = {"": db.session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.channel == "sms", Delivery.status == PENDING)) or 0}
    for provider, count in db.session.execute(
            select(Delivery.provider, func.count()).where(
                Delivery.channel == "sms", Delivery.status == PENDING, Delivery.provider.in_(names),
                or_(Delivery.error.is_not(None), Delivery.error_code.is_not(None)))
            .group_by(Delivery.provider)):
        out[provider] = count
    return out


def ensure_routes(resting: dict[str, int]) -> None:
    """One sms_route row per configured provider, at its resting share (a race adds each once).
    A changed SMS_SPLIT becomes the new resting share; the live share follows on its own."""
    table = SmsRoute.__table__
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    for name, share in resting.items():
        stmt = insert(table).values(provider=name, weight=share, resting=share, pinned=False, state=HEALTHY,
                                    changed_at=now, cooldown_until=None, reason=reason("settings"))
        db.session.execute(stmt.on_conflict_do_nothing(index_elements=[table.c.provider]))
        db.session.execute(update(table).where(table.c.provider == name, table.c.resting != share)
                           .values(resting=share))
    db.session.commit()


def _settings() -> dict[str, float]:
    cfg = current_app.config
    return {
        "window": float(cfg.get("SMS_FAILOVER_WINDOW_SECONDS", 120)),
        "error_rate": float(cfg.get("SMS_FAILOVER_ERROR_RATE", 0.3)),
        "min_attempts": int(cfg.get("SMS_FAILOVER_MIN_ATTEMPTS", 20)),
        "latency": float(cfg.get("SMS_FAILOVER_LATENCY_SECONDS", 300)),
        "probe": int(cfg.get("SMS_FAILOVER_PROBE_SHARE", 5)),
        "cooldown": float(cfg.get("SMS_FAILOVER_COOLDOWN_SECONDS", 60)),
    }


def reason(*keys: str, **params: Any) -> str:
    """A shift's reason as stored: the keys of its phrases and their figures (JSON), so that
    the dashboard shows it in the reader's language (`describe`), not in the writer's."""
    return json.dumps({"k": list(keys), **params}, ensure_ascii=False, separators=(",", ":"))


def describe(stored: str | None, lang: str) -> str:
    """A stored reason in `lang`: its phrases (translations/admin_sms_reasons.*.toml) joined by ": ".
    A reason written before reasons were coded is shown as it was stored."""
    if not stored:
        return ""
    try:
        data = json.loads(stored)
        keys, params = data.pop("k"), data
        phrases = [lookup(f"sms_why.{key}", lang, **params) for key in keys]
        if None in phrases:
            raise KeyError("no such phrase")
        return ": ".join(phrases)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return stored


def judge(f: ProviderFigures, s: dict[str, float]) -> tuple[str, str]:
    """(state, reason) of one provider from its figures; the reason as `reason()` stores it."""
    rate = f.error_rate
    window = int(s["window"])
    if rate is not None and f.sends >= s["min_attempts"] and rate >= s["error_rate"]:
        return FAILING, reason("failing", percent=round(rate * 100), window=window, errors=f.errors, sends=f.sends)
    median = f.median_receipt_seconds
    if median is not None and len(f.receipt_seconds) >= 5 and median >= s["latency"]:
        return SLOW, reason("slow", seconds=round(median), window=window)
    if f.sends:
        return HEALTHY, reason("healthy", accepted=f.sends - f.errors, sends=f.sends, window=window)
    return HEALTHY, reason("idle", window=window)


def _wrap(key: str, why: str) -> str:
    """`why` with the phrase `key` in front ("recovering: ...")."""
    data = json.loads(why)
    data["k"] = [key, *data["k"]]
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def rebalance(resting: dict[str, int], now: datetime | None = None) -> list[SmsRouteShift]:
    """Judge every provider and shift the split where needed; returns the shifts made here.

    Never with one provider. A failing provider goes to the probe share only while another
    one is healthy: if all fail, the split stays where it is (nowhere better to send).
    """
    names = list(resting)
    if len(names) < 2:
        return []
    now = now or utcnow()
    s = _settings()
    routes = {r.provider: r for r in db.session.scalars(select(SmsRoute))}
    if any(name not in routes or routes[name].resting != share for name, share in resting.items()):
        # First judgement, or SMS_SPLIT changed: rows for the settings (not every 5 s).
        ensure_routes(resting)
        routes = {r.provider: r for r in db.session.scalars(select(SmsRoute))}
    if any(r.pinned for r in routes.values()):
        db.session.rollback()
        return []
    found = figures(names, now - timedelta(seconds=s["window"]))
    verdicts = {name: judge(found[name], s) for name in names}
    healthy_left = [n for n in names if verdicts[n][0] == HEALTHY and resting[n] > 0]
    shifts = []
    for name in names:
        route = routes.get(name)
        if route is None:
            continue
        state, why = verdicts[name]
        target = route.weight
        if state != HEALTHY:
            if not [n for n in healthy_left if n != name]:
                continue  # everyone is failing: keep the split, nowhere better to send
            target = min(route.weight, int(s["probe"]))
        elif route.weight < resting[name]:
            rate = found[name].error_rate
            if rate is not None and rate >= s["error_rate"] / 2:
                continue  # too few sends to call it failing, too many errors to call it recovered
            # Back by half the gap (at least 10 points) per cool-down: gradual, not a stampede.
            target = min(resting[name], route.weight + max(10, (resting[name] - route.weight) // 2))
            why = _wrap("recovering", why)
        elif route.weight > resting[name]:
            target = resting[name]
            why = _wrap("back_to_rest", why)
        if target == route.weight and state == route.state:
            continue
        moved = db.session.execute(
            update(SmsRoute).where(
                SmsRoute.provider == name, SmsRoute.weight == route.weight, SmsRoute.state == route.state,
                SmsRoute.pinned.is_(False),
                or_(SmsRoute.cooldown_until.is_(None), SmsRoute.cooldown_until <= now))
            .values(weight=target, state=state, changed_at=now, reason=why,
                    cooldown_until=now + timedelta(seconds=s["cooldown"]))
            .execution_options(synchronize_session=False)).rowcount
        if moved != 1:
            continue  # another dispatcher moved it first, or it is cooling down
        shift = SmsRouteShift(at=now, provider=name, old_weight=route.weight, new_weight=target,
                              actor="automatic", reason=why)
        db.session.add(shift)
        shifts.append(shift)
        log.warning("SMS split: %s %d -> %d (%s)", name, route.weight, target, describe(why, "en"))
    db.session.commit()
    return shifts


def pin(split: dict[str, int] | None, actor: str, why: str, resting: dict[str, int],
        staff: Any = None) -> list[SmsRouteShift]:
    """Pin the split (`split`: provider -> share), or with None unpin it back to the resting
    split and automatic shifts; recorded as shifts and in the audit log (as `staff`, or
    `actor` on the command line), and committed. One transaction; each row changed under
    its row lock. Raises ValueError (nothing changed) for a bad split or no reason."""
    if not why.strip():
        raise ValueError("a reason is required")
    names = list(resting)
    if split is not None:
        unknown = set(split) - set(names)
        if unknown:
            raise ValueError(f"not a configured provider: {', '.join(sorted(unknown))}")
        split = {name: int(split.get(name, 0)) for name in names}
        if not any(split.values()):
            raise ValueError("every share is 0, so no SMS could be sent")
    ensure_routes(resting)
    now = utcnow()
    shifts = []
    target = split or resting
    for route in db.session.scalars(select(SmsRoute).where(SmsRoute.provider.in_(names))
                                    .order_by(SmsRoute.provider).with_for_update()):
        old = route.weight
        route.weight = target[route.provider]
        route.pinned = split is not None
        route.state = HEALTHY if split is None else route.state
        route.changed_at = now
        route.cooldown_until = None
        route.reason = _reason_text("pinned" if split is not None else "automatic_again", why.strip())
        shift = SmsRouteShift(at=now, provider=route.provider, old_weight=old, new_weight=route.weight,
                              actor=actor[:80], reason=route.reason)
        db.session.add(shift)
        shifts.append(shift)
    audit.record("sms_split_auto" if split is None else "sms_split_pinned", staff=staff,
                 actor=None if staff is not None else actor, commit=False, reason=why.strip(),
                 split={s.provider: s.new_weight for s in shifts})
    db.session.commit()
    return shifts


def _reason_text(key: str, text: str) -> str:
    """A staff member's own words with the phrase `key`, cut so the stored JSON fits 300."""
    stored = reason(key, text=text)
    while len(stored) > 300:
        text = text[:-10]
        stored = reason(key, text=text + "…")
    return stored


def overview(resting: dict[str, int], now: datetime | None = None) -> dict[str, Any]:
    """What the dashboard and `flask sms status` show: per provider the live and resting
    share, state, pin, and the last hour's sends, errors and median receipt time; SMS
    waiting; the latest shifts."""
    now = now or utcnow()
    names = list(resting)
    routes = {r.provider: r for r in db.session.scalars(select(SmsRoute))}
    hour = figures(names, now - timedelta(hours=1))
    wait = waiting(names)
    rows = []
    for name in names:
        route = routes.get(name)
        f = hour[name]
        rows.append({
            "provider": name, "weight": route.weight if route else resting[name], "resting": resting[name],
            "state": route.state if route else HEALTHY, "pinned": bool(route and route.pinned),
            "reason": route.reason if route else None, "sends": f.sends, "errors": f.errors,
            "median_receipt_seconds": f.median_receipt_seconds, "waiting_after_failure": wait.get(name, 0),
        })
    shifts = db.session.scalars(select(SmsRouteShift).order_by(SmsRouteShift.id.desc()).limit(10)).all()
    return {"providers": rows, "waiting": wait[""], "shifts": shifts, "several": len(names) > 1}
