"""Residents' SMS keywords: START [area], STOP and its Polish forms, POMOC/HELP.

Matching ignores case, diacritics and punctuation ("Rezygnacja!", "wypisz", "stop sms").
"""

from __future__ import annotations

import re

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from alerts.sms_text import fit_sms, transliterate
from db import db
from i18n import translate
from providers.twilio_webhooks import InboundMessage
from rollcall import answers as rollcall_answers
from rollcall.models import SAFE, VIA_SMS
from subscribers import service
from subscribers.errors import SubscriptionError, error_message
from subscribers.inbound_guard import claim_message, may_send_hint
from subscribers.links import manage_url
from subscribers.models import ACTIVE, InboundSms, Subscriber
from subscribers.phone import normalize_phone

STOP_WORDS = {"STOP", "NIE", "WYPISZ", "REZYGNACJA", "STOPSMS", "KONIEC", "UNSUBSCRIBE", "STOPALL", "QUIT",
              "CANCEL", "END", "OPTOUT", "REVOKE"}
# Residents write inflected forms: "Rezygnuję", "wypisuję się", "wypisać".
STOP_PREFIXES = ("REZYGN", "WYPIS")
START_WORDS = {"START", "TAK", "ZAPISZ", "YES", "UNSTOP"}
HELP_WORDS = {"POMOC", "HELP", "INFO"}
# While a roll-call asks "are you safe?", "Nie..." and "Koniec..." are answers, not opt-outs.
PLAIN_STOP_WORDS = STOP_WORDS - {"NIE", "KONIEC", "END", "CANCEL"}


def classify(body: str) -> tuple[str, str | None]:
    """("stop" | "start" | "help" | "unknown", argument) for an SMS body."""
    words = re.sub(r"[^A-Z0-9 ]", " ", transliterate(body).upper()).split()
    if not words:
        return "unknown", None
    first = words[0]
    if "".join(words[:2]) in STOP_WORDS or first in STOP_WORDS or first.startswith(STOP_PREFIXES):
        return "stop", None
    # START and HELP only as the whole text ("START", "START KOZY"): "Tak, dziękuję" or an
    # auto-reply beginning "Info:" must not re-subscribe anyone or start a paid exchange.
    # (STOP stays generous: honouring an opt-out too readily costs nothing.)
    if first in START_WORDS and len(words) <= 2:
        return "start", words[1] if len(words) > 1 else None
    if first in HELP_WORDS and len(words) == 1:
        return "help", None
    return "unknown", None


def _reply(key: str, lang: str, **params: str) -> str:
    m = current_app.extensions["municipality"]
    text = translate(f"sms.{key}", lang, gmina=m.name, **params)
    # Replies are paid SMS too: GSM-7 and at most 2 segments (Ukrainian stays Cyrillic).
    return fit_sms(text, max_segments=2, keep_diacritics=(lang == "uk"))


