"""Staff register a resident from a signed paper form (subscribers/paper.py does the work),
and add residents to the closed groups (subscribers/groups.py).

The form is the residents' own preferences form (the same fields, checks and texts), with
the number, the form's reference and the day it was signed on top.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from admin import add_error_pages
from i18n import t
from staff.auth import current_staff, login_required
from subscribers import paper, service
from subscribers.errors import SubscriptionError
from subscribers.forms import Errors, PrefsForm, pref_fields

bp = Blueprint("admin_registration", __name__, url_prefix="/admin")
add_error_pages(bp)

FIELDS = {"phone", "reference", "signed_on", "closed_groups"}


def _render(form: PrefsForm, values: dict[str, str], errors: Errors) -> Any:
    body = render_template("admin/people/register.html", form=form, values=values, errors=errors)
    return (body, errors.status) if errors else body


def _signed_on(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw.strip()) if raw.strip() else None
    except ValueError:
        raise SubscriptionError("signed_on_invalid", field="signed_on", days=paper.FORM_MAX_AGE_DAYS) from None


@bp.route("/subscribers/new", methods=["GET", "POST"])
@login_required("editor")
def register() -> Any:
    if request.method == "GET":
        return _render(PrefsForm.defaults(), {"closed_groups": []}, Errors())
    form = PrefsForm.from_form(request.form)
    values = {name: request.form.get(name, "") for name in FIELDS}
    closed = sorted(set(request.form.getlist("closed_groups")))
    values["closed_groups"] = closed
    errors = Errors()
    user = current_staff()
    assert user is not None
    if closed and not user.can("approver"):
        # The page shows an editor no closed groups: said at the top of the form.
        errors.add(SubscriptionError("closed_groups_approver", field="closed_groups"), set())
    elif closed:
        from subscribers import groups

        try:
            groups.check_closed(closed)
        except SubscriptionError as exc:
            exc.field = "closed_groups"  # said next to the closed groups, not the residents' own
            errors.add(exc, FIELDS)
    prefs = signed_on = None
    try:
        prefs = form.parse()
    except SubscriptionError as exc:
        errors.add(exc, pref_fields())
    try:
        signed_on = _signed_on(values["signed_on"])
    except SubscriptionError as exc:
        errors.add(exc, FIELDS)
    for exc in paper.problems(values["phone"], values["reference"], signed_on):
        if exc.field not in errors.fields:
            errors.add(exc, FIELDS)
    if not errors:
        assert prefs is not None
        origin = service.Origin("staff", request.remote_addr, request.headers.get("User-Agent"))
        try:
            subscriber = paper.register(values["phone"], prefs, values["reference"], signed_on, user, origin,
                                        closed_groups=closed)
        except SubscriptionError as exc:
            errors.add(exc, FIELDS | pref_fields())
        else:
            flash(t("admin_people.register.done", reference=values["reference"].strip()), "info")
            return redirect(url_for("admin_people.subscriber", subscriber_id=subscriber.id))
    return _render(form, values, errors)


@bp.post("/subscribers/<int:subscriber_id>/groups")
@login_required("approver")
def group_membership(subscriber_id: int) -> Any:
    """Add to (or, with action=remove, take out of) a closed group, under its legal basis."""
    from db import db
    from subscribers import groups
    from subscribers.models import Subscriber

    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None:
        abort(404)
    user = current_staff()
    assert user is not None
    origin = service.Origin("staff", request.remote_addr, request.headers.get("User-Agent"))
    code = request.form.get("group", "")
    try:
        if request.form.get("action") == "remove":
            changed = groups.remove(subscriber, code, user, origin)
            flash(t("admin_people.groups.removed" if changed else "admin_people.groups.not_in"), "info")
        else:
            changed = groups.add(subscriber, code, user, origin)
            flash(t("admin_people.groups.added" if changed else "admin_people.groups.already"), "info")
    except SubscriptionError as exc:
        flash(t(f"error.{exc.code}"), "error")
    return redirect(url_for("admin_people.subscriber", subscriber_id=subscriber_id, _anchor="groups"))
