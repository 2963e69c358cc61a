"""SMSAPI delivery reports (GET to the per-message notify_url).

SMSAPI does not sign its reports, so each notify_url carries our delivery id and a secret
only we can compute from it (providers/smsapi_sms.py `notify_url`). A report whose URL
does not carry the right secret is refused (403) and changes nothing; one that does is
recorded as a DeliveryEvent and moves its delivery forward only (alerts/receipts.py
`apply_report`). A STOP report (412) opts the resident out, as Twilio's 21610 does.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, request

from alerts.models import Delivery
from alerts.receipts import apply_report
from db import db, utcnow
from providers.smsapi_sms import STOP_STATUS, report_status
from providers.twilio_webhooks import StatusReport
from subscribers.models import ACTIVE, Subscriber

bp = Blueprint("smsapi_receipts", __name__, url_prefix="/webhooks/smsapi")


@bp.get("/status")
def smsapi_status() -> Response:
    """One report. SMSAPI expects the body "OK"; anything else makes it retry."""
    channel = current_app.extensions["sms_channels"].get("smsapi")
    if channel is None or not channel.validate_webhook(request.url, request.args, ""):
        abort(403)
    raw_id = request.args.get("d", "")
    msg_id = request.args.get("MsgId", "")[:64]
    code = request.args.get("status", "")
    if not raw_id.isdigit() or not msg_id:
        return Response("OK", mimetype="text/plain")
    status = report_status(code)
    delivery = db.session.get(Delivery, int(raw_id), with_for_update=True)
    if delivery is not None and delivery.provider_ref not in (None, msg_id):
        if delivery.provider_ref.startswith("idx:"):
            # A resend refused by idx left no SMSAPI id; the report names the real one.
            delivery.provider_ref = None
        else:
            delivery = None  # the URL is ours, but not for this message: record only
    report = StatusReport(provider_ref=msg_id, status=status or f"smsapi-{code}"[:16],
                          error_code=int(code) if status in ("undelivered", "failed") else None, to=None)
    apply_report(delivery, report, "callback", utcnow())
    if delivery is not None and code == str(STOP_STATUS) and delivery.subscriber_id is not None:
        from subscribers import service

        subscriber = db.session.get(Subscriber, delivery.subscriber_id)
        if subscriber is not None and subscriber.status == ACTIVE:
            service.opt_out(subscriber, service.Origin("provider"), detail="SMSAPI report 412 STOP")
    db.session.commit()
    return Response("OK", mimetype="text/plain")
