"""Twilio webhooks for residents' SMS: signature first (403), then one call to keywords."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request

import webhook_checks
from providers.twilio_webhooks import parse_inbound, twiml_reply
from subscribers.keywords import handle_inbound

bp = Blueprint("twilio_inbound", __name__, url_prefix="/webhooks/twilio")
log = logging.getLogger(__name__)


def require_twilio_signature() -> None:
    """Abort with 403 unless the request is signed by Twilio for its public URL
    (PUBLIC_BASE_URL); refusals are recorded for the dashboard and /healthz."""
    webhook_checks.require_twilio_signature()


@bp.post("/inbound")
def inbound() -> Response:
    require_twilio_signature()
    message = parse_inbound(request.form)
    # Answer 200 to what we do not understand, so Twilio does not retry it.
    reply = handle_inbound(message) if message else None
    return Response(twiml_reply(reply), mimetype="application/xml")
