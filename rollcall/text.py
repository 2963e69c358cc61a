"""What a resident receives in a roll-call: the question with their personal link (SMS), the
question read out with its two keys (a call), and the link itself.

The link is ``/r/<roll-call>.<resident>.<MAC>``: 16 characters of HMAC-SHA256 (96 bits)
keyed by SECRET_KEY. It lets its holder answer one roll-call for one resident and nothing
else, and opens nothing once the resident is erased (their membership is deleted with them).
It is built from the ids alone, so the dispatcher needs no lookup per SMS, and the same SMS
text is rebuilt exactly when reconciliation compares it with what the provider sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from flask import current_app

from alerts.sms_text import fit_sms
from i18n import translate

MAC_LENGTH = 16


def _mac(roll_call_id: int, subscriber_id: int) -> str:
    key = hmac.new(current_app.config["SECRET_KEY"].encode(), b"syrena.rollcall-link", hashlib.sha256).digest()
    digest = hmac.new(key, f"{roll_call_id}.{subscriber_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:MAC_LENGTH]


def token(roll_call_id: int, subscriber_id: int) -> str:
    return f"{roll_call_id}.{subscriber_id}.{_mac(roll_call_id, subscriber_id)}"


def answer_url(roll_call_id: int, subscriber_id: int) -> str:
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return f"{base}/r/{token(roll_call_id, subscriber_id)}"


def read_token(value: str) -> tuple[int, int] | None:
    """(roll-call id, resident id) of a genuine token, or None for a forged or tampered one."""
    parts = value.split(".")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) <= 18 for p in parts[:2]):
        return None
    if len(parts[2]) != MAC_LENGTH:
        return None
    roll_call_id, subscriber_id = int(parts[0]), int(parts[1])
    if not hmac.compare_digest(parts[2].encode(), _mac(roll_call_id, subscriber_id).encode()):
        return None
    return roll_call_id, subscriber_id


def default_question(lang: str) -> str:
    """The template: TAK / POMOC by reply where the gmina has a two-way number, else the link."""
    m = current_app.extensions["municipality"]
    return translate("rollcall.question" if m.inbound_number else "rollcall.question_link", lang)


def sms_body(question: str, lang: str, roll_call_id: int, subscriber_id: int | None) -> str:
    """The SMS: "<gmina>: <question> <link>", GSM-7 (Ukrainian in Cyrillic stays UCS-2), at
    most two segments with the link never cut. Without a resident (a preview) the link has
    the shape of a real one."""
    m = current_app.extensions["municipality"]
    link = (answer_url(roll_call_id, subscriber_id) if subscriber_id is not None
            else f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/r/{roll_call_id}.1234.{'x' * MAC_LENGTH}")
    text = " ".join(question.split())
    keep = lang == "uk" and any("\u0400" <= ch <= "\u04ff" for ch in text)
    # The link goes last and whole: fit the words in front of it, then add it.
    room = fit_sms(f"{m.name}: {text} {'x' * len(link)}", max_segments=2 if not keep else 3, keep_diacritics=keep)
    if room.endswith("x" * len(link)):
        return room[: -len(link)] + link
    return fit_sms(f"{m.name}: {text}", max_segments=2 if not keep else 3, link=link, keep_diacritics=keep)


def spoken_question(question: str, lang: str, template: bool) -> list[str]:
    """What a roll-call call says before its menu: who calls, and the question."""
    from alerts import speech

    m = current_app.extensions["municipality"]
    intro = translate("voice.intro", lang, gmina=m.name_from(lang))
    question = asked(question, template)
    return [intro, speech.spoken(question) if lang == "pl" else speech.without_links(question)]


def asked(question: str, template: bool) -> str:
    """What a call reads and the answer page shows, each with its own way to answer: the
    template without how to answer it by SMS ("Odpowiedz TAK lub POMOC"), staff's own words
    as written."""
    if template and "?" in question:
        return question.split("?")[0].strip() + "?"
    return question


def menu(lang: str) -> str:
    return translate("voice.rollcall_menu", lang)
