"""The staff accounts screen (admins only), on the admin_people blueprint: create accounts,
change roles, disable and enable, sign someone out everywhere, set a temporary password,
switch off a lost second factor. Every action is audited; none can leave the gmina without
an active admin.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, session, url_for
from sqlalchemy import func, select

from admin.people import EMAIL_RE, _staff, bp
from db import db
from i18n import t
from staff import audit, sessions
from staff.auth import end_all_sessions, login_required
from staff.cli import MIN_PASSWORD, issue_temporary_password
from staff.models import ROLES, StaffUser


def _active_admins() -> int:
    return db.session.scalar(select(func.count()).select_from(StaffUser)
                             .where(StaffUser.role == "admin", StaffUser.active.is_(True))) or 0


def removes_last_admin(account: StaffUser, *, role: str | None = None, active: bool | None = None) -> bool:
    """Would this change leave the gmina without an active admin (nobody could then manage accounts)?"""
    if account.role != "admin" or not account.active:
        return False
    still_admin = (role or account.role) == "admin" and (account.active if active is None else active)
    return not still_admin and _active_admins() <= 1


def _render_accounts(errors: dict[str, str] | None = None, form: dict[str, str] | None = None,
                     status: int = 200, temporary: tuple[StaffUser, str] | None = None) -> Any:
    accounts = db.session.scalars(select(StaffUser).order_by(func.lower(StaffUser.email))).all()
    live = {a.id: sessions.live_count(a) for a in accounts}
    body = render_template("admin/people/accounts.html", accounts=accounts, roles=ROLES, errors=errors or {},
                           form=form or {"email": "", "role": "editor"}, min_password=MIN_PASSWORD,
                           live_sessions=live, temporary=temporary)
    return (body, status) if status != 200 else body


@bp.route("/accounts", methods=["GET", "POST"])
@login_required("admin")
def accounts() -> Any:
    if request.method == "GET":
        return _render_accounts()
    me = _staff()
    action = request.form.get("action")
    if action == "create":
        return _create_account(me)
    account = db.session.get(StaffUser, request.form.get("account_id", type=int) or 0)
    if account is None:
        abort(404)
    target = f"staff:{account.id}"
    if action == "role":
        role = request.form.get("role")
        if role not in ROLES:
            abort(400)
        if role == account.role:
            return redirect(url_for("admin_people.accounts"))
        if removes_last_admin(account, role=role):
            return _render_accounts({"account": t("admin_people.accounts.last_admin")}, status=400)
        old = account.role
        account.role = role
        audit.record("account_role_changed", staff=me, target=target, commit=False, email=account.email,
                     old=old, new=role)
        message = t("admin_people.flash.role_changed", email=account.email,
                    role=t(f"admin_people.role.{role}"))
    elif action in ("disable", "enable"):
        active = action == "enable"
        if active == account.active:
            return redirect(url_for("admin_people.accounts"))
        if removes_last_admin(account, active=active):
            return _render_accounts({"account": t("admin_people.accounts.last_admin")}, status=400)
        account.active = active
        if not active:
            end_all_sessions(account, "disabled")
        audit.record("account_enabled" if active else "account_disabled", staff=me, target=target,
                     commit=False, email=account.email)
        message = t(f"admin_people.flash.account_{action}d", email=account.email)
    elif action == "sign_out":
        count = end_all_sessions(account, "signed_out_everywhere")
        audit.record("account_signed_out", staff=me, target=target, commit=False, email=account.email,
                     sessions=count)
        if account.id == me.id:
            db.session.commit()
            session.clear()
            flash(t("admin_auth.flash.signed_out_everywhere"), "info")
            return redirect(url_for("admin_auth.login"))
        message = t("admin_people.flash.signed_out", email=account.email)
    elif action == "reset_password":
        if account.id == me.id:
            # One's own password is changed knowing the current one (Moje konto), never reset.
            return _render_accounts({"account": t("admin_people.accounts.reset_own")}, status=400)
        # Shown once on this page, never put in the (signed, not encrypted) session cookie.
        password = issue_temporary_password(account, actor=me)
        db.session.commit()
        return _render_accounts(temporary=(account, password))
    elif action == "reset_totp":
        account.totp_secret = None
        # Flagged: a second factor reset is how accounts get taken over; someone should look.
        audit.record("account_totp_reset", staff=me, target=target, flagged=True, commit=False,
                     email=account.email)
        message = t("admin_people.flash.totp_reset", email=account.email)
    else:
        abort(400)
    db.session.commit()
    flash(message, "info")
    return redirect(url_for("admin_people.accounts"))


def _create_account(me: StaffUser) -> Any:
    email = (request.form.get("email") or "").strip().lower()
    role = request.form.get("role") or ""
    password = request.form.get("password") or ""
    errors: dict[str, str] = {}
    if not EMAIL_RE.match(email) or len(email) > 254:
        errors["email"] = t("admin_people.accounts.email_invalid")
    elif db.session.scalar(select(StaffUser.id).where(func.lower(StaffUser.email) == email)):
        errors["email"] = t("admin_people.accounts.email_taken")
    if role not in ROLES:
        errors["role"] = t("admin_people.accounts.role_invalid")
    if len(password) < MIN_PASSWORD:
        errors["password"] = t("admin_people.accounts.password_short", min=MIN_PASSWORD)
    if errors:
        return _render_accounts(errors, {"email": email, "role": role}, status=400)
    # The admin chose this password: the new colleague must replace it at the first sign-in.
    account = StaffUser(email=email, role=role, active=True, must_change_password=True)
    account.set_password(password)
    db.session.add(account)
    db.session.flush()
    audit.record("account_created", staff=me, target=f"staff:{account.id}", commit=False, email=email,
                 role=role)
    db.session.commit()
    flash(t("admin_people.flash.account_created", email=email), "info")
    return redirect(url_for("admin_people.accounts"))
