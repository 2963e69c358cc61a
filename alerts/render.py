"""What a resident reads: the SMS body and the push message for an alert, per language.

SMS are transliterated to GSM-7 and capped at SMS_MAX_SEGMENTS (default 2, like Alert RCB's
306 characters); a longer text is cut at a word boundary and ends with the link to the
alert's public page, where the full text is. Ukrainian stays Cyrillic (UCS-2), since a
transliterated Ukrainian text would be hard to read.

Once a message is approved, everything here reads its frozen version (AlertVersion), not
the alert row: residents get exactly what the approver approved. Before approval (the
preview) there is no version yet and the draft itself is rendered.
"""

from __future__ import annotations

from flask import current_app

from alerts.models import KIND_CANCEL, KIND_UPDATE, Alert, AlertVersion
from alerts.sms_text import fit_sms
from i18n import translate
from providers.webpush import PushMessage

DEFAULT_TTL = 86400


def alert_url(alert: Alert, lang: str | None = None) -> str:
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    suffix = f"?lang={lang}" if lang and lang != "pl" else ""
    return f"{base}/alerts/{alert.id}{suffix}"


def approved(alert: Alert) -> Alert | AlertVersion:
    """What residents read: the approved version, or the draft when none is approved yet."""
    return alert.approved_version or alert


def _prefix(alert: Alert | AlertVersion, lang: str) -> str:
    prefix = translate("alert.prefix_exercise", lang) + " " if alert.exercise else ""
    if alert.kind == KIND_UPDATE:
        return prefix + translate("alert.prefix_update", lang) + " "
    if alert.kind == KIND_CANCEL:
        return prefix + translate("alert.prefix_cancel", lang) + " "
    return prefix


def sms_body(alert: Alert, lang: str) -> str:
    """The exact SMS text for a resident reading `lang` (deterministic: reconciliation
    compares it with what the provider says it sent)."""
    m = current_app.extensions["municipality"]
    version = approved(alert)
    title = version.title(lang).rstrip(".")
    text = " ".join(version.text(lang).split())
    full = f"{m.name}: {_prefix(version, lang)}{title}. {text}"
    keep = version.keep_diacritics or lang == "uk"
    max_segments = current_app.config.get("SMS_MAX_SEGMENTS", 2)
    return fit_sms(full, max_segments=max_segments, link=alert_url(alert, lang), keep_diacritics=keep)


def push_message(alert: Alert, lang: str) -> PushMessage:
    """The push notification: full text (the push service carries up to 4 KB), a link, and a
    tag so an update replaces the notification of the warning it updates."""
    m = current_app.extensions["municipality"]
    root = alert.root()
    version = approved(alert)
    urgent = version.category == "emergency" or (version.level or 0) >= 3
    ttl = current_app.config.get("WEBPUSH_TTL", DEFAULT_TTL)
    return PushMessage(
        title=f"{_prefix(version, lang)}{version.title(lang)}".strip(),
        body=version.text(lang),
        url=alert_url(alert, lang),
        category=version.category,
        level=version.level,
        tag=f"{m.teryt}-alert-{root.id}",
        ttl=ttl,
        urgency="high" if urgent else "normal",
    )
