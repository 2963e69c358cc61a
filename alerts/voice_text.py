"""What a call says: the message made speakable, its shorter voicemail version, the key menu,
and the code of a sign-up call.

Calls are read in Polish by a Polish voice (VOICE_NAME): the normaliser (alerts/speech.py)
writes out Polish abbreviations, and a Polish voice reading an English or Ukrainian text
would be hard to follow. Staff may replace the spoken text of a message (Alert.spoken, in
the preview); everything here reads the approved version, like the SMS (alerts/render.py).
"""

from __future__ import annotations

import math
import re

from flask import current_app

from alerts import speech
from alerts.models import KIND_CANCEL, KIND_UPDATE, Alert, AlertVersion
from alerts.render import approved
from i18n import translate

CALL_LANGUAGE = "pl"
# The voicemail version: the title and the first sentences, up to about this many characters.
VOICEMAIL_CHARS = 220
_DIGITS = ["zero", "jeden", "dwa", "trzy", "cztery", "pięć", "sześć", "siedem", "osiem", "dziewięć"]


def intro(message: Alert | AlertVersion) -> str:
    """Who is calling and what kind of message this is: "Ćwiczenia. Aktualizacja. Komunikat Gminy Kozy."."""
    m = current_app.extensions["municipality"]
    words = []
    if message.exercise:
        words.append(translate("voice.exercise", CALL_LANGUAGE))
    if message.kind == KIND_UPDATE:
        words.append(translate("voice.update", CALL_LANGUAGE))
    elif message.kind == KIND_CANCEL:
        words.append(translate("voice.cancel", CALL_LANGUAGE))
    words.append(translate("voice.intro", CALL_LANGUAGE, gmina=m.genitive))
    return " ".join(words)


def derived_text(message: Alert | AlertVersion) -> str:
    """The message's title and text, made speakable: what a call reads unless staff edited it."""
    title = message.title(CALL_LANGUAGE).strip().rstrip(".!")
    return speech.spoken(f"{title}. {message.text(CALL_LANGUAGE)}")


def spoken_text(message: Alert | AlertVersion) -> str:
    """What the call reads after the intro: staff's wording if they gave one, else derived."""
    edited = (message.spoken or {}).get(CALL_LANGUAGE)
    return edited.strip() if edited and edited.strip() else derived_text(message)


def message_parts(alert: Alert) -> list[str]:
    """The call of `alert` (its approved version): intro, then the spoken text."""
    version = approved(alert)
    return [intro(version), spoken_text(version)]


def voicemail_parts(alert: Alert) -> list[str]:
    """The shorter version an answering machine gets: intro, the first sentences, and where
    to read the rest."""
    version = approved(alert)
    text = spoken_text(version)
    short = text
    if len(text) > VOICEMAIL_CHARS:
        # Whole sentences up to the limit; at least the first one.
        sentences = re.split(r"(?<=[.!?])\s+", text)
        short = sentences[0]
        for sentence in sentences[1:]:
            if len(short) + 1 + len(sentence) > VOICEMAIL_CHARS:
                break
            short += " " + sentence
    return [intro(version), short, translate("voice.voicemail_more", CALL_LANGUAGE)]


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


def menu() -> str:
    return translate("voice.menu", CALL_LANGUAGE)


def phrase(key: str) -> str:
    """One of the call's fixed phrases (voice.confirmed, voice.opted_out, voice.goodbye, ...)."""
    return translate(f"voice.{key}", CALL_LANGUAGE)


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
