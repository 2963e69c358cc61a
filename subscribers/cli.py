"""`flask subscribers ...`: staff answer residents' GDPR requests from the command line."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from db import db
from staff import audit
from subscribers import erasure, service
from subscribers.errors import SubscriptionError
from subscribers.models import Subscriber
from subscribers.phone import mask_phone, normalize_phone

subscribers_cli = AppGroup("subscribers", help="Residents' data: export and erase.")


def _find(phone_raw: str) -> Subscriber:
    try:
        # Any country: a resident may have subscribed before the allowed list changed.
        phone = normalize_phone(phone_raw, [current_app.config["ALLOWED_PHONE_REGIONS"][0]])
    except SubscriptionError:
        phone = phone_raw.strip()
    subscriber = db.session.scalar(select(Subscriber).where(Subscriber.phone == phone))
    if subscriber is None:
        raise click.ClickException(f"No subscriber with the number {phone_raw}.")
    return subscriber


@subscribers_cli.command("export")
@click.argument("phone")
def export_command(phone: str) -> None:
    """Print everything Syrena holds about PHONE as JSON (GDPR access request)."""
    subscriber = _find(phone)
    data = service.export_data(subscriber)
    audit.record("subscriber_exported", actor=audit.cli_actor(), target=f"subscriber:{subscriber.id}", via="cli")
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


@subscribers_cli.command("erase")
@click.argument("phone")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase_command(phone: str, yes: bool) -> None:
    """Delete PHONE and everything tied to it, consent history included (GDPR erasure)."""
    subscriber = _find(phone)
    masked = mask_phone(subscriber.phone)
    if not yes:
        click.confirm(f"Erase {masked} and all their data? This cannot be undone", abort=True)
    target = f"subscriber:{subscriber.id}"
    # Committed with the erasure itself: no erasure without its audit row, even on a crash.
    audit.record("subscriber_erased", actor=audit.cli_actor(), target=target, via="cli", commit=False)
    outcome = erasure.erase(subscriber)
    audit.record("subscriber_erased_at_provider", actor=audit.cli_actor(), target=target, via="cli",
                 **outcome.as_dict())
    click.echo(f"Erased {masked}; {outcome.summary()}.")
    if not outcome.listed:
        click.echo("Delete the messages to this number in the provider's console (Twilio: Monitor > Logs).",
                   err=True)


@subscribers_cli.command("revoke-links")
@click.argument("phone")
def revoke_links_command(phone: str) -> None:
    """Make every manage link of PHONE stop working (a lost phone, a forwarded SMS).

    The resident gets a new link by confirming the number again on the website."""
    subscriber = _find(phone)
    service.revoke_links(subscriber)
    audit.record("subscriber_links_revoked", actor=audit.cli_actor(), target=f"subscriber:{subscriber.id}",
                 via="cli")
    click.echo(f"Revoked the manage links of {mask_phone(subscriber.phone)}.")


@subscribers_cli.command("purge-unconfirmed")
def purge_unconfirmed_command() -> None:
    """Delete sign-ups whose number was not confirmed within 24 hours (the scheduler does
    this every hour; run it by hand after restoring a backup, for instance)."""
    purged = erasure.purge_unconfirmed()
    audit.record("unconfirmed_purged", actor=audit.cli_actor(), via="cli", count=purged)
    click.echo(f"Deleted {purged} unconfirmed sign-ups older than "
               f"{int(erasure.UNCONFIRMED_SIGNUP_TTL.total_seconds() // 3600)} hours.")
