"""`flask audit verify`: check the audit log's hash chain (exit code 1 when it is broken)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from staff import audit

audit_cli = AppGroup("audit", help="The audit log.")


@audit_cli.command("verify")
def verify_command() -> None:
    """Check every row's hash and its link to the previous row; name the first bad row."""
    report = audit.verify()
    if not report.ok:
        click.echo(f"BROKEN at audit row {report.bad_id}: {report.problem} "
                   f"({report.rows - 1} rows before it are intact).", err=True)
        raise SystemExit(1)
    click.echo(f"OK: {report.rows} rows, the chain is intact. Last hash: {report.last_hash}")
