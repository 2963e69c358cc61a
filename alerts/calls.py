"""The voice webhooks Twilio calls during and after a call: thin views over
alerts/call_outcome.py (what happened) and alerts/voice_text.py (what is said).

    POST /webhooks/twilio/voice/answer?d=<delivery>   the call was answered: TwiML to play
    POST /webhooks/twilio/voice/gather?d=<delivery>   a key was pressed: TwiML to go on with
    POST /webhooks/twilio/voice/status?d=<delivery>   the call ended: 204
    POST /webhooks/twilio/voice/incoming              someone calls the gmina's number (a missed
                                                      call returned): what is in force, read out

Each is signature-checked like the SMS webhooks (403, and nothing changed, otherwise). A
call that is none of the delivery's is answered politely and changes nothing.
"""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, Response, abort, current_app, request
from sqlalchemy import select

from alerts import call_outcome, in_force, voice_text
from alerts.call_outcome import CURRENT
from db import db, utcnow
from alerts.render import approved
from providers.twilio_voice import CallReport, message_twiml, parse_report, say_twiml
from rollcall import answers as rollcall_answers
from rollcall import text as rollcall_text
from rollcall.models import HELP, SAFE, SOURCE as ROLLCALL, VIA_VOICE, RollCallMember
from subscribers.models import Subscriber
from webhook_checks import require_twilio_signature

bp = Blueprint("calls", __name__, url_prefix="/webhooks/twilio/voice")


def _language(delivery) -> str:  # noqa: ANN001 - a Delivery
    """The language of this resident's call (alerts/voice_text.call_language)."""
    resident = db.session.get(Subscriber, delivery.subscriber_id) if delivery.subscriber_id else None
    return voice_text.call_language(delivery.alert, resident.language if resident else None)


def _twiml(xml: str) -> Response:
    return Response(xml, mimetype="text/xml")


def _report() -> CallReport:
    channel = current_app.extensions.get("voice")
    if channel is None:
        abort(404)
    require_twilio_signature(channel)
    report = parse_report(request.form)
    if report is None:
        abort(400)
    return report


def _url(endpoint: str, delivery_id: int) -> str:
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/webhooks/twilio/voice/{endpoint}?d={delivery_id}"


def _message(delivery_id: int, alert, lang: str) -> str:  # noqa: ANN001 - an Alert
    if alert.source == ROLLCALL:
        # A roll-call's question, and its own keys: 1 safe, 2 help, 3 again.
        question = approved(alert).text(lang)
        template = bool((alert.meta or {}).get("template"))
        return message_twiml(voice_text.voice(lang), rollcall_text.spoken_question(question, lang, template),
                             rollcall_text.menu(lang), _url("gather", delivery_id), voice_text.phrase("goodbye", lang))
    return message_twiml(voice_text.voice(lang), voice_text.message_parts(alert, lang), voice_text.menu(lang),
                         _url("gather", delivery_id), voice_text.phrase("goodbye", lang))


def _menu(delivery_id: int, alert, lang: str) -> str:  # noqa: ANN001 - an Alert
    menu = rollcall_text.menu(lang) if alert.source == ROLLCALL else voice_text.menu(lang)
    return message_twiml(voice_text.voice(lang), [], menu, _url("gather", delivery_id),
                         voice_text.phrase("goodbye", lang))


def _rollcall_key(delivery, report: CallReport) -> tuple[str | None, CallReport]:  # noqa: ANN001
    """A key in a roll-call's call: 1 (safe) and 2 (help) answer it and, like 1 in any call,
    confirm the call was heard; 3 is "again". The answer (or None) and the key as the call's
    own menu reads it."""
    digit = (report.digits or "")[:1]
    answer = {"1": SAFE, "2": HELP}.get(digit)
    if answer is None:
        # 3 is this menu's "again" (2 in a warning's); any other key the same as there.
        return None, replace(report, digits="2") if digit == "3" else report
    meta = delivery.alert.meta or {}
    member = db.session.scalar(select(RollCallMember).where(
        RollCallMember.roll_call_id == meta.get("roll_call"), RollCallMember.subscriber_id == delivery.subscriber_id))
    if member is not None:
        rollcall_answers.record(member, answer, None, VIA_VOICE)
    return answer, replace(report, digits="1")


