"""The resident's roll-call page, opened from the personal link in the SMS: the question,
two large buttons (safe / I need help) and room for their own words. It works with any
sender, an alphanumeric one included, and from any phone with a browser.

GET only shows (a messenger's link preview must not answer for anyone); POST answers, and
can be sent again to change the answer: the latest counts.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from sqlalchemy import select

from db import db
from i18n import LANGUAGES
from rollcall import answers, text
from rollcall.models import HELP, SAFE, VIA_LINK, RollCall, RollCallMember
from subscribers.models import Subscriber

bp = Blueprint("rollcall", __name__)
DONE = ("safe", "help", "late")  # what the page confirms after an answer


def _member(token: str) -> tuple[RollCallMember, RollCall, Subscriber]:
    ids = text.read_token(token)
    if ids is None:
        abort(404)
    found = db.session.execute(
        select(RollCallMember, RollCall, Subscriber)
        .join(RollCall, RollCall.id == RollCallMember.roll_call_id)
        .join(Subscriber, Subscriber.id == RollCallMember.subscriber_id)
        .where(RollCallMember.roll_call_id == ids[0], RollCallMember.subscriber_id == ids[1])).first()
    if found is None:
        abort(404)  # erased since, or never asked
    member, roll_call, subscriber = found
    if not request.args.get("lang") and request.cookies.get("lang") not in LANGUAGES:
        g.lang = subscriber.language if subscriber.language in LANGUAGES else g.lang
    return member, roll_call, subscriber


@bp.get("/r/<token>")
def page(token: str) -> str:
    member, roll_call, _subscriber = _member(token)
    lang = g.lang
    return render_template("public/rollcall.html", token=token, member=member, roll_call=roll_call,
                           question=text.asked(roll_call.question_in(lang), bool(roll_call.questions)),
                           done=request.args.get("done") if request.args.get("done") in DONE else None)


@bp.post("/r/<token>")
def answer(token: str) -> Response:
    member, _roll_call, _subscriber = _member(token)
    choice = request.form.get("answer")
    if choice not in (SAFE, HELP):
        abort(400)
    words = (request.form.get("text") or "").strip()
    recorded = answers.record(member, choice, words or None, VIA_LINK)
    db.session.commit()
    return redirect(url_for("rollcall.page", token=token, done="late" if recorded.late else choice), code=303)
