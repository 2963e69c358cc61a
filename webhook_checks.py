"""Twilio webhooks: the signature check, and a record of every request it refused.

Twilio signs the URL it called, which is the public one (``PUBLIC_BASE_URL``), not what a
proxy forwarded as ``Host``: nginx's default ``proxy_set_header Host $proxy_host`` would make
every signature fail and residents' STOP replies would be silently dropped. So the URL we
check is PUBLIC_BASE_URL + the path and query of the request.

A refused webhook is counted in ``webhook_refusal`` (per endpoint, reason and minute: one
upsert, so a flood of forged requests costs a counter, not a row each). No body, number or
IP is kept. The admin dashboard and ``/healthz`` read ``refusal_summary``: webhooks with a
wrong signature in the last WEBHOOK_REFUSALS_WINDOW_SECONDS mean the configuration is wrong
(or someone is forging), and either way a person should look.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask import abort, current_app, request
from sqlalchemy import Integer, String, UniqueConstraint, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from db import UTCDateTime, db, utcnow
from providers.twilio_webhooks import signed_url

log = logging.getLogger(__name__)

UNSIGNED = "unsigned"  # no X-Twilio-Signature at all: a scanner, or a proxy dropping it
BAD_SIGNATURE = "bad_signature"  # signed, but not for this URL and body
REASONS = (UNSIGNED, BAD_SIGNATURE)
# Counters older than this are dropped when a new one is written (no housekeeping job needed).
KEEP = timedelta(days=30)


class WebhookRefusal(db.Model):
    """How many webhooks were refused at one endpoint, for one reason, in one minute."""

    __tablename__ = "webhook_refusal"
    __table_args__ = (UniqueConstraint("endpoint", "reason", "minute"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(32))  # "inbound", "status"
    reason: Mapped[str] = mapped_column(String(32))
    minute: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    count: Mapped[int] = mapped_column(Integer, default=1)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())


def public_url() -> str:
    """The URL Twilio called for this request: PUBLIC_BASE_URL, then the path and the query
    string exactly as received (the signature covers the query, e.g. ``?d=<delivery id>``)."""
    return signed_url(current_app.config["PUBLIC_BASE_URL"], request.path,
                      request.query_string.decode("latin-1"))


def require_twilio_signature(channel: Any = None) -> None:
    """Abort with 403 unless the request carries a valid X-Twilio-Signature for the public
    URL; a refusal is recorded (and committed) first. `channel` checks it (the voice
    channel for calls); by default the Twilio SMS channel."""
    signature = request.headers.get("X-Twilio-Signature", "")
    # With two providers configured, Twilio's own channel holds the auth token that signs.
    twilio = channel or current_app.extensions["sms_channels"].get("twilio", current_app.extensions["sms"])
    if signature and twilio.validate_webhook(public_url(), request.form, signature):
        return
    endpoint = (request.endpoint or request.path).rsplit(".", 1)[-1].replace("twilio_", "")
    reason = BAD_SIGNATURE if signature else UNSIGNED
    log.warning("refused a Twilio webhook at %s: %s (signatures are checked against %s)",
                request.path, reason, current_app.config["PUBLIC_BASE_URL"])
    try:
        record_refusal(endpoint, reason)
    except Exception:  # the 403 matters more than the count: never turn it into a 500
        db.session.rollback()
        log.exception("could not record a refused webhook")
    abort(403)


def record_refusal(endpoint: str, reason: str, now: datetime | None = None) -> None:
    """Count one refused webhook (one atomic upsert) and commit; counters older than KEEP
    go at the first refusal of each minute."""
    now = now or utcnow()
    minute = now.replace(second=0, microsecond=0)
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(WebhookRefusal).values(endpoint=endpoint[:32], reason=reason, minute=minute, count=1,
                                         last_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[WebhookRefusal.endpoint, WebhookRefusal.reason, WebhookRefusal.minute],
        set_={"count": WebhookRefusal.count + 1, "last_at": now},
    ).returning(WebhookRefusal.count)
    db.session.rollback()  # nothing of this request may be committed along with the counter
    count = db.session.execute(stmt).scalar_one()
    if count == 1:  # the first refusal of a new minute: drop what is past keeping
        purge_refusals(now - KEEP)
    db.session.commit()


def refusal_summary(now: datetime | None = None) -> dict[str, Any]:
    """Refused webhooks in the last WEBHOOK_REFUSALS_WINDOW_SECONDS, for the dashboard and
    /healthz: ``{"failing": bool, "reason": str | None, "window_seconds": int,
    "refused": {endpoint: {reason: count}}, "last_at": datetime | None}``.

    "failing" means at least one request signed for another URL or body: Twilio's real
    webhooks are being turned away (usually PUBLIC_BASE_URL differs from the number's
    webhook URL in the Twilio console), or someone is forging them.
    """
    now = now or utcnow()
    window = int(current_app.config.get("WEBHOOK_REFUSALS_WINDOW_SECONDS", 3600))
    since = now - timedelta(seconds=window)
    rows = db.session.execute(
        select(WebhookRefusal.endpoint, WebhookRefusal.reason, func.sum(WebhookRefusal.count),
               func.max(WebhookRefusal.last_at))
        .where(WebhookRefusal.minute >= since.replace(second=0, microsecond=0))
        .group_by(WebhookRefusal.endpoint, WebhookRefusal.reason)
    ).all()
    refused: dict[str, dict[str, int]] = {}
    last_at: datetime | None = None
    bad = 0
    for endpoint, reason, count, last in rows:
        refused.setdefault(endpoint, {})[reason] = int(count)
        last_at = max(last_at, last) if last_at else last
        if reason == BAD_SIGNATURE:
            bad += int(count)
    reason_text = None
    if bad:
        reason_text = (f"{bad} Twilio webhook(s) refused for a wrong signature in the last "
                       f"{window // 60} min: check that PUBLIC_BASE_URL is the URL set in Twilio")
    return {"failing": bad > 0, "reason": reason_text, "window_seconds": window, "refused": refused,
            "last_at": last_at}


def purge_refusals(before: datetime) -> int:
    """Housekeeping: drop counters older than `before`."""
    result = db.session.execute(db.delete(WebhookRefusal).where(WebhookRefusal.minute < before))
    return result.rowcount or 0
