"""The staff admin: messages (write, preview, approve, send, follow) and people (accounts,
audit log, residents). Domain rules live in alerts/approval.py, alerts/preview.py and
staff/auth.py; these blueprints only read forms and render."""


def add_error_pages(bp) -> None:  # noqa: ANN001
    """The same friendly pages for a missing CSRF token and a forbidden action on every admin
    blueprint (blueprint error handlers only cover their own views)."""
    from flask import render_template
    from flask_wtf.csrf import CSRFError

    from i18n import t

    @bp.errorhandler(CSRFError)
    def _csrf_failed(exc: CSRFError) -> tuple[str, int]:
        return render_template("admin/auth/message.html", title=t("admin_auth.csrf.title"),
                               text=t("admin_auth.csrf.text")), 400

    @bp.errorhandler(403)
    def _forbidden(exc: Exception) -> tuple[str, int]:
        return render_template("admin/auth/message.html", title=t("admin_auth.forbidden.title"),
                               text=t("admin_auth.forbidden.text")), 403
