"""The application factory: ``create_app(overrides=None)``.

Reads the settings (config.py), loads the municipality profile, binds the database,
migrations and CSRF, registers the blueprints and CLI commands. Nothing runs at import time.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from flask import Flask, jsonify

import request_guard
from config import INSTANCE_DIR, ConfigError, check_settings, load_config
from db import csrf, db, migrate
from profiles import load_municipality
from proxy import TrustedProxyFix

__all__ = ["ConfigError", "create_app", "create_app_or_exit"]


def create_app_or_exit() -> Flask:
    """create_app() for the entry points (wsgi.py, run.py, scheduler.py): a configuration
    error ends the process with one line that says what to fix, not a traceback."""
    try:
        return create_app()
    except ConfigError as exc:
        print(f"Syrena cannot start: {exc}", file=sys.stderr, flush=True)
        # 3 is gunicorn's "worker failed to boot": it stops instead of restarting forever.
        raise SystemExit(3) from None


def engine_options(config: dict[str, Any]) -> dict[str, Any]:
    """SQLAlchemy's engine options. Behind PgBouncer in transaction mode (DATABASE_POOLER=
    pgbouncer) a transaction may run on another server connection than the last one, where
    psycopg's prepared statements do not exist: they are turned off."""
    options: dict[str, Any] = {"pool_pre_ping": True}
    if str(config.get("DATABASE_POOLER") or "").strip().lower() == "pgbouncer":
        options["connect_args"] = {"prepare_threshold": None}
    return options


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the app. A setting or profile it cannot run with raises ConfigError, whose
    one-line message names the setting (or file and field) and what would be right."""
    app = Flask(__name__, instance_path=str(INSTANCE_DIR))
    app.config.update(load_config((overrides or {}).get("SYRENA_ENV")))
    if overrides:
        app.config.update(overrides)
    check_settings(app.config)
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(app.config))
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # a slow resident must not lose the form
    # Flask defines these keys (SameSite as None), so setdefault would not apply: set them
    # unless a deployment or test chose a value.
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    if not app.config.get("SESSION_COOKIE_SAMESITE"):
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)

    if not app.debug and not app.testing:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The twilio SDK logs every request's headers at INFO: thousands of lines per alert.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

    # X-Forwarded-* count only when the direct peer is one of our proxies (proxy.py).
    hops = {k: app.config[f"PROXY_FIX_{k.upper()}"] for k in ("x_for", "x_proto", "x_host")}
    app.wsgi_app = TrustedProxyFix(app.wsgi_app, app.config["TRUSTED_PROXIES"], **hops)  # type: ignore[method-assign]

    from providers.sms import sms_channels_from_config
    from providers.voice import voice_channel_from_config
    from providers.webpush import WebPushChannel

    try:
        app.extensions["municipality"] = load_municipality(app.config["SYRENA_MUNICIPALITY"])
        _check_runtime_settings(app)
        # SMS_BACKEND=twilio,smsapi: every named provider carries traffic (alerts/routing.py);
        # "sms" is the first, for messages that have no provider of their own yet.
        app.extensions["sms_channels"] = sms_channels_from_config(app.config)
        app.extensions["sms"] = next(iter(app.extensions["sms_channels"].values()))
        from alerts.routing import parse_split

        app.extensions["sms_split"] = parse_split(app.config.get("SMS_SPLIT"), list(app.extensions["sms_channels"]))
        # None when no VAPID keys are configured: push is then simply off.
        app.extensions["webpush"] = WebPushChannel.from_config(app.config)
        app.extensions["voice"] = voice_channel_from_config(app.config)
    except ConfigError:
        raise
    except ValueError as exc:  # the providers name the setting; make it the one config error
        raise ConfigError(str(exc)) from None
    # The console backend is the developer's phone: it may print codes and links only there.
    if app.config["SYRENA_ENV"] == "development" and hasattr(app.extensions["sms"], "reveal"):
        app.extensions["sms"].reveal = True

    db.init_app(app)
    # Batch mode: SQLite can only change a table by copying it.
    migrate.init_app(app, db, directory=str(app.root_path + "/migrations"), render_as_batch=True,
                     compare_type=True)
    csrf.init_app(app)
    from alerts import public_cache

    public_cache.init_app(app)

    # Models must be imported before migrations or create_all look at the metadata.
    import alerts.gdpr  # noqa: F401  (adds a resident's messages to their data export)
    import alerts.models  # noqa: F401
    import alerts.routing  # noqa: F401  (the SMS split)
    import leader_lease  # noqa: F401  (the scheduler's lease)
    import metrics  # noqa: F401  (the dispatchers' heartbeats; GET /metrics)
    import rollcall.gdpr  # noqa: F401  (roll-call answers in the export, gone with erasure)
    import rollcall.models  # noqa: F401
    import staff.audit  # noqa: F401
    import staff.models  # noqa: F401
    import subscribers.models  # noqa: F401
    import webhook_checks  # noqa: F401

    from i18n import init_babel, local_time, month_name, remember_language, select_language, t

    init_babel(app)
    app.before_request(select_language)
    # Before any view: NUL bytes and over-deep JSON get 400, oversized bodies 413.
    request_guard.init_app(app)
    app.after_request(remember_language)
    app.after_request(_security_headers)
    import errors

    errors.register(app)
    from alerts.cli import alerts_cli, dispatch_command

    app.jinja_env.globals.update(_=t, municipality=app.extensions["municipality"],
                                 webhook_refusals=webhook_checks.refusal_summary)
    app.jinja_env.filters["local_time"] = local_time
    app.jinja_env.globals["month_name"] = month_name

    from admin import auth_views as admin_auth
    from admin import messages as admin_messages
    from admin import people as admin_people
    from alerts import receipts
    from alerts import views as alert_views
    from staff.auth import current_staff

    app.register_blueprint(admin_auth.bp)
    app.register_blueprint(admin_messages.bp)
    app.register_blueprint(admin_people.bp)
    from admin import providers as admin_providers

    app.register_blueprint(admin_providers.bp)
    from admin import recipients as admin_recipients
    from admin import calls as admin_calls
    from admin import registration as admin_registration

    app.register_blueprint(admin_calls.bp)

    app.register_blueprint(admin_registration.bp)

    app.register_blueprint(admin_recipients.bp)
    app.register_blueprint(metrics.bp)
    from admin import rollcall as admin_rollcall

    app.register_blueprint(admin_rollcall.bp)
    app.jinja_env.globals["sms_providers"] = admin_providers.provider_overview
    # The signed-in staff member (or None) for every template.
    app.context_processor(lambda: {"staff": current_staff()})
    from subscribers import api, inbound, push, views

    app.register_blueprint(views.bp)
    app.register_blueprint(push.bp)
    app.register_blueprint(alert_views.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(inbound.bp)
    app.register_blueprint(receipts.bp)
    from alerts import smsapi_receipts

    app.register_blueprint(smsapi_receipts.bp)  # GET with a per-delivery secret in its URL
    from alerts import calls

    app.register_blueprint(calls.bp)
    from rollcall import views as rollcall_views

    app.register_blueprint(rollcall_views.bp)
    # The personal token in its URL is what authorises an answer; a CSRF token would expire
    # on a page a resident left open for an hour, and refuse their answer in a flood.
    csrf.exempt(rollcall_views.bp)
    csrf.exempt(calls.bp)  # Twilio's voice webhooks are authenticated by their signature
    csrf.exempt(api.bp)  # JSON API: no cookies, no CSRF; abuse is rate-limited instead
    csrf.exempt(inbound.bp)  # Twilio webhooks are authenticated by their signature
    csrf.exempt(receipts.bp)
    # JSON from our own page and service worker (whose renewal POST cannot carry a CSRF
    # token); subscribers/push.py requires application/json and a same-origin request.
    csrf.exempt(push.bp)

    from staff.audit_cli import audit_cli
    from staff.cli import users_cli
    from subscribers.cli import subscribers_cli

    app.cli.add_command(users_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(subscribers_cli)
    app.cli.add_command(alerts_cli)
    from catalogs import translate_cli

    app.cli.add_command(translate_cli)
    app.cli.add_command(dispatch_command)
    from alerts.sms_cli import sms_cli

    app.cli.add_command(sms_cli)
    from alerts.feeds_cli import feeds_cli

    app.cli.add_command(feeds_cli)
    app.cli.add_command(push.webpush_cli)

    @app.get("/healthz")
    def healthz():  # noqa: ANN202
        """The database answers (else 500); feeds that fail or went silent make it "degraded"
        (still 200: a feed outage must not take the web out of a load balancer)."""
        from alerts.feeds import health_report

        db.session.execute(db.select(1))
        return jsonify(health_report())

    return app


def _check_runtime_settings(app: Flask) -> None:
    """Settings that are read later (by the scheduler, at send time) are checked now, so a
    typo stops the start instead of the first night's alert."""
    from alerts.feeds import enabled_feeds
    from municipality import quiet_hours

    try:
        quiet_hours(app.config.get("QUIET_HOURS"), app.extensions["municipality"])
        with app.app_context():
            enabled_feeds()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _security_headers(response):  # noqa: ANN001, ANN202
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # A view that allows framing (the widget) says so in its own CSP frame-ancestors.
    if "frame-ancestors 'none'" in response.headers.get("Content-Security-Policy", "frame-ancestors 'none'"):
        response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    # Manage links carry a secret in the path; keep them out of shared caches.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    )
    return response
