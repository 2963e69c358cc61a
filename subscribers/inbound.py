"""Twilio webhooks for residents' SMS: signature first (403), then one call to keywords."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, request

from providers.twilio_webhooks import parse_inbound, twiml_reply
from subscribers.keywords import handle_inbound

bp = Blueprint("twilio_inbound", __name__, url_prefix="/webhooks/twilio")
log = logging.getLogger(__name__)


def require_twilio_signature() -> None:
    """Abort with 403 unless the request carries a valid X-Twilio-Signature.

    Behind a TLS proxy, request.url must be the public https URL Twilio called: configure
    PROXY_FIX_* or every signature fails.
    """
    channel = current_app.extensions["sms"]
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not channel.validate_webhook(request.url, request.form, signature):
        log.warning("rejected a Twilio webhook with a missing or wrong signature from %s", request.remote_addr)
        abort(403)


@bp.post("/inbound")
def inbound() -> Response:
    require_twilio_signature()
    message = parse_inbound(request.form)
    # Answer 200 to what we do not understand, so Twilio does not retry it.
    reply = handle_inbound(message) if message else None
    return Response(twiml_reply(reply), mimetype="application/xml")
