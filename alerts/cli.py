"""`flask alerts ...` and `flask dispatch`: the operators' way when the web is down."""

from __future__ import annotations

import logging
import re
import threading
from datetime import datetime, timedelta

import click
from flask import current_app
from flask.cli import AppGroup

from alerts import approval
from alerts import publish as lifecycle
from alerts.figures import BUCKET_ORDER, delivery_figures
from alerts.models import KIND_CANCEL, KIND_UPDATE, Alert
from db import db, utcnow
from i18n import translate
from staff import audit

alerts_cli = AppGroup("alerts", help="Publish and follow alerts.")


def _duration(raw: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*([mhd])\s*", raw or "")
    if not match:
        raise click.BadParameter("use a number with m, h or d, e.g. 90m, 6h, 2d")
    n, unit = int(match.group(1)), match.group(2)
    return timedelta(minutes=n) if unit == "m" else timedelta(hours=n) if unit == "h" else timedelta(days=n)


def _fail(exc: lifecycle.AlertError) -> click.ClickException:
    params = {k: v for k, v in exc.params.items()}
    return click.ClickException(translate(f"error.{exc.code}", "en", **params) + f" ({exc.code})")


def _areas(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    return [a.strip().upper() for a in raw.split(",") if a.strip()]


def _print_figures(alert: Alert) -> None:
    figures = delivery_figures(alert.id)
    click.echo(f"Alert {alert.id} [{alert.status}] {alert.category}"
               f"{' level ' + str(alert.level) if alert.level else ''}: {alert.title('pl')}")
    header = f"{'':10}" + "".join(f"{b:>10}" for b in ("total", *BUCKET_ORDER))
    click.echo(header)
    for name, row in sorted(figures["by_channel"].items()):
        click.echo(f"{name:10}" + "".join(f"{row.get(b, 0):>10}" for b in ("total", *BUCKET_ORDER)))
    for name, row in sorted(figures["by_area"].items()):
        click.echo(f"{'area ' + name:10}" + "".join(f"{row.get(b, 0):>10}" for b in ("total", *BUCKET_ORDER)))
    click.echo(f"SMS segments: {figures['sms_segments']}")


def _break_glass_options(command):
    command = click.option("--reason", help="Why there is no second person (with --break-glass).")(command)
    return click.option("--break-glass", "break_glass", is_flag=True,
                        help="Send a whole-gmina or emergency message without a second person: flagged in "
                             "the audit log, needs --reason.")(command)


def _publish(alert: Alert, now: datetime, break_glass: bool, reason: str | None) -> dict[str, int]:
    """Publish a message made on the command line, under the two-person rule's terms.

    There is no second person on the command line: what would need one on the web (a
    message whose real reach is the whole gmina, or an emergency) needs --break-glass with
    a reason, and is flagged like the web's break glass. Every send is in the audit log
    with the actor cli:<OS user>."""
    actor = audit.cli_actor()
    reason = (reason or "").strip()
    needed = approval.two_person_needed(alert)
    if needed and (not break_glass or len(reason) < approval.BREAK_GLASS_MIN_REASON):
        db.session.rollback()
        audit.record("cli_send_refused", actor=actor, reason="break_glass_needed", category=alert.category,
                     kind=alert.kind)
        raise lifecycle.AlertError("break_glass_needed", minimum=approval.BREAK_GLASS_MIN_REASON)
    if needed:
        alert.break_glass = True
        alert.meta = {**alert.meta, "break_glass_reason": reason}
    counts = lifecycle.publish(alert, now, commit=False)
    if needed:
        audit.record("break_glass", actor=actor, target=f"alert:{alert.id}", flagged=True, commit=False,
                     reason=reason, via="cli")
    audit.record("sent", actor=actor, target=f"alert:{alert.id}", commit=False, queued=counts, via="cli",
                 kind=alert.kind, parent=alert.parent_id, break_glass=needed)
    db.session.commit()
    return counts


@alerts_cli.command("send")
@click.option("--category", required=True, help="weather, hydro, air, emergency, official, events, utilities")
@click.option("--level", type=int, help="1-3 for weather, hydro and air")
@click.option("--areas", help="Comma-separated area codes; the whole gmina when omitted.")
@click.option("--title", required=True, help="Polish title.")
@click.option("--text", "text_pl", required=True, help="Polish text.")
@click.option("--title-en")
@click.option("--text-en")
@click.option("--title-uk")
@click.option("--text-uk")
@click.option("--expires-in", help="How long it is valid, e.g. 6h (default: the category's, e.g. 24h for weather).")
@click.option("--channels", default="sms,push,voice", show_default=True,
              help="Where it goes; calls reach only residents who asked for them.")
@click.option("--keep-diacritics", is_flag=True, help="Send Polish letters (UCS-2: 2-3x the SMS cost).")
@_break_glass_options
def send_command(category: str, level: int | None, areas: str | None, title: str, text_pl: str,
                 title_en: str | None, text_en: str | None, title_uk: str | None, text_uk: str | None,
                 expires_in: str | None, channels: str, keep_diacritics: bool, break_glass: bool,
                 reason: str | None) -> None:
    """Publish an alert now; prints its id and how many deliveries were queued.

    To the whole gmina (no --areas) or in emergency: only with --break-glass --reason."""
    now = utcnow()
    draft = lifecycle.Draft(
        category=category, level=level, areas=_areas(areas),
        titles={"pl": title, "en": title_en or "", "uk": title_uk or ""},
        texts={"pl": text_pl, "en": text_en or "", "uk": text_uk or ""},
        channels=[c.strip() for c in channels.split(",") if c.strip()],
        starts_at=now,
        expires_at=now + (_duration(expires_in) if expires_in
                          else current_app.extensions["municipality"].validity(category)),
        keep_diacritics=keep_diacritics,
    )
    try:
        alert = lifecycle.create_alert(draft)
        counts = _publish(alert, now, break_glass, reason)
    except lifecycle.AlertError as exc:
        db.session.rollback()
        raise _fail(exc) from None
    detail = ", ".join(f"{c} {n}" for c, n in counts.items())
    click.echo(f"Alert {alert.id} published: {sum(counts.values())} deliveries queued ({detail}).")


@alerts_cli.command("show")
@click.argument("alert_id", type=int)
def show_command(alert_id: int) -> None:
    """Print an alert's delivery figures per channel and per area."""
    alert = db.session.get(Alert, alert_id)
    if alert is None:
        raise click.ClickException(f"No alert {alert_id}.")
    _print_figures(alert)


def _follow_up(alert_id: int, kind: str, title: str | None, text: str, break_glass: bool,
               reason: str | None) -> None:
    parent = db.session.get(Alert, alert_id)
    if parent is None:
        raise click.ClickException(f"No alert {alert_id}.")
    draft = lifecycle.Draft(category=parent.category, level=parent.level, areas=parent.areas,
                            titles={"pl": title or parent.title("pl")}, texts={"pl": text},
                            channels=parent.channels, starts_at=utcnow(), expires_at=parent.expires_at)
    try:
        alert = lifecycle.follow_up(parent, kind, draft)
        counts = _publish(alert, utcnow(), break_glass, reason)
    except lifecycle.AlertError as exc:
        db.session.rollback()
        raise _fail(exc) from None
    click.echo(f"Alert {alert.id} ({kind} of {parent.id}) published: {sum(counts.values())} deliveries queued.")


@alerts_cli.command("update")
@click.argument("alert_id", type=int)
@click.option("--title")
@click.option("--text", required=True, help="The corrected Polish text.")
@_break_glass_options
def update_command(alert_id: int, title: str | None, text: str, break_glass: bool, reason: str | None) -> None:
    """Send a correction to everyone who got ALERT_ID (and to new matches).

    When the chain reaches the whole gmina or is an emergency: only with --break-glass --reason."""
    _follow_up(alert_id, KIND_UPDATE, title, text, break_glass, reason)


@alerts_cli.command("cancel")
@click.argument("alert_id", type=int)
@click.option("--text", default="Komunikat jest nieaktualny.", show_default=True)
@_break_glass_options
def cancel_command(alert_id: int, text: str, break_glass: bool, reason: str | None) -> None:
    """Withdraw ALERT_ID: tell exactly those who got it, and stop what is still queued.

    When the chain reaches the whole gmina or is an emergency: only with --break-glass --reason."""
    _follow_up(alert_id, KIND_CANCEL, None, text, break_glass, reason)


@click.command("dispatch")
@click.option("--once", is_flag=True, help="Send what is due now, then stop.")
def dispatch_command(once: bool) -> None:
    """Run the dispatcher (the scheduler also runs one). Several may run on PostgreSQL."""
    from alerts.dispatcher import Dispatcher
    from alerts.reconcile import reconcile_stuck

    dispatcher = Dispatcher(current_app._get_current_object())  # type: ignore[attr-defined]
    if once:
        reconcile_stuck()
        total = 0
        while handled := dispatcher.run_once():
            total += handled
        dispatcher.close()
        click.echo(f"Handled {total} deliveries.")
        return
    stop = threading.Event()
    import signal

    import metrics

    metrics.metrics_server(current_app._get_current_object())  # type: ignore[attr-defined] # METRICS_ADDRESS

    from db_outage import DatabaseOutage, QuietDuringOutage

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # A database outage must not end the process (sending would stop until someone noticed):
    # one line when it starts and one when it ends, instead of a traceback every second.
    outage = DatabaseOutage("dispatch", app.config["DB_RECONNECT_MAX_SECONDS"])
    quiet = QuietDuringOutage(outage)
    for name in ("alerts.dispatcher", "alerts.window", "alerts.reconcile", "alerts.receipts"):
        logging.getLogger(name).addFilter(quiet)
    worker = threading.Thread(target=_keep_dispatching, args=(app, dispatcher, stop, outage), name="dispatch")
    worker.start()
    try:
        _probe_while_down(app, stop, outage)
    except KeyboardInterrupt:
        stop.set()
    worker.join()


def _keep_dispatching(app, dispatcher, stop: threading.Event, outage) -> None:
    """Run the dispatcher until `stop`; whatever escapes its own loop is retried with capped
    backoff, by a fresh dispatcher under the same name (the old one's pool is shut down)."""
    from alerts.dispatcher import Dispatcher
    from db_outage import is_database_outage

    while not stop.is_set():
        try:
            dispatcher.run_forever(stop)
        except Exception as exc:  # retried: exiting would stop every send
            if is_database_outage(exc):
                wait = outage.failed(exc)
            else:
                logging.getLogger("alerts.dispatcher").exception("dispatcher loop failed; restarting it")
                wait = outage.max_seconds
            try:
                dispatcher.close()
            except Exception:  # noqa: BLE001 - already shut down
                pass
            stop.wait(wait)
            with app.app_context():
                dispatcher = Dispatcher(app, worker_id=dispatcher.worker_id)


def _probe_while_down(app, stop: threading.Event, outage) -> None:
    """Until `stop`: while an outage is on, ask the database (SELECT 1) at the backoff's
    pace, so its end is noticed and logged even when nothing is waiting to be sent."""
    from sqlalchemy import text

    from db_outage import is_database_outage

    wait = 0.5
    while not stop.wait(wait):
        wait = 0.5
        if not outage.ongoing:
            continue
        try:
            with app.app_context(), db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # the probe must never end the process
            if is_database_outage(exc):
                wait = outage.failed(exc)
            else:
                logging.getLogger("alerts.dispatcher").exception("database probe failed")
                wait = outage.max_seconds
        else:
            outage.succeeded()
