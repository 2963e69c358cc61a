"""Quiet hours as staff see them: when will this message actually go out?

The dispatcher holds deliveries below QUIET_HOURS_MIN_PRIORITY (routine messages: office
notices, events, level-1 warnings) during the quiet hours (alerts/dispatcher.py `due`). An
approver who pressed "send now" at 21:23 must be told the SMS waits until 07:00, on the
button, in the flash and on the message page; and may deliberately send an urgent routine
message (a water outage at 23:00) inside the quiet hours, with a reason that the audit log
keeps (`override`).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from flask import current_app

from alerts.models import Alert
from alerts.outbox import waits_for_quiet_hours
from municipality import in_quiet_hours, quiet_hours

OVERRIDE_KEY = "quiet_hours_override"  # in Alert.meta: the approver's reason
MIN_REASON = 10


def hours() -> tuple[time, time] | None:
    return quiet_hours(current_app.config.get("QUIET_HOURS"), current_app.extensions["municipality"])


def holds(at: datetime) -> bool:
    """Whether the quiet hours hold routine messages at `at` (what the dispatcher's claim obeys)."""
    span = hours()
    zone = ZoneInfo(current_app.extensions["municipality"].timezone)
    return span is not None and in_quiet_hours(span, at.astimezone(zone).time())


def held_until(alert: Alert, at: datetime) -> datetime | None:
    """When a message published at `at` would start to go out, if the quiet hours hold it
    (the end of the quiet hours, aware UTC); None when it goes out at once."""
    span = hours()
    if span is None or not waits_for_quiet_hours(alert):
        return None
    zone = ZoneInfo(current_app.extensions["municipality"].timezone)
    local = at.astimezone(zone)
    if not in_quiet_hours(span, local.time()):
        return None
    end = local.replace(hour=span[1].hour, minute=span[1].minute, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(timezone.utc)


def override(alert: Alert, reason: str) -> None:
    """Let `alert` go out inside the quiet hours (its deliveries get the priority that the
    dispatcher sends at night). The caller checks the reason and writes the audit row."""
    alert.meta = {**(alert.meta or {}), OVERRIDE_KEY: reason}
