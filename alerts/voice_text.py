"""What a call says: the message made speakable, its shorter voicemail version, the key menu,
and the code of a sign-up call.

Calls are read in Polish by a Polish voice (VOICE_NAME), with the normaliser
(alerts/speech.py) writing out Polish abbreviations; a resident reading English or Ukrainian
hears their language where the gmina set a voice for it (VOICE_NAME_EN, VOICE_NAME_UK) and
the message has its own text in it. Staff may replace the spoken text of a message (Alert.spoken, in
the preview); everything here reads the approved version, like the SMS (alerts/render.py).
"""

from __future__ import annotations

import math
import re

from flask import current_app

from alerts import speech
from alerts.models import KIND_CANCEL, KIND_UPDATE, Alert, AlertVersion
from alerts.render import approved, has_own_text
from providers.twilio_voice import Voice
from i18n import translate

CALL_LANGUAGE = "pl"
# Languages a call can be read in, with the settings of their voice (VOICE_NAME_EN, ...).
VOICE_SETTINGS = {"pl": ("VOICE_NAME", "VOICE_LANGUAGE"), "en": ("VOICE_NAME_EN", "VOICE_LANGUAGE_EN"),
                  "uk": ("VOICE_NAME_UK", "VOICE_LANGUAGE_UK")}
# The voicemail version: the title and the first sentences, up to about this many characters.
VOICEMAIL_CHARS = 220
_DIGITS = ["zero", "jeden", "dwa", "trzy", "cztery", "pięć", "sześć", "siedem", "osiem", "dziewięć"]


def voice(lang: str = CALL_LANGUAGE) -> Voice:
    """The <Say> voice for `lang` (the Polish one when that language has none set)."""
    cfg = current_app.config
    name_key, language_key = VOICE_SETTINGS.get(lang, VOICE_SETTINGS[CALL_LANGUAGE])
    if not _voice_set(lang):
        name_key, language_key = VOICE_SETTINGS[CALL_LANGUAGE]
    return Voice(cfg.get(name_key) or "Polly.Ola-Neural", cfg.get(language_key) or "pl-PL")


def _voice_set(lang: str) -> bool:
    """Whether the gmina set a voice for `lang` ("off" or empty: none)."""
    name = str(current_app.config.get(VOICE_SETTINGS[lang][0]) or "").strip()
    return bool(name) and name.lower() != "off"


def call_language(alert: Alert, resident_language: str | None) -> str:
    """The language a resident's call about `alert` is read in: theirs when the gmina set a
    voice for it and the message has its own text in it, else Polish (which the normaliser
    makes speakable, and which staff checked in the preview)."""
    lang = resident_language or CALL_LANGUAGE
    if lang == CALL_LANGUAGE or lang not in VOICE_SETTINGS:
        return CALL_LANGUAGE
    if not _voice_set(lang) or not has_own_text(approved(alert), lang):
        return CALL_LANGUAGE
    return lang


def intro(message: Alert | AlertVersion, lang: str = CALL_LANGUAGE) -> str:
    """Who is calling and what kind of message this is: "Ćwiczenia. Aktualizacja. Komunikat Gminy Kozy."."""
    m = current_app.extensions["municipality"]
    words = []
    if message.exercise:
        words.append(translate("voice.exercise", lang))
    if message.kind == KIND_UPDATE:
        words.append(translate("voice.update", lang))
    elif message.kind == KIND_CANCEL:
        words.append(translate("voice.cancel", lang))
    words.append(translate("voice.intro", lang, gmina=m.name_from(lang)))
    return " ".join(words)


def derived_text(message: Alert | AlertVersion, lang: str = CALL_LANGUAGE) -> str:
    """The message's title and text, made speakable: what a call reads unless staff edited
    it. Polish is written out for speaking (alerts/speech.py); another language loses only
    its links (the engine of that language reads its numbers)."""
    title = message.title(lang).strip().rstrip(".!")
    text = f"{title}. {message.text(lang)}"
    return speech.spoken(text) if lang == CALL_LANGUAGE else speech.without_links(text)


def spoken_text(message: Alert | AlertVersion, lang: str = CALL_LANGUAGE) -> str:
    """What the call reads after the intro: staff's wording if they gave one, else derived."""
    edited = (message.spoken or {}).get(lang)
    return edited.strip() if edited and edited.strip() else derived_text(message, lang)


def message_parts(alert: Alert, lang: str = CALL_LANGUAGE) -> list[str]:
    """The call of `alert` (its approved version): intro, then the spoken text."""
    version = approved(alert)
    return [intro(version, lang), spoken_text(version, lang)]


def voicemail_parts(alert: Alert, lang: str = CALL_LANGUAGE) -> list[str]:
    """The shorter version an answering machine gets: intro, the first sentences, and where
    to read the rest."""
    version = approved(alert)
    text = spoken_text(version, lang)
    short = text
    if len(text) > VOICEMAIL_CHARS:
        # Whole sentences up to the limit; at least the first one.
        sentences = re.split(r"(?<=[.!?])\s+", text)
        short = sentences[0]
        for sentence in sentences[1:]:
            if len(short) + 1 + len(sentence) > VOICEMAIL_CHARS:
                break
            short += " " + sentence
    return [intro(version, lang), short, translate("voice.voicemail_more", lang)]


# How many messages a returned call reads at most (the most severe first).
IN_FORCE_READ = 3


def in_force_parts(alerts: list[Alert]) -> list[str]:
    """A call to the gmina's number: who answers, then each message in force (its approved
    version: intro and spoken text), at most IN_FORCE_READ, or that there is none."""
    m = current_app.extensions["municipality"]
    parts = [translate("voice.incoming", CALL_LANGUAGE, gmina=m.genitive)]
    if not alerts:
        parts.append(phrase("incoming_none"))
    for alert in alerts[:IN_FORCE_READ]:
        parts.extend(message_parts(alert))
    if len(alerts) > IN_FORCE_READ:
        parts.append(phrase("incoming_more"))
    parts.append(phrase("goodbye"))
    return parts


def menu(lang: str = CALL_LANGUAGE) -> str:
    return translate("voice.menu", lang)


def phrase(key: str, lang: str = CALL_LANGUAGE) -> str:
    """One of the call's fixed phrases (voice.confirmed, voice.opted_out, voice.goodbye, ...)."""
    return translate(f"voice.{key}", lang)


def is_code_line(line: str) -> bool:
    """Whether a line of a code call is the code itself (digit words only): said slowly."""
    words = [w.strip(",.") for w in line.split()]
    return bool(words) and all(w in _DIGITS for w in words)


def code_parts(code: str) -> list[str]:
    """A sign-up code read twice, slowly: each digit a word of its own, commas between
    (the speech engine pauses at a comma); the caller says the digit lines slowly
    (``is_code_line``)."""
    digits = ", ".join(_DIGITS[int(d)] for d in code if d.isdigit())
    return [translate("voice.code_intro", CALL_LANGUAGE, gmina=current_app.extensions["municipality"].genitive),
            digits + ".", translate("voice.code_again", CALL_LANGUAGE), digits + ".",
            translate("voice.code_end", CALL_LANGUAGE)]


def estimate(parts: list[str]) -> int:
    """Seconds the call takes: the parts, the pauses between them and the menu said once."""
    words = " ".join([*parts, menu()])
    return speech.duration_seconds(words) + len(parts)


def billed_minutes(seconds: int) -> int:
    """Twilio bills every started minute."""
    return max(1, math.ceil(seconds / 60))