@bp.post("/answer")
def voice_answer() -> Response:
    report = _report()
    delivery, relation = call_outcome.find(request.args.get("d"), report)
    if delivery is None or relation != CURRENT:
        db.session.rollback()
        return _twiml(say_twiml(voice_text.voice(), [voice_text.phrase("not_found")]))
    play = call_outcome.answered(delivery, report, utcnow())
    alert = delivery.alert
    lang = _language(delivery)
    if play == "gone":
        xml = say_twiml(voice_text.voice(lang), [voice_text.phrase("not_found", lang)])
    elif play == "voicemail" and alert.source == ROLLCALL:
        # A machine cannot answer: the question, and how to answer it.
        template = bool((alert.meta or {}).get("template"))
        xml = say_twiml(voice_text.voice(lang), [*rollcall_text.spoken_question(approved(alert).text(lang), lang,
                                                                               template),
                                                 voice_text.phrase("rollcall_voicemail", lang)])
    elif play == "voicemail":
        xml = say_twiml(voice_text.voice(lang), voice_text.voicemail_parts(alert, lang))
    else:
        xml = _message(delivery.id, alert, lang)
    db.session.commit()
    return _twiml(xml)


@bp.post("/gather")
def voice_gather() -> Response:
    report = _report()
    delivery, relation = call_outcome.find(request.args.get("d"), report)
    # A confirmation (or a 9) from an earlier call of the delivery still counts: Twilio may
    # retry the key's webhook after the call's end already queued the next call.
    decisive = (report.digits or "")[:1] in ("1", "9")
    rollcall = delivery is not None and delivery.alert.source == ROLLCALL
    if rollcall:
        decisive = decisive or (report.digits or "")[:1] == "2"
    if delivery is None or relation != CURRENT and not decisive:
        db.session.rollback()
        return _twiml(say_twiml(voice_text.voice(), [voice_text.phrase("goodbye")]))
    answer = None
    if rollcall:
        answer, report = _rollcall_key(delivery, report)
    said = call_outcome.key_pressed(delivery, report, utcnow())
    alert = delivery.alert
    lang = _language(delivery)
    if answer is not None:
        xml = say_twiml(voice_text.voice(lang), [voice_text.phrase(f"rollcall_{answer}", lang)])
    elif said == "confirmed":
        xml = say_twiml(voice_text.voice(lang), [voice_text.phrase("confirmed", lang)])
    elif said == "opted_out":
        xml = say_twiml(voice_text.voice(lang), [voice_text.phrase("opted_out", lang)])
    elif said == "repeat":
        xml = _message(delivery.id, alert, lang)
    else:
        xml = _menu(delivery.id, alert, lang)
    db.session.commit()
    return _twiml(xml)


@bp.post("/incoming")
def voice_incoming() -> Response:
    """A resident who missed our call rings back: read what is in force now, most severe
    first. Nothing about the caller is looked up or changed (a caller ID can be forged)."""
    _report()
    return _twiml(say_twiml(voice_text.voice(), voice_text.in_force_parts(in_force.current().in_force)))


@bp.post("/status")
def voice_status() -> Response:
    report = _report()
    now = utcnow()
    delivery, relation = call_outcome.find(request.args.get("d"), report)
    if delivery is not None and relation == CURRENT:
        call_outcome.ended(delivery, report, now)
    else:
        # An earlier call of the delivery, or none of ours: kept for the record, acted on never.
        call_outcome.record_event(delivery, report, report.status, now, detail="not the delivery's current call")
    db.session.commit()
    return Response(status=204)
