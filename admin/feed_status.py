"""The warning feeds on the dashboard, as staff read them: "IMGW – ostrzeżenia
meteorologiczne: brak połączenia od 21:06", with the technical details folded away.

The feed's last error is stored as the exception's text (alerts/feeds.py record_failure);
our feed clients raise `providers.feeds.FeedError`, whose text starts with its kind
("timeout: ...", "connection: ...", "http: HTTP 503 ...", "malformed: ..."). That kind picks
the sentence; anything else (a parser's or the database's error) is "an error" with the
text in the details.
"""

from __future__ import annotations

import re
from typing import Any

from i18n import current_language, local_time, lookup, t

_KINDS = ("timeout", "connection", "http", "malformed")
_STATUS = re.compile(r"\bHTTP (\d{3})\b|\bstatus (\d{3})\b")


def feed_name(name: str) -> str:
    """A feed's name in words ("imgw-meteo" -> "IMGW – ostrzeżenia meteorologiczne")."""
    return lookup(f"feed_status.name.{name}", current_language()) or name


def source_name(source: str) -> str:
    """Where an automatic alert came from, in words ("feed:meteo" -> "ostrzeżenia
    meteorologiczne IMGW"); alerts/ingest.py writes "feed:<kind>"."""
    return lookup(f"feed_status.source.{source.removeprefix('feed:')}", current_language()) or source


def problem(row: dict[str, Any]) -> str | None:
    """One line for a failing or silent feed (None when it is fine or not asked yet)."""
    since = row.get("last_success_at")
    if row.get("failing"):
        error = row.get("last_error") or ""
        kind = error.split(":", 1)[0] if ":" in error else ""
        if kind == "http":
            found = _STATUS.search(error)
            what = t("feed_status.http", status=next(g for g in found.groups() if g)) if found \
                else t("feed_status.http_unknown")
        elif kind in _KINDS:
            what = t(f"feed_status.{kind}")
        else:
            what = t("feed_status.other")
        if since:
            return t("feed_status.failing_since", what=what, since=local_time(since))
        return t("feed_status.failing_never_ok", what=what, at=local_time(row.get("last_error_at")))
    if row.get("stale") and since:
        return t("feed_status.silent_since", since=local_time(since))
    return None
