"""The audit log as staff read it: each event's subject as a link, its details in words.

An audit row stores what the code knew (`target="alert:12"`, `detail={"queued": {"sms": 1},
"reason": "self_approval"}`); staff under stress should read "Komunikat nr 12" (a link to
it) and "Wysłano do: SMS 1", in their language, with times on the gmina's clock. The CSV
export keeps the raw values (it is evidence, and machine-readable).

Labels live in the admin catalogs (translations/*/LC_MESSAGES/admin.po): `audit_view.detail.<key>` for a detail's name,
`audit_view.reason.<code>` for the coded reasons (anything else in a reason is a person's
own words and is shown as written), `audit_view.target.<kind>` for a subject.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flask import url_for

from i18n import current_language, local_time, lookup

_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)?$")
_ENDPOINTS = {
    "alert": ("admin.show", "alert_id"),
    "subscriber": ("admin_people.subscriber", "subscriber_id"),
    "staff": ("admin_people.accounts", None),
}


@dataclass(frozen=True)
class Subject:
    text: str
    url: str | None


def _phrase(key: str, lang: str, **params: Any) -> str | None:
    """The translation of `key`, or None when there is none (a label may well be missing)."""
    return lookup(key, lang, **params)


def action(code: str, lang: str | None = None) -> str:
    """An event's name in words (admin_people.action.* or audit_view.action.*), else its code."""
    lang = lang or current_language()
    return _phrase(f"audit_view.action.{code}", lang) or _phrase(f"admin_people.action.{code}", lang) or code


def subject(target: str | None, lang: str | None = None) -> Subject | None:
    """What an event concerns, in words, with a link where staff can open it."""
    if not target:
        return None
    lang = lang or current_language()
    kind, _, ident = target.partition(":")
    text = _phrase(f"audit_view.target.{kind}", lang, id=ident) or target
    url = None
    if kind in _ENDPOINTS and ident.isdigit():
        endpoint, arg = _ENDPOINTS[kind]
        url = url_for(endpoint, **({arg: int(ident)} if arg else {}))
    return Subject(text, url)


def details(detail: dict[str, Any] | None, lang: str | None = None) -> list[tuple[str, str]]:
    """(label, value) pairs of an event's details, in `lang` (default: the page's)."""
    lang = lang or current_language()
    return [(_phrase(f"audit_view.detail.{key}", lang) or key, _value(key, value, lang))
            for key, value in sorted((detail or {}).items()) if value is not None and value != ""]


def _value(key: str, value: Any, lang: str) -> str:
    if isinstance(value, bool):
        return _phrase("audit_view.yes" if value else "audit_view.no", lang) or str(value)
    if isinstance(value, dict):
        # e.g. queued={"sms": 120, "push": 30}, split={"twilio": 5, "smsapi": 95}
        return ", ".join(f"{_channel(k, lang)} {_value(k, v, lang)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_value(key, v, lang) for v in value)
    if isinstance(value, str):
        if key == "reason":
            return _phrase(f"audit_view.reason.{_slug(value)}", lang) or value
        if _ISO_TIME.match(value):
            try:
                at = datetime.fromisoformat(value.replace("Z", "+00:00"))
                return local_time(at if at.tzinfo else at.replace(tzinfo=timezone.utc))  # stored in UTC
            except ValueError:
                return value
        return _phrase(f"audit_view.value.{_slug(value)}", lang) or value
    return str(value)


def _channel(name: str, lang: str) -> str:
    return _phrase(f"audit_view.channel.{name}", lang) or name


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")[:60] or "_"
