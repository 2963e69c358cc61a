"""What a resident reads: the SMS body and the push message for an alert, per language.

SMS are transliterated to GSM-7 and capped at SMS_MAX_SEGMENTS (default 2, like Alert RCB's
306 characters); a longer text is cut at a word boundary and ends with the link to the
alert's public page, where the full text is. A text in a script GSM-7 cannot carry
(Ukrainian in Cyrillic) stays as written, in UCS-2, and has its own cap,
SMS_MAX_SEGMENTS_UNICODE, sized to hold what the Polish text holds at its cap.

A language the message was not written in gets the Polish residents' SMS, byte for byte
(prefixes and link included): never Polish text behind a Ukrainian prefix, which would
force UCS-2 and cut the Polish text after about 90 characters.

Once a message is approved, everything here reads its frozen version (AlertVersion), not
the alert row: residents get exactly what the approver approved. Before approval (the
preview) there is no version yet and the draft itself is rendered.
"""

from __future__ import annotations

from flask import current_app

from alerts.models import KIND_CANCEL, KIND_UPDATE, Alert, AlertVersion
from alerts.sms_text import fit_sms, is_gsm7, transliterate
from i18n import translate
from providers.webpush import PushMessage
from rollcall import text as rollcall_text
from rollcall.models import SOURCE as ROLLCALL

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


def has_own_text(alert: Alert | AlertVersion, lang: str) -> bool:
    """True when residents reading `lang` get a text written in `lang` (Polish always has
    one); otherwise `.text(lang)` falls back to Polish and so does the whole SMS. The body
    decides: a title alone in `lang` over a Polish text is still the Polish message."""
    return lang == "pl" or bool((alert.texts.get(lang) or "").strip())


def sms_language(alert: Alert, lang: str) -> str:
    """The language whose SMS a resident reading `lang` gets: `lang`, or "pl" (fallback)."""
    return lang if has_own_text(approved(alert), lang) else "pl"


def needs_unicode(text: str) -> bool:
    """True when `text` has letters transliteration cannot map onto GSM-7 (Cyrillic, Greek
    beyond the few GSM capitals, ...): such a text must go as UCS-2 to be readable."""
    return any(ch.isalpha() and not is_gsm7(ch) and "?" in transliterate(ch) for ch in text)


def segment_cap(unicode_script: bool) -> int:
    """The segment cap for a text: SMS_MAX_SEGMENTS, or SMS_MAX_SEGMENTS_UNICODE for a text
    in a script GSM-7 cannot carry."""
    cfg = current_app.config
    if unicode_script:
        return cfg.get("SMS_MAX_SEGMENTS_UNICODE", 5)
    return cfg.get("SMS_MAX_SEGMENTS", 2)


def personal(alert: Alert) -> bool:
    """True for a message whose SMS differs per resident (a roll-call's, with its link)."""
    return alert.source == ROLLCALL


def sms_body(alert: Alert, lang: str, subscriber_id: int | None = None) -> str:
    """The exact SMS text for a resident reading `lang` (deterministic: reconciliation
    compares it with what the provider says it sent). Without a text in `lang` this is
    exactly ``sms_body(alert, "pl")``. A roll-call's SMS carries the resident's own link
    (`subscriber_id`; without one, a link of the same shape)."""
    lang = sms_language(alert, lang)
    m = current_app.extensions["municipality"]
    version = approved(alert)
    if personal(alert):
        return rollcall_text.sms_body(version.text(lang), lang, alert.meta["roll_call"], subscriber_id)
    title = version.title(lang).rstrip(".")
    text = " ".join(version.text(lang).split())
    full = f"{m.name}: {_prefix(version, lang)}{title}. {text}"
    unicode_script = lang != "pl" and needs_unicode(full)
    keep = version.keep_diacritics or unicode_script
    return fit_sms(full, max_segments=segment_cap(unicode_script), link=alert_url(alert, lang),
                   keep_diacritics=keep)


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