def handle_inbound(message: InboundMessage, _again: bool = False) -> str | None:
    """Act on one incoming SMS and return the reply text (None: no reply).

    A MessageSid is handled once, for ever: a webhook Twilio retries, the same request sent
    twice at once, or a copied signed request replayed after the resident was erased
    (subscribers/inbound_guard.py) gets no reply and changes nothing.
    """
    m = current_app.extensions["municipality"]
    # First write of the transaction, before anything else is read (see claim_message).
    if not claim_message(message.provider_ref):
        db.session.rollback()
        return None
    action, argument = classify(message.body)
    inbound = InboundSms(provider_ref=message.provider_ref, from_phone=message.from_phone[:32],
                         body=message.body[:1600], action=action)
    db.session.add(inbound)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return None  # handled before the SID hashes existed

    origin = service.Origin("sms")
    subscriber = db.session.scalar(select(Subscriber).where(Subscriber.phone == message.from_phone))
    lang = subscriber.language if subscriber else m.default_language
    # With Advanced Opt-Out, Twilio already answered the keyword itself.
    silent = message.opt_out_type is not None

    if subscriber is not None and _answers_roll_call(subscriber, message.body, action, argument):
        member = rollcall_answers.member_for_reply(subscriber.id)
        if member is not None:
            return _rollcall_reply(inbound, member, message, lang, silent)

    if action == "stop":
        changed = subscriber is not None and service.opt_out(subscriber, origin, detail=message.body[:80])
        db.session.commit()
        return _reply("stopped", lang) if changed and not silent else None

    if action == "help":
        # Every reply that changes nothing is a paid SMS an auto-responder could loop on: the
        # same once-a-day allowance as the hint.
        answer = not silent and may_send_hint(message.from_phone)
        db.session.commit()
        return _reply("help", lang, site=current_app.config["PUBLIC_BASE_URL"]) if answer else None

    if action == "start":
        try:
            phone = normalize_phone(message.from_phone, current_app.config["ALLOWED_PHONE_REGIONS"])
            subscriber, outcome = service.keyword_signup(phone, argument, origin)
        except IntegrityError:
            if _again:
                raise
            # A new number's START arrived twice at once under two SIDs (a resent text) and
            # the other request created the resident first: start over, it exists now.
            db.session.rollback()
            return handle_inbound(message, _again=True)
        except SubscriptionError as exc:
            # Nothing to undo: the number and the area are checked before anything is
            # written, and a rollback would also drop the claim on this MessageSid.
            inbound.action = f"start:{exc.code}"
            answer = may_send_hint(message.from_phone)
            db.session.commit()
            if not answer:
                return None
            if exc.code == "area_unknown":
                codes = [a.code for a in m.areas]
                return _reply("area_unknown", lang, area=argument or "", codes=", ".join(codes),
                              example=codes[0])
            return error_message(exc, lang)
        # "already" changes nothing: its reply (with the link) is rationed like the hint.
        if outcome == "already" and not may_send_hint(message.from_phone):
            db.session.commit()
            return None
        db.session.commit()  # "already" writes nothing else, but this SMS is still handled
        link = manage_url(subscriber)
        lang = subscriber.language
        if outcome == "area_changed":
            area = m.area(argument or "")
            return _reply("area_added", lang, area=area.name if area else "", link=link)
        if silent and outcome != "already":
            return None
        return _reply({"subscribed": "subscribed", "resumed": "resumed", "already": "already"}[outcome],
                      lang, link=link)

    # Not a keyword: the hint is a paid SMS, so one per number per day, whatever comes in.
    hint = may_send_hint(message.from_phone)
    db.session.commit()
    return _reply("unknown", lang) if hint else None


def _answers_roll_call(subscriber: Subscriber, body: str, action: str, argument: str | None) -> bool:
    """Whether an SMS from a resident asked in a roll-call may be an answer to it: anything
    but a plain opt-out ("STOP", "Rezygnuję": "Nie, woda w domu" is an answer, not a STOP),
    a sign-up to a village ("START KOZY", not "Tak, dziękuję") or a START from a resident who
    left (they want their messages back)."""
    words = re.sub(r"[^A-Z0-9 ]", " ", transliterate(body).upper()).split()
    # An opt-out stays an opt-out however it goes on ("STOP, nie chcę tych SMS").
    if words and (words[0] in PLAIN_STOP_WORDS or "".join(words[:2]) in PLAIN_STOP_WORDS
                  or words[0].startswith(STOP_PREFIXES)):
        return False
    m = current_app.extensions["municipality"]
    if action == "start" and (argument and m.area(argument) is not None or subscriber.status != ACTIVE):
        return False
    return True


def _rollcall_reply(inbound: InboundSms, member, message: InboundMessage, lang: str,  # noqa: ANN001
                    silent: bool) -> str | None:
    """Record a roll-call answer by SMS; confirm it when it changed what counts (an
    auto-responder repeating itself gets nothing), or when a late one asks for help."""
    answer = rollcall_answers.classify(message.body)
    inbound.action = f"rollcall:{answer}"
    recorded = rollcall_answers.record(member, answer, message.body, VIA_SMS)
    reply = None
    if recorded.changed:
        reply = f"rollcall_{answer}"
    elif recorded.late and answer != SAFE and may_send_hint(message.from_phone):
        reply = "rollcall_late"
    db.session.commit()
    return _reply(reply, lang) if reply and not silent else None

