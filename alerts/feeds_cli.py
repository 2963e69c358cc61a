"""`flask feeds poll [NAME]` and `flask feeds status`: the feeds by hand."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from alerts.feeds import FEEDS, enabled_feeds, health_report
from providers.feeds import FeedError
from staff import audit

feeds_cli = AppGroup("feeds", help="Hazard feeds: poll by hand, show health.")


@feeds_cli.command("poll")
@click.argument("name", required=False)
def poll_command(name: str | None) -> None:
    """Poll one feed (or every enabled one) now; print what it found and what it did."""
    if name is not None and name not in FEEDS:
        raise click.BadParameter(f"unknown feed {name!r}; known: {', '.join(FEEDS)}", param_hint="NAME")
    failed = False
    for feed in [name] if name else enabled_feeds():
        try:
            report = FEEDS[feed].poll()
        except FeedError as exc:
            failed = True
            audit.record("feed_polled", actor=audit.cli_actor(), target=f"feed:{feed}", ok=False, via="cli")
            click.echo(f"{feed}: FAILED, nothing changed: {exc}")
            continue
        audit.record("feed_polled", actor=audit.cli_actor(), target=f"feed:{feed}", ok=True,
                     summary=report.summary()[:300], via="cli")
        click.echo(f"{feed}: {report.summary()}")
        for note in report.notes:
            click.echo(f"  {note}")
    if failed:
        raise SystemExit(1)


@feeds_cli.command("status")
def status_command() -> None:
    """Print each feed's last good answer and last error (as /healthz shows them)."""
    click.echo(json.dumps(health_report(), ensure_ascii=False, indent=2))
