"""The SMS providers on the dashboard: the live split, its figures and shifts, and a pin.

Admins pin a split (or return it to automatic failover) with a reason; the change itself is
alerts/balance.py ``pin``, recorded as shifts and in the audit log.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, request, url_for

from admin import add_error_pages
from alerts import balance
from db import db
from i18n import current_language, t
from staff.auth import current_staff, login_required

bp = Blueprint("admin_providers", __name__, url_prefix="/admin/sms")
add_error_pages(bp)


def provider_overview() -> dict[str, Any]:
    """For the dashboard template (a context global): the overview of alerts/balance.py,
    with every reason in the page's language."""
    view = balance.overview(current_app.extensions["sms_split"])
    lang = current_language()
    for row in view["providers"]:
        row["reason"] = balance.describe(row["reason"], lang)
    view["shifts"] = [{"provider": s.provider, "old_weight": s.old_weight, "new_weight": s.new_weight,
                       "at": s.at,
                       "actor": t("sms_why.actor_automatic") if s.actor == "automatic" else s.actor, "reason": balance.describe(s.reason, lang)}
                      for s in view["shifts"]]
    return view


@bp.post("/split")
@login_required("admin")
def pin_split() -> Any:
    """Pin the split from the dashboard form (one share per provider), or unpin it."""
    resting = current_app.extensions["sms_split"]
    reason = " ".join((request.form.get("reason") or "").split())[:200]
    auto = request.form.get("mode") == "auto"
    split = None
    try:
        if not reason:
            raise ValueError(t("admin.sms.reason_required"))
        if not auto:
            split = {}
            for name in resting:
                raw = (request.form.get(f"share_{name}") or "").strip()
                if not raw.isdigit() or not 0 <= int(raw) <= 100:
                    raise ValueError(t("admin.sms.share_invalid", provider=name))
                split[name] = int(raw)
            if not any(split.values()):
                raise ValueError(t("admin.sms.all_zero"))
        staff = current_staff()
        balance.pin(split, f"staff:{staff.email}", reason, resting, staff=staff)
    except ValueError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.dashboard") + "#providers")
    flash(t("admin.sms.unpinned" if auto else "admin.sms.pinned"), "info")
    return redirect(url_for("admin.dashboard") + "#providers")
