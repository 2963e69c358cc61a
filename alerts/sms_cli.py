"""``flask sms``: the providers' split, their figures, and pinning it by hand.

    flask sms status
    flask sms split twilio:80,smsapi:20 --reason "Twilio maintenance tonight"
    flask sms split --auto --reason "maintenance over"

Every pin is recorded as a shift (shown on the dashboard) and in the audit log as
cli:<OS user>.
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from alerts import balance
from alerts.routing import parse_split
from db import db
from staff import audit

sms_cli = AppGroup("sms", help="SMS providers: the live split, its shifts, and pinning it.")


@sms_cli.command("status")
def status_command() -> None:
    """Print each provider's live and resting share, state and the last hour's figures."""
    resting = current_app.extensions["sms_split"]
    balance.ensure_routes(resting)
    view = balance.overview(resting)
    for row in view["providers"]:
        median = row["median_receipt_seconds"]
        click.echo(
            f"{row['provider']:8} share {row['weight']:3} (resting {row['resting']}) {row['state']}"
            f"{' PINNED' if row['pinned'] else ''} | last hour: {row['sends']} sends, {row['errors']} errors, "
            f"median receipt {'-' if median is None else f'{median:.0f} s'}, "
            f"{row['waiting_after_failure']} waiting after a failure here")
        if row["reason"]:
            click.echo(f"         {balance.describe(row['reason'], 'en')}")
    click.echo(f"SMS waiting: {view['waiting']}")
    for shift in view["shifts"]:
        click.echo(f"  {shift.at:%Y-%m-%d %H:%M:%S} UTC {shift.provider} {shift.old_weight} -> {shift.new_weight} "
                   f"({shift.actor}): {balance.describe(shift.reason, 'en')}")


@sms_cli.command("split")
@click.argument("split", required=False)
@click.option("--auto", is_flag=True, help="Unpin: back to the resting split and automatic failover.")
@click.option("--reason", required=True, help="Why (kept with the shift and in the audit log).")
def split_command(split: str | None, auto: bool, reason: str) -> None:
    """Pin the split (e.g. twilio:80,smsapi:20), or --auto to unpin it."""
    resting = current_app.extensions["sms_split"]
    if auto == bool(split):
        raise click.UsageError("give a split such as twilio:80,smsapi:20, or --auto")
    try:
        wanted = None if auto else parse_split(split, list(resting))
        shifts = balance.pin(wanted, audit.cli_actor(), reason, resting)
    except ValueError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    for shift in shifts:
        click.echo(f"{shift.provider}: {shift.old_weight} -> {shift.new_weight}")
    click.echo("automatic failover again" if auto else "pinned: automatic failover is off until `--auto`")
